"""Head pose (yaw, pitch, roll in degrees) from facial landmarks.

A generic 3D face (average adult proportions, in millimetres) is fitted to the
2D landmarks with cv2.solvePnP. With dlib's 68 points 20 of them are used; with
only the detector's 5 points the same model gives a rougher answer, which is
what face quality uses because it must stay cheap.

Angles are those of the face's own direction, measured against the line of
sight to the face (not the camera's optical axis), so a frontal face at the
edge of a wide photo still reads as frontal:

- yaw: positive when the face turns toward the image's right (the subject's own
  left), 0 frontal, about +-90 in full profile;
- pitch: positive when the face tilts up;
- roll: the tilt of the ear-to-ear axis in the image, positive clockwise (the
  image-right eye lower than the image-left eye).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vultus.types import Face

# Generic face in millimetres: x to the image's right on a frontal face (the
# subject's left), y down, z away from the camera (the nose tip has the
# smallest z). The origin is the midpoint of the outer eye corners, which are
# 90 mm apart. x and y are the median of dlib's (and YuNet's) landmarks over
# 789 near-frontal LFW photos, made left-right symmetric, so "pitch 0" means
# the average news-photo head; z is from average adult facial depth. Only
# points that stay on the face as the head turns are used: not the jaw
# contour, whose points slide along the cheek (dlib's chin point 8 is on the
# midline and is kept).
_MODEL_68: dict[int, tuple[float, float, float]] = {
    17: (-60.5, -12.5, 14.0), 19: (-38.0, -25.0, 0.0), 21: (-12.0, -17.5, -8.0),  # image-left brow
    22: (12.0, -17.5, -8.0), 24: (38.0, -25.0, 0.0), 26: (60.5, -12.5, 14.0),  # image-right brow
    27: (0.0, -3.0, -12.0), 30: (0.0, 36.0, -34.0),  # nasion, nose tip
    31: (-15.0, 46.5, -14.0), 33: (0.0, 51.5, -20.0), 35: (15.0, 46.5, -14.0),  # nose base
    36: (-45.0, 0.0, 10.0), 39: (-20.0, 1.0, 0.0),  # image-left eye corners
    42: (20.0, 1.0, 0.0), 45: (45.0, 0.0, 10.0),  # image-right eye corners
    48: (-30.5, 72.0, -6.0), 51: (0.0, 66.5, -22.0), 54: (30.5, 72.0, -6.0), 57: (0.0, 88.0, -18.0),  # mouth
    8: (0.0, 129.0, -10.0),  # chin
}
_IDX_68 = np.array(sorted(_MODEL_68), dtype=np.int64)
_PTS_68 = np.array([_MODEL_68[i] for i in _IDX_68], dtype=np.float64)

# The 5 detector points of Face.landmarks on the same model (YuNet's medians
# over the same photos): eye centres, nose tip, mouth corners.
_PTS_5 = np.array([
    (-35.0, -1.0, 3.0), (35.0, -1.0, 3.0), (0.0, 38.0, -34.0), (-30.0, 69.0, -6.0), (30.0, 69.0, -6.0),
], dtype=np.float64)

# Focal length in units of the face's size in the image: a long lens, so the
# fit is close to orthographic and does not depend on where the face sits.
_FOCAL_PER_FACE = 8.0


@dataclass(frozen=True, slots=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float
    method: str  # "68-point" or "5-point"

    def to_dict(self) -> dict:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1),
                "method": self.method}

    @property
    def off_frontal(self) -> float:
        """How far from frontal, in degrees: the angle between the face's
        direction and the line of sight (roll does not count)."""
        y, p = np.radians(self.yaw), np.radians(self.pitch)
        return float(np.degrees(np.arccos(np.clip(np.cos(y) * np.cos(p), -1.0, 1.0))))


def _solve(model: np.ndarray, image_pts: np.ndarray, method: str) -> HeadPose:
    pts = image_pts.astype(np.float64)
    centre = pts.mean(axis=0)
    size = float(np.sqrt(np.prod(pts.max(axis=0) - pts.min(axis=0)))) or 1.0
    model_size = float(np.sqrt(np.prod(np.ptp(model[:, :2], axis=0))))
    focal = _FOCAL_PER_FACE * size
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], dtype=np.float64)
    # Start from a frontal face at the distance its size implies: the iterative
    # solver then settles in the right basin instead of the mirrored-depth one.
    rvec = np.zeros((3, 1))
    tvec = np.array([[0.0], [0.0], [focal * model_size / size]])
    model_c = model - model.mean(axis=0)
    ok, rvec, tvec = cv2.solvePnP(model_c, pts, camera, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return HeadPose(float("nan"), float("nan"), float("nan"), method)
    rot, _ = cv2.Rodrigues(rvec)
    # Measure against the ray from the camera to the face, not the optical axis.
    ray = tvec[:, 0] / np.linalg.norm(tvec)
    to_ray = _rotation_between(ray, np.array([0.0, 0.0, 1.0]))
    rot = to_ray @ rot
    forward = rot @ np.array([0.0, 0.0, -1.0])  # where the nose points
    across = rot @ np.array([1.0, 0.0, 0.0])  # image-left eye to image-right eye
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(across[1], across[0]))
    return HeadPose(float(yaw), float(pitch), float(roll), method)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a onto unit vector b."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def pose_from_68(landmarks68: np.ndarray) -> HeadPose:
    """Pose from dlib's 68 iBUG points (20 of them, fitted to the generic face)."""
    return _solve(_PTS_68, np.asarray(landmarks68)[_IDX_68], "68-point")


def pose_from_5(landmarks: np.ndarray) -> HeadPose:
    """A rougher pose from the detector's 5 points (eye centres, nose tip, mouth corners)."""
    return _solve(_PTS_5, np.asarray(landmarks), "5-point")


def estimate_pose(face: Face) -> HeadPose:
    """The 68-point pose when the face has landmarks68, else the 5-point one."""
    if face.landmarks68 is not None:
        return pose_from_68(face.landmarks68)
    return pose_from_5(face.landmarks)


def estimate_poses(faces: Sequence[Face]) -> list[HeadPose]:
    return [estimate_pose(f) for f in faces]
