"""The Detector interface: images in, typed Face lists out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import cv2
import numpy as np

from vultus.models.registry import ModelSpec
from vultus.types import Box, Face

# Large photos are shrunk so their longer side is at most this many pixels
# before detection; boxes and landmarks are mapped back to the original.
DEFAULT_MAX_SIDE = 1280


class Detector(ABC):
    """Finds faces. Subclasses implement `_detect` on already-resized images."""

    def __init__(self, spec: ModelSpec, *, max_side: int = DEFAULT_MAX_SIDE, min_score: float | None = None,
                 threads: int | None = None):
        self.spec = spec
        self.name = spec.name
        self.max_side = max_side
        self.threads = threads
        if min_score is not None:
            self.min_score = min_score

    min_score: float = 0.5

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """One list of faces per image, best score first."""
        resized, scales = [], []
        for img in images:
            h, w = img.shape[:2]
            scale = min(1.0, self.max_side / max(h, w))
            if scale < 1.0:
                img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            resized.append(img)
            scales.append(scale)
        raw = self._detect(resized)
        out = []
        for faces, scale, img in zip(raw, scales, images, strict=True):
            h, w = img.shape[:2]
            mapped = [_rescale(f, 1.0 / scale, w, h) for f in faces]
            mapped.sort(key=lambda f: -f.score)
            out.append(mapped)
        return out

    @abstractmethod
    def _detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in RGB uint8 images whose longer side is at most max_side."""


def _rescale(face: Face, k: float, width: int, height: int) -> Face:
    b = face.box
    box = Box(max(0.0, b.x1 * k), max(0.0, b.y1 * k), min(float(width), b.x2 * k), min(float(height), b.y2 * k))
    lm68 = None if face.landmarks68 is None else (face.landmarks68 * k).astype(np.float32)
    return Face(box=box, score=face.score, landmarks=(face.landmarks * k).astype(np.float32),
                detector=face.detector, landmarks68=lm68)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression on (N, 4) x1,y1,x2,y2 boxes."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return keep
