"""The enrollment gate: refuse faces too small, too blurred or turned too far.

A gallery is only as good as its enrolled faces: one blurred or profile photo
can match strangers or miss its own person. The gate measures three cheap,
explainable things per face and compares them with thresholds that live in one
dataclass, so a caller can loosen or tighten any of them:

- size: the shorter side of the detector's box, in pixels of the source image;
- sharpness: the variance of the Laplacian of the 112x112 aligned grey crop
  (a small face blown up to 112 pixels is soft too, which is the point);
- yaw: how far the head is turned, estimated from the 5 landmarks (below).

These are stand-ins until `vultus.quality` (a learned score in [0, 1]) lands;
`measure` is the one place that would call it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from vultus.align import align_112
from vultus.types import Face


@dataclass(frozen=True, slots=True)
class GateThresholds:
    """Limits a face must meet to be enrolled. Defaults keep >99% of LFW's faces
    (measured by tests/test_gallery_gate.py) and refuse what is clearly unusable."""

    min_face_px: float = 40.0
    min_sharpness: float = 15.0
    max_yaw_deg: float = 55.0
    min_detector_score: float = 0.6


@dataclass(frozen=True, slots=True)
class GateMeasures:
    face_px: float
    sharpness: float
    yaw_deg: float
    detector_score: float

    def to_dict(self) -> dict:
        return {k: round(v, 2) for k, v in asdict(self).items()}


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Signed head yaw in degrees from the 5 landmarks (0 = facing the camera).

    In a frame rotated so the eyes are level, the nose tip of a turned head
    moves sideways from the eyes' midpoint. With the nose tip about 0.8 half
    eye-distances in front of the eyes (average adult head), an offset of o
    half eye-distances means tan(yaw) = o / 0.8 under weak perspective. It is
    rough (a few degrees at small angles, worse past 45) but it separates
    frontal, three-quarter and profile faces, which is all the gate needs.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    right_eye, left_eye, nose = lm[0], lm[1], lm[2]
    axis = left_eye - right_eye
    half = np.linalg.norm(axis) / 2.0
    if half < 1e-6:
        return 90.0
    unit = axis / (2.0 * half)
    offset = float(np.dot(nose - (right_eye + left_eye) / 2.0, unit)) / half
    return math.degrees(math.atan(offset / 0.8))


def sharpness(crop_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of a crop: low for blurred or upscaled faces."""
    grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure(image: np.ndarray, face: Face) -> GateMeasures:
    return GateMeasures(
        face_px=float(min(face.box.width, face.box.height)),
        sharpness=sharpness(align_112(image, face)),
        yaw_deg=estimate_yaw(face.landmarks),
        detector_score=float(face.score),
    )


def check(m: GateMeasures, limits: GateThresholds) -> tuple[str, ...]:
    """Why a face is refused: an empty tuple when it passes."""
    reasons = []
    if m.face_px < limits.min_face_px:
        reasons.append(f"face too small ({m.face_px:.0f} px < {limits.min_face_px:.0f} px)")
    if m.sharpness < limits.min_sharpness:
        reasons.append(f"too blurred (sharpness {m.sharpness:.1f} < {limits.min_sharpness:g})")
    if abs(m.yaw_deg) > limits.max_yaw_deg:
        reasons.append(f"turned too far (yaw {m.yaw_deg:+.0f} deg, limit {limits.max_yaw_deg:g})")
    if m.detector_score < limits.min_detector_score:
        reasons.append(f"unsure detection (score {m.detector_score:.2f} < {limits.min_detector_score:g})")
    return tuple(reasons)
