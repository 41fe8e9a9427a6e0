"""68-point landmarks from dlib's shape predictor, on demand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vultus.models.registry import ModelSpec
from vultus.models.runtime import Lazy
from vultus.types import Box, Face


def dlib_rect(box: Box):
    import dlib

    return dlib.rectangle(int(round(box.x1)), int(round(box.y1)), int(round(box.x2)), int(round(box.y2)))


def shape_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def five_from_68(pts: np.ndarray) -> np.ndarray:
    """The 5 alignment points (image-left eye centre first) from 68 iBUG points."""
    return np.stack([
        pts[36:42].mean(axis=0),  # subject's right eye (image left)
        pts[42:48].mean(axis=0),  # subject's left eye
        pts[30],  # nose tip
        pts[48],  # mouth corner, image left
        pts[54],  # mouth corner, image right
    ]).astype(np.float32)


class Landmarks68:
    """dlib's ERT predictor: 68 iBUG points for each face box."""

    def __init__(self, spec: ModelSpec, **_options):
        self.spec = spec
        self.name = spec.name
        self._predictor = Lazy(self._load)

    def _load(self):
        import dlib

        return dlib.shape_predictor(str(self.spec.path()))

    def predict(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        predictor = self._predictor.get()
        return [shape_to_array(predictor(image, dlib_rect(b))) for b in boxes]

    def annotate(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[Face]]:
        """The same faces with `landmarks68` filled in."""
        from dataclasses import replace

        out = []
        for img, fs in zip(images, faces, strict=True):
            pts = self.predict(img, [f.box for f in fs])
            out.append([replace(f, landmarks68=p) for f, p in zip(fs, pts, strict=True)])
        return out
