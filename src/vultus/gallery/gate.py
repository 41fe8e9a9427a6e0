"""The enrollment gate: refuse faces that would make the gallery worse.

A gallery is only as good as its enrolled faces: one blurred or profile photo
can match strangers or miss its own person. The gate scores every face with
`vultus.quality.assess_quality`, the same score `vultus analyze` shows, and
refuses a face whose overall score is low or whose size, sharpness, pose or
detection is clearly unusable. Every limit lives in one dataclass, so a caller
can loosen or tighten any of them, and each refusal says which limit failed.

The quality score includes embedding stability (how much the embedding of a
face moves when the face is mirrored) when the collection's embedder is SFace:
its stability ramp was fitted on SFace cosines. Other embedders (dlib-resnet
averages each face with its mirror already, so its two views always agree)
get the score without that component.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from vultus.quality import Quality, assess_quality
from vultus.types import Face

# Embedders whose mirror-cosine the quality score's stability ramp was fitted on.
STABILITY_EMBEDDERS = ("sface",)


@dataclass(frozen=True, slots=True)
class GateThresholds:
    """Limits a face must meet to be enrolled. The defaults keep 99% of LFW's
    faces (tests/test_gallery_gate.py checks at least 97% of a sample) and
    refuse what is clearly unusable: a face blurred with a Gaussian of sigma 8,
    a face 30 pixels wide, a profile."""

    min_quality: float = 0.5  # overall score in [0, 1] (LFW: 1st percentile 0.84)
    min_face_px: float = 40.0  # square root of the box area, in source pixels
    min_sharpness: float = 10.0  # Laplacian variance of the aligned 112x112 grey face
    max_yaw_deg: float = 55.0  # head turn, from the 5 landmarks
    min_detector_score: float = 0.6


@dataclass(frozen=True, slots=True)
class GateMeasures:
    """What the gate saw of one face; stored with the face in the gallery."""

    quality: float
    face_px: float
    sharpness: float
    yaw_deg: float
    detector_score: float
    mirror_cosine: float | None = None

    @classmethod
    def from_quality(cls, q: Quality, face: Face) -> GateMeasures:
        return cls(quality=q.score, face_px=q.face_px, sharpness=q.blur_var, yaw_deg=q.yaw_deg,
                   detector_score=float(face.score), mirror_cosine=q.mirror_cosine)

    def to_dict(self) -> dict:
        return {k: (None if v is None else round(v, 4 if k == "mirror_cosine" else 3 if k == "quality" else 2))
                for k, v in asdict(self).items()}


def measure(items: Sequence[tuple[np.ndarray, Face]], embedder=None) -> list[GateMeasures]:
    """GateMeasures for each (RGB image, face), batched. Pass the collection's
    embedder: when it is one in STABILITY_EMBEDDERS the score includes
    stability (faces that already carry their embedding cost one more
    embedding each, of the mirror image)."""
    if embedder is not None and embedder.name not in STABILITY_EMBEDDERS:
        embedder = None
    qualities = assess_quality(items, embedder)
    return [GateMeasures.from_quality(q, face) for q, (_, face) in zip(qualities, items, strict=True)]


def check(m: GateMeasures, limits: GateThresholds) -> tuple[str, ...]:
    """Why a face is refused: an empty tuple when it passes."""
    reasons = []
    if m.face_px < limits.min_face_px:
        reasons.append(f"face too small ({m.face_px:.0f} px < {limits.min_face_px:.0f} px)")
    if m.sharpness < limits.min_sharpness:
        reasons.append(f"too blurred (sharpness {m.sharpness:.1f} < {limits.min_sharpness:g})")
    if not np.isfinite(m.yaw_deg) or abs(m.yaw_deg) > limits.max_yaw_deg:
        reasons.append(f"turned too far (yaw {m.yaw_deg:+.0f} deg, limit {limits.max_yaw_deg:g})")
    if m.detector_score < limits.min_detector_score:
        reasons.append(f"unsure detection (score {m.detector_score:.2f} < {limits.min_detector_score:g})")
    if m.quality < limits.min_quality:
        reasons.append(f"low quality (score {m.quality:.2f} < {limits.min_quality:g})")
    return tuple(reasons)
