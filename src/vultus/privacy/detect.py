"""Face detection tuned for recall, for anonymisation: a missed face is a leak, a false cover is a smudge.

Two passes of the same detector (YuNet by default) merged by non-maximum suppression:

1. the whole image at its own resolution (up to `max_side`), with a low score threshold;
2. the image upscaled (2x by default) and cut into overlapping tiles, so faces of
   about 10 px, below what the detector's stride-8 head finds at 1x, are seen at
   about 20 px. Only small faces are taken from this pass (large ones come whole
   from pass 1; a tile can cut a large face in half).

Boxes lying mostly inside a larger box are dropped (a part of a face found again in
a tile), so one face gets one cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vultus.detect.base import nms
from vultus.types import Box, Face


@dataclass(frozen=True, slots=True)
class RecallSettings:
    detector: str = "yunet"
    min_score: float = 0.3  # YuNet's own default is 0.6 (0.9 in OpenCV's demo)
    upscale: float = 2.0  # 1 turns the small-face pass off
    tile: int = 2560  # tile side in upscaled pixels (one tile for images up to 1280 px at 2x)
    small_face: float = 40.0  # pass 2 keeps faces whose shorter side (original pixels) is below this
    max_side: int = 1920  # pass 1 runs at most at this size
    max_upscaled_side: int = 2560  # pass 2's upscaled image is at most this large (its cost grows with the area)
    nms_iou: float = 0.3


class RecallDetector:
    """detect(images) -> one list of Face per image, like vultus's Detector, over two passes."""

    def __init__(self, settings: RecallSettings | None = None, *, threads: int | None = None):
        from vultus.models.cache import get_model

        self.settings = s = settings or RecallSettings()
        self.name = f"{s.detector}-recall"
        self._full = get_model(s.detector, task="detect", min_score=s.min_score, max_side=s.max_side,
                               threads=threads)
        self._tiles = get_model(s.detector, task="detect", min_score=s.min_score, max_side=s.tile,
                                threads=threads)

    def detect(self, images: Sequence[np.ndarray], *, small_faces: bool = True) -> list[list[Face]]:
        """Faces per image; small_faces=False skips the upscaled pass (a video runs it on some frames only)."""
        return [self._one(img, small_faces) for img in images]

    def _one(self, rgb: np.ndarray, small_faces: bool) -> list[Face]:
        s = self.settings
        faces = list(self._full.detect([rgb])[0])
        h, w = rgb.shape[:2]
        k = min(s.upscale, s.max_upscaled_side / max(h, w))
        if small_faces and k > 1.2:
            big = cv2.resize(rgb, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
            tiles, origins = _tiles(big, s.tile, overlap=max(64, s.tile // 8))
            found = self._tiles.detect(tiles)
            for (ox, oy), fs in zip(origins, found, strict=True):
                for f in fs:
                    b = f.box
                    box = Box((b.x1 + ox) / k, (b.y1 + oy) / k, (b.x2 + ox) / k, (b.y2 + oy) / k)
                    if min(box.width, box.height) >= s.small_face:
                        continue
                    lm = ((f.landmarks + np.array([ox, oy], np.float32)) / k).astype(np.float32)
                    faces.append(Face(box=box, score=f.score, landmarks=lm, detector=self.name))
        return merge(faces, s.nms_iou)


def _tiles(img: np.ndarray, tile: int, overlap: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    h, w = img.shape[:2]
    step = max(1, tile - overlap)
    xs = list(range(0, max(1, w - overlap), step)) or [0]
    ys = list(range(0, max(1, h - overlap), step)) or [0]
    tiles, origins = [], []
    for y in ys:
        for x in xs:
            x0, y0 = min(x, max(0, w - tile)), min(y, max(0, h - tile))
            if (x0, y0) in origins:
                continue
            tiles.append(img[y0:y0 + tile, x0:x0 + tile])
            origins.append((x0, y0))
    return tiles, origins


def merge(faces: list[Face], iou: float) -> list[Face]:
    """NMS over faces from several passes, then drop boxes mostly (60%) inside a larger kept box."""
    if not faces:
        return []
    boxes = np.array([f.box.as_tuple() for f in faces], dtype=np.float64)
    scores = np.array([f.score for f in faces], dtype=np.float64)
    kept = [faces[i] for i in nms(boxes, scores, iou)]
    kept.sort(key=lambda f: -f.box.area)
    out: list[Face] = []
    for f in kept:
        b = f.box
        inside = False
        for g in out:
            ix = max(0.0, min(b.x2, g.box.x2) - max(b.x1, g.box.x1))
            iy = max(0.0, min(b.y2, g.box.y2) - max(b.y1, g.box.y1))
            if b.area > 0 and ix * iy / b.area > 0.6:
                inside = True
                break
        if not inside:
            out.append(f)
    out.sort(key=lambda f: -f.score)
    return out
