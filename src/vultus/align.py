"""Alignment: warp each face so its 5 landmarks sit on a fixed template.

SFace (and ArcFace-family models) expect the 112x112 "ArcFace" template. The
dlib ResNet uses dlib's own 150x150 chip; that lives in embed/dlib_resnet.py
because dlib computes it from its own 5-point predictor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from vultus.types import Box, Face

# Landmark positions of the standard 112x112 template (InsightFace / OpenCV SFace).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src to
    dst points (Umeyama 1991). Returns a 2x3 matrix for cv2.warpAffine."""
    src = src.astype(np.float64)
    dst = dst.astype(np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)


def align_112(image: np.ndarray, face: Face) -> np.ndarray:
    """The 112x112 RGB crop of `face` aligned to the ArcFace template."""
    m = similarity_transform(face.landmarks, ARCFACE_112)
    return cv2.warpAffine(image, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_batch_112(items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
    """(N, 112, 112, 3) uint8 crops for a flat list of (image, face)."""
    out = np.empty((len(items), 112, 112, 3), dtype=np.uint8)
    for i, (img, face) in enumerate(items):
        out[i] = align_112(img, face)
    return out


# A larger crop with the same geometry as ARCFACE_112, scaled by 2 and with a
# margin: every embedder can re-align from it. The gallery keeps these so a
# collection can be re-embedded with another model without the source photos.
CANONICAL_SIZE = 256
_CANON_SCALE = 1.6


def canonical_crop(image: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """A CANONICAL_SIZE square crop around the face and the face in its coordinates."""
    dst = (ARCFACE_112 - 56.0) * _CANON_SCALE + CANONICAL_SIZE / 2
    m = similarity_transform(face.landmarks, dst)
    crop = cv2.warpAffine(image, m, (CANONICAL_SIZE, CANONICAL_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    def tf(pts: np.ndarray) -> np.ndarray:
        return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)

    corners = tf(np.array([[face.box.x1, face.box.y1], [face.box.x2, face.box.y2]], dtype=np.float32))
    box = Box(float(corners[:, 0].min()), float(corners[:, 1].min()),
              float(corners[:, 0].max()), float(corners[:, 1].max()))
    lm68 = None if face.landmarks68 is None else tf(face.landmarks68)
    return crop, replace(face, box=box, landmarks=tf(face.landmarks), landmarks68=lm68, embedding=None)


def mirrored(image: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """The region around the face, flipped left-right at its own resolution,
    and the face in it (landmarks mirrored and re-ordered so the image-left eye
    is still first). No resampling: an embedder aligns the mirror exactly as it
    aligns the original."""
    lm = face.landmarks
    span = float(max(face.box.width, face.box.height, np.ptp(lm[:, 0]), np.ptp(lm[:, 1]), 1.0))
    cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
    x0, y0 = max(0, int(cx - 1.5 * span)), max(0, int(cy - 1.5 * span))
    x1, y1 = min(image.shape[1], int(cx + 1.5 * span) + 1), min(image.shape[0], int(cy + 1.5 * span) + 1)
    flipped = np.ascontiguousarray(image[y0:y1, x0:x1][:, ::-1])
    w = x1 - x0
    pts = lm - np.array([x0, y0], dtype=np.float32)
    pts[:, 0] = (w - 1) - pts[:, 0]
    pts = pts[[1, 0, 2, 4, 3]]
    bx1, bx2 = (w - 1) - (face.box.x2 - x0), (w - 1) - (face.box.x1 - x0)
    box = Box(bx1, face.box.y1 - y0, bx2, face.box.y2 - y0)
    return flipped, replace(face, box=box, landmarks=pts.astype(np.float32), landmarks68=None, embedding=None)
