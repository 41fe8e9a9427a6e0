"""Typed records the gallery stores and returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vultus.models.registry import ModelSpec
from vultus.types import Box, Face

if TYPE_CHECKING:
    from vultus.liveness.api import Liveness

AGGREGATIONS = ("max", "mean")


@dataclass(frozen=True, slots=True)
class EmbedderContract:
    """What a collection's vectors mean: only vectors from the same model name,
    version and alignment can be compared with them."""

    name: str
    version: str
    alignment: str
    dim: int

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> EmbedderContract:
        return cls(name=spec.name, version=spec.version, alignment=spec.input.alignment, dim=int(spec.dim or 0))

    @property
    def key(self) -> str:
        """How the store labels this contract's embeddings: name, version and a
        digest of the alignment, so a new version of a model, or the same weights
        fed differently aligned faces, never mixes with the old vectors."""
        digest = hashlib.sha256(self.alignment.encode()).hexdigest()[:8]
        return f"{self.name}@{self.version}+{digest}"

    def differs_from(self, other: EmbedderContract) -> str:
        """Why vectors of `other` cannot be compared with these ("" if they can)."""
        if other.name != self.name:
            return "another model"
        if other.version != self.version:
            return f"version {self.version} vs {other.version}"
        if other.alignment != self.alignment:
            return f"alignment {self.alignment!r} vs {other.alignment!r}"
        if other.dim != self.dim:
            return f"{self.dim}-d vs {other.dim}-d"
        return ""

    def describe(self) -> str:
        return f"{self.name} (version {self.version}, {self.dim}-d)"

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "alignment": self.alignment, "dim": self.dim}


@dataclass(frozen=True, slots=True)
class ThresholdOverride:
    """A threshold measured for this collection (e.g. by `vultus calibrate` on
    the user's own data) that replaces the embedder's LFW calibration."""

    threshold: float
    fmr: float
    source: str


@dataclass(frozen=True, slots=True)
class OwnCalibration:
    """A per-comparison false-match-rate curve measured on the collection's own impostor
    pairs (`vultus gallery calibrate`; vultus.gallery.own_calibration). It replaces the
    embedder's LFW calibration for this collection, and an FPIR target is still re-derived
    from it as the collection grows. It holds rates, thresholds and counts: nothing of
    any one face or person."""

    points: tuple[tuple[float, float], ...]  # (fmr, threshold) rungs, fmr descending
    pairs: int  # impostor pairs it was measured on
    people: int
    faces: int
    sampled: bool  # measured on a random sample of the people
    measured_at: str  # ISO time
    measured_to: float = 1.0  # the lowest rate measured on the pairs; rungs below it follow `tail`
    tail: str = ""  # whose shape the curve follows below measured_to ("": an exponential fit)

    @property
    def ladder(self) -> list[dict]:
        """The rungs in the calibration's own format (decision.threshold_for_fmr)."""
        return [{"fmr": f, "threshold": t} for f, t in self.points]

    @property
    def source(self) -> str:
        sample = " (a random sample)" if self.sampled else ""
        below = f"; below {self.measured_to:.2g} the shape of {self.tail}" if self.tail else ""
        return (f"this collection's own impostor pairs ({self.pairs:,} among {self.faces:,} faces of {self.people:,} "
                f"people{sample}, {self.measured_at[:10]}{below})")

    def to_dict(self) -> dict:
        return {"points": [{"fmr": f, "threshold": round(t, 6)} for f, t in self.points], "pairs": self.pairs,
                "people": self.people, "faces": self.faces, "sampled": self.sampled, "measured_at": self.measured_at,
                "measured_to": self.measured_to, "tail": self.tail}

    @classmethod
    def from_dict(cls, d: dict) -> OwnCalibration:
        return cls(points=tuple((float(p["fmr"]), float(p["threshold"])) for p in d["points"]), pairs=int(d["pairs"]),
                   people=int(d["people"]), faces=int(d["faces"]), sampled=bool(d["sampled"]),
                   measured_at=str(d["measured_at"]), measured_to=float(d.get("measured_to", 1.0)),
                   tail=str(d.get("tail", "")))


@dataclass(frozen=True, slots=True)
class Collection:
    id: int
    name: str
    contract: EmbedderContract
    detector: str
    target_fmr: float
    keep_crops: bool
    aggregation: str
    created_at: str
    generation: int = 0  # bumped by every change to the collection's embeddings
    threshold_override: ThresholdOverride | None = None
    liveness: str | None = None  # the liveness operating point faces must pass at enroll and identify
    # When set, the threshold is derived from this false-positive identification rate and the
    # collection's size (vultus.gallery.decision) and target_fmr is not used; None: decide by target_fmr.
    target_fpir: float | None = None
    # A curve measured on the collection's own impostor pairs (`vultus gallery calibrate`) that replaces
    # the embedder's calibration; a pinned threshold_override still comes first.
    own_calibration: OwnCalibration | None = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "embedder": self.contract.to_dict(), "detector": self.detector,
               "target_fmr": self.target_fmr, "target_fpir": self.target_fpir, "keep_crops": self.keep_crops,
               "aggregation": self.aggregation, "created_at": self.created_at}
        if self.threshold_override:
            o = self.threshold_override
            out["threshold_override"] = {"threshold": o.threshold, "fmr": o.fmr, "source": o.source}
        if self.liveness:
            out["liveness"] = self.liveness
        if self.own_calibration:
            out["own_calibration"] = self.own_calibration.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    metadata: dict
    created_at: str
    face_count: int = 0

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "metadata": self.metadata, "created_at": self.created_at,
                "faces": self.face_count}


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One enrolled face: where it came from and how good it was. The vectors
    and the aligned crop are fetched separately (they are large)."""

    id: int
    person_id: int
    person: str
    image_sha256: str
    image_path: str | None
    box: Box
    landmarks: np.ndarray = field(repr=False)
    detector: str
    detector_score: float
    quality: dict
    created_at: str
    has_crop: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "person": self.person, "image_sha256": self.image_sha256,
                "image_path": self.image_path, "box": [round(v, 1) for v in self.box.as_tuple()],
                "landmarks": np.round(self.landmarks, 1).tolist(), "detector": self.detector,
                "detector_score": round(self.detector_score, 4), "quality": self.quality,
                "created_at": self.created_at, "crop_kept": self.has_crop}


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face ready to store: what an enroll worker hands to the writer."""

    person: str
    image_sha256: str
    image_path: str | None
    face: Face  # box and landmarks in source-image pixels
    vector: np.ndarray = field(repr=False)
    quality: dict
    crop_jpeg: bytes | None = field(default=None, repr=False)
    crop_face: Face | None = field(default=None, repr=False)  # the face in the crop's coordinates


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate person for a face, with the aggregated similarity of their
    enrolled faces and the single enrolled face that matched best."""

    person_id: int
    person: str
    similarity: float
    best_face_id: int
    faces_compared: int

    def to_dict(self) -> dict:
        return {"person": self.person, "similarity": round(self.similarity, 4), "best_face_id": self.best_face_id,
                "faces_compared": self.faces_compared}


@dataclass(frozen=True, slots=True)
class Decision:
    """The threshold a decision used and what it means."""

    threshold: float
    fmr: float  # false-match rate of one comparison at this threshold
    source: str  # where the threshold was measured
    expected_fpir: float  # chance an unenrolled face matches someone, given the collection's size
    target: str = "fmr"  # what the threshold was chosen by: "fpir", "fmr" or "threshold" (pinned)
    target_rate: float | None = None  # the target FPIR or FMR (None for a pinned threshold)
    comparisons: int = 0  # chances a stranger has to match: enrolled faces ("max") or people ("mean")
    extrapolated: bool = False  # the rate lies below the calibration's lowest measured one

    def to_dict(self) -> dict:
        return {"threshold": round(self.threshold, 4), "false_match_rate": self.fmr, "source": self.source,
                "expected_false_positive_identification_rate": round(self.expected_fpir, 6),
                "target": self.target, "target_rate": self.target_rate, "comparisons": self.comparisons,
                "extrapolated": self.extrapolated}


@dataclass(frozen=True, slots=True)
class Identification:
    """Who one face is: its top-k people and one decision, a person or unknown."""

    face: Face | None
    matches: tuple[Match, ...]
    person: str | None  # None means unknown
    similarity: float  # the best match's similarity (or -1 for an empty collection)
    decision: Decision
    liveness: Liveness | None = None  # when the collection requires liveness

    @property
    def unknown(self) -> bool:
        return self.person is None

    @property
    def refused(self) -> str:
        """Why this face was not identified although it may match (a failed liveness check), or ""."""
        return self.liveness.reason if self.liveness is not None else ""

    @property
    def label(self) -> str:
        if self.refused:
            return "refused"
        return self.person if self.person is not None else "unknown"

    def to_dict(self) -> dict:
        out = {"person": self.label, "similarity": round(self.similarity, 4),
               "matches": [m.to_dict() for m in self.matches]}
        if self.liveness is not None:
            out["liveness"] = self.liveness.to_dict()
            if self.refused:
                out["refused"] = self.refused
        if self.face is not None:
            out["box"] = [round(v, 1) for v in self.face.box.as_tuple()]
            out["detector_score"] = round(self.face.score, 4)
        return out


@dataclass(frozen=True, slots=True)
class ImageIdentification:
    image: str
    width: int
    height: int
    faces: tuple[Identification, ...]
    decision: Decision

    def to_dict(self) -> dict:
        return {"image": self.image, "width": self.width, "height": self.height,
                "decision": self.decision.to_dict(), "faces": [f.to_dict() for f in self.faces]}


@dataclass(frozen=True, slots=True)
class EnrollItem:
    path: Path
    person: str
    # Which face of the photo is the person, as a detector box (x1, y1, x2, y2): the detected face
    # that overlaps it most is taken (a clustered face of a group photo). None: EnrollOptions.pick.
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class SubjectChoice:
    """Which detected face of a photo was taken as the person, and why."""

    index: int  # in the detector's order, as `vultus analyze` and identify number the faces
    box: Box
    faces: int  # faces the detector found in the photo
    reason: str  # why this face ("the only face found", "nearest the centre and the largest of 2 faces", ...)

    def to_dict(self) -> dict:
        return {"index": self.index, "box": [round(v, 1) for v in self.box.as_tuple()], "faces_found": self.faces,
                "why": self.reason}


@dataclass(frozen=True, slots=True)
class EnrollOutcome:
    """What happened to one image: enrolled, duplicate (skipped), refused or error."""

    path: str
    person: str
    status: str
    reason: str = ""
    face_id: int | None = None
    # The face taken as the person (None when no face was chosen: none found, none clearly the
    # subject, a duplicate or unreadable image). A face refused by the gate after it was chosen keeps it.
    subject: SubjectChoice | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "person": self.person, "status": self.status, "reason": self.reason,
                "face_id": self.face_id, "face": self.subject.to_dict() if self.subject else None}


@dataclass(frozen=True, slots=True)
class EnrollWarning:
    """A new face is closer to someone else than to the person it was enrolled as."""

    path: str
    person: str
    closest_person: str
    closest_similarity: float
    own_similarity: float | None  # None when the person had no other face yet

    def message(self) -> str:
        own = "no other faces yet" if self.own_similarity is None else f"{self.own_similarity:.3f} to {self.person}"
        return (f"{self.path}: enrolled as {self.person} but closer to {self.closest_person} "
                f"({self.closest_similarity:.3f}; {own}); check the label")

    def to_dict(self) -> dict:
        return {"path": self.path, "person": self.person, "closest_person": self.closest_person,
                "closest_similarity": round(self.closest_similarity, 4),
                "own_similarity": None if self.own_similarity is None else round(self.own_similarity, 4)}


@dataclass(frozen=True, slots=True)
class EnrollReport:
    collection: str
    outcomes: tuple[EnrollOutcome, ...]
    warnings: tuple[EnrollWarning, ...]
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def enrolled(self) -> int:
        return self.count("enrolled")

    def to_dict(self) -> dict:
        return {"collection": self.collection, "enrolled": self.enrolled, "duplicates": self.count("duplicate"),
                "refused": self.count("refused"), "errors": self.count("error"), "seconds": round(self.seconds, 2),
                "warnings": [w.to_dict() for w in self.warnings], "images": [o.to_dict() for o in self.outcomes]}


@dataclass(frozen=True, slots=True)
class Lookalike:
    """Someone else in the collection whom a forgotten face still matches at the
    strict threshold: the same person enrolled under another name, or a twin."""

    person: str
    person_id: int
    similarity: float  # the best of the forgotten faces against this person
    faces: int  # how many forgotten faces have this person as their best match

    def to_dict(self) -> dict:
        return {"person": self.person, "person_id": self.person_id, "similarity": round(self.similarity, 4),
                "faces": self.faces}


@dataclass(frozen=True, slots=True)
class ForgetProof:
    """What forget checked after the removal, with the forgotten person's own
    embeddings (captured before deletion, dropped right after the check).

    The claim is "this person is gone": no row of the store and no entry of the
    index refers to them any more, and their own faces, identified again, never
    come back as them (`person_still_returned`). A match with someone else is
    not a failure of the erasure: in a large collection a stranger matches
    somebody at the collection's threshold most of the time. So other people are
    only reported as `lookalikes` when a forgotten face matches them at a strict
    threshold (false-match rate `fmr`, 1e-5 by default): that is worth a look
    (the same person enrolled under another name), but the erasure stands."""

    checked_faces: int  # forgotten embeddings identified again
    person_still_returned: bool  # any check below found the person
    rows_remaining: int  # rows of the store that still refer to the person or their faces
    index_entries_remaining: int  # forgotten embedding ids still held by the index
    search_hits: int  # searches that returned a forgotten embedding id or the person's id
    index_file_clean: bool  # the saved index file holds none of the forgotten vectors' bytes
    lookalikes: tuple[Lookalike, ...]
    strict_threshold: float | None  # None when no calibration or threshold was available
    fmr: float | None  # the false-match rate of strict_threshold
    best_remaining_similarity: float | None  # the forgotten faces' best match among those left

    @property
    def verified(self) -> bool:
        return not self.person_still_returned and self.index_file_clean

    def to_dict(self) -> dict:
        return {"verified": self.verified, "checked_faces": self.checked_faces,
                "person_still_returned": self.person_still_returned, "rows_remaining": self.rows_remaining,
                "index_entries_remaining": self.index_entries_remaining, "search_hits": self.search_hits,
                "index_file_clean": self.index_file_clean, "strict_threshold": (
                    None if self.strict_threshold is None else round(self.strict_threshold, 4)),
                "false_match_rate": self.fmr, "lookalikes": [x.to_dict() for x in self.lookalikes],
                "best_remaining_similarity": (None if self.best_remaining_similarity is None
                                              else round(self.best_remaining_similarity, 4))}


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What forget removed, and the proof that the person is gone (`proof`)."""

    collection: str
    person: str
    faces_removed: int
    embeddings_removed: int
    crops_removed: int
    index_entries_removed: int
    proof: ForgetProof
    threshold: float | None  # the collection's decision threshold, for reference

    @property
    def verified(self) -> bool:
        return self.proof.verified

    def to_dict(self) -> dict:
        return {"collection": self.collection, "person": self.person, "faces_removed": self.faces_removed,
                "embeddings_removed": self.embeddings_removed, "crops_removed": self.crops_removed,
                "index_entries_removed": self.index_entries_removed, "verified": self.verified,
                "threshold": self.threshold, "proof": self.proof.to_dict()}


@dataclass(frozen=True, slots=True)
class IndexReport:
    """The state of one collection's ANN index against SQLite, after checking it."""

    collection: str
    embedder: str
    stored: int  # embeddings in SQLite
    indexed: int  # entries in the ANN index
    action: str  # fresh | synced | rebuilt | empty
    reason: str
    path: str | None

    def to_dict(self) -> dict:
        return {"collection": self.collection, "embedder": self.embedder, "stored_embeddings": self.stored,
                "indexed": self.indexed, "action": self.action, "reason": self.reason, "path": self.path}


@dataclass(frozen=True, slots=True)
class CollectionStats:
    collection: Collection
    people: int
    faces: int
    images: int
    embeddings: int
    crops: int
    index: IndexReport
    decision: Decision | None
    decision_error: str | None
    db_bytes: int
    index_bytes: int
    # The decision's stated rates against the collection's own impostor pairs
    # (vultus.gallery.own_calibration.CalibrationCheck); None when not checked.
    calibration_check: object | None = None

    def to_dict(self) -> dict:
        return {"collection": self.collection.to_dict(), "people": self.people, "faces": self.faces,
                "images": self.images, "embeddings": self.embeddings, "crops": self.crops,
                "index": self.index.to_dict(), "decision": self.decision.to_dict() if self.decision else None,
                "decision_error": self.decision_error, "db_bytes": self.db_bytes, "index_bytes": self.index_bytes,
                "calibration_check": self.calibration_check.to_dict() if self.calibration_check else None}


@dataclass(frozen=True, slots=True)
class ReembedReport:
    collection: str
    old: EmbedderContract
    new: EmbedderContract
    faces: int
    from_crops: int
    from_images: int
    seconds: float

    def to_dict(self) -> dict:
        return {"collection": self.collection, "from": self.old.to_dict(), "to": self.new.to_dict(),
                "faces": self.faces, "from_crops": self.from_crops, "from_images": self.from_images,
                "seconds": round(self.seconds, 2)}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: str
    actor: str
    action: str
    collection: str
    detail: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "collection": self.collection, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CalibrateReport:
    """What `Gallery.calibrate` measured on the collection's own impostor pairs and what it changed."""

    collection: str
    calibration: OwnCalibration  # the refitted curve
    before: Decision | None  # the decision by the calibration in use before (None: it could not decide)
    after: Decision  # the decision by the refitted curve
    check: object  # own_calibration.CalibrationCheck of the calibration in use before, on the same pairs
    target_rate: float  # the per-comparison rate the collection's target needs now
    pairs_needed: int  # 3 / target_rate
    direct: bool  # the target rate is measured (>= 10 pairs above), not extrapolated below the lowest rung
    stored: bool  # made the collection's calibration (False: a dry run)
    replaced_threshold: bool  # a pinned threshold was (or, stored, would be) replaced

    def to_dict(self) -> dict:
        return {"collection": self.collection, "stored": self.stored, "calibration": self.calibration.to_dict(),
                "source": self.calibration.source, "target_rate": self.target_rate,
                "pairs_needed": self.pairs_needed, "measured_directly": self.direct,
                "replaced_pinned_threshold": self.replaced_threshold,
                "before": self.before.to_dict() if self.before else None, "after": self.after.to_dict(),
                "check_before": self.check.to_dict()}
