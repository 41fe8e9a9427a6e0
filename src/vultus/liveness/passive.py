"""Passive liveness from one image: the MiniFASNet pair of Silent-Face-Anti-Spoofing, in onnxruntime.

Minivision's two networks (Apache-2.0), converted to ONNX by train/convert_minifasnet.py,
each look at the face at a different zoom: MiniFASNetV2 at the detector's box enlarged
2.7 times, MiniFASNetV1SE at 4.0 times (the frame around the face: a photo's border,
fingers, a phone's bezel). Each crop is resized to 80x80 and fed as BGR floats 0-255,
unscaled, exactly as the authors' test.py does; each network gives three probabilities
(0 and 2: two kinds of attack, 1: live), and the pair's live score is the mean of the
two networks' probability of class 1, in [0, 1].

The authors' crop (src/generate_patches.py there) is re-implemented in `authors_patch`:
the box is enlarged about its centre, the scale is cut down so the enlarged box fits
the image, the box is shifted back inside the image, and the pixels from its integer
corners (both included) are resized with OpenCV's default bilinear filter.

When the enlarged box is larger than the image the authors' code shrinks the zoom until
it fits: common in full frames (most of NUAA's 640x480 webcam faces at 4.0x, shrunk to
about 2.3x), extreme in a tight face crop (the face fills the image), where the networks
see the face at ~1x with no surroundings, far from what they were trained on.
`cut_patch` offers other handlings of that case only (`EDGES`): the full enlarged box,
centred on the face, is cut from the image padded beyond its edge (by replicating the
edge pixels, by mirroring, or with the image's mean colour). A box that fits the image
(the zoom not shrunk) is cut exactly as the authors cut it, whatever the handling.
Shipped (`EDGE`): the authors' crop; bench/liveness_tight.py compared the others by a rule
written before the run, and none met it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vultus.models.registry import ModelSpec
from vultus.models.runtime import LazySession
from vultus.types import Box, Face

PATCH = 80
LIVE_CLASS = 1
# (network, zoom): the file name of each network in the registry entry, and its crop scale.
NETWORKS = (("minifasnet-v2.onnx", 2.7), ("minifasnet-v1se.onnx", 4.0))
# How a face whose enlarged box is larger than the image is cut (cut_patch): "authors" shrinks the zoom
# (their code, unchanged); the others pad the image beyond its edge so the full box exists.
EDGES = ("authors", "replicate", "reflect", "constant-mean")
_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101, "constant-mean": cv2.BORDER_CONSTANT}
# The handling MiniFASNetPair uses: the authors' crop. No padding candidate met the rule written before
# bench/liveness_tight.py compared them (bench/results/liveness-tight.md): each made NUAA's tight crops
# worse for live faces and attacks alike, and let micro_print_screen's prints pass.
EDGE = "authors"


def authors_box(box: Box) -> tuple[int, int, int, int]:
    """A detector box as the authors' detector reports it: integer left, top, width, height."""
    left, top = int(box.x1), int(box.y1)
    return left, top, int(box.x2 - box.x1 + 1), int(box.y2 - box.y1 + 1)


def patch_corners(src_w: int, src_h: int, bbox: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2), both corners inside, of `bbox` (left, top, w, h) enlarged `scale`
    times about its centre: the scale shrinks so the box fits the image, then the box slides inside."""
    x, y, w, h = bbox
    w, h = max(w, 1), max(h, 1)
    scale = fitted_scale(src_w, src_h, bbox, scale)
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = w * scale / 2, h * scale / 2
    x1, y1, x2, y2 = cx - half_w, cy - half_h, cx + half_w, cy + half_h
    if x1 < 0:
        x2, x1 = x2 - x1, 0
    if y1 < 0:
        y2, y1 = y2 - y1, 0
    if x2 > src_w - 1:
        x1, x2 = x1 - (x2 - src_w + 1), src_w - 1
    if y2 > src_h - 1:
        y1, y2 = y1 - (y2 - src_h + 1), src_h - 1
    return int(x1), int(y1), int(x2), int(y2)


def fitted_scale(src_w: int, src_h: int, bbox: tuple[int, int, int, int], scale: float) -> float:
    """The zoom the authors' crop uses: `scale`, cut down until `bbox` (left, top, w, h) enlarged that much fits
    the image."""
    _, _, w, h = bbox
    return min((src_h - 1) / max(h, 1), (src_w - 1) / max(w, 1), scale)


def box_fits(src_w: int, src_h: int, bbox: tuple[int, int, int, int], scale: float) -> bool:
    """Whether `bbox` enlarged `scale` times fits the image in size (the authors' code keeps the zoom)."""
    return fitted_scale(src_w, src_h, bbox, scale) >= scale


def padded_patch(bgr: np.ndarray, bbox: tuple[int, int, int, int], scale: float, edge: str,
                 size: int = PATCH) -> np.ndarray:
    """The (size, size, 3) patch of `bbox` enlarged `scale` times about its centre, at the full zoom: the
    pixels of the box beyond the image's edge made by `edge` ("replicate", "reflect", "constant-mean")."""
    x, y, w, h = bbox
    w, h = max(w, 1), max(h, 1)
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = w * scale / 2, h * scale / 2
    x1, y1 = int(np.floor(cx - half_w)), int(np.floor(cy - half_h))
    x2, y2 = int(np.floor(cx + half_w)), int(np.floor(cy + half_h))
    src_h, src_w = bgr.shape[:2]
    left, top = max(0, -x1), max(0, -y1)
    right, bottom = max(0, x2 - (src_w - 1)), max(0, y2 - (src_h - 1))
    value = tuple(float(v) for v in bgr.reshape(-1, bgr.shape[2]).mean(axis=0)) if edge == "constant-mean" else 0
    padded = cv2.copyMakeBorder(bgr, top, bottom, left, right, _BORDERS[edge], value=value)
    return cv2.resize(padded[y1 + top:y2 + top + 1, x1 + left:x2 + left + 1], (size, size))


def cut_patch(bgr: np.ndarray, bbox: tuple[int, int, int, int], scale: float, edge: str = EDGE,
              size: int = PATCH) -> np.ndarray:
    """The patch a network of this zoom is fed: the authors' crop when the enlarged box fits the image
    (or `edge` is "authors"), else the full-zoom box with the image padded by `edge` (padded_patch)."""
    if edge not in EDGES:
        raise ValueError(f"unknown edge handling {edge!r}; known: {', '.join(EDGES)}")
    h, w = bgr.shape[:2]
    if edge == "authors" or box_fits(w, h, bbox, scale):
        return authors_patch(bgr, bbox, scale, size)
    return padded_patch(bgr, bbox, scale, edge, size)


def reached_zoom(image_shape: tuple[int, ...], box: Box, scale: float = NETWORKS[0][1]) -> float:
    """How far the authors' crop can enlarge the face box inside the image (at most `scale`, the 2.7x of
    MiniFASNetV2 by default): 2.7 when the network sees the surroundings it was trained with, about 1 when the
    face fills the image and it sees none."""
    h, w = image_shape[:2]
    return float(fitted_scale(w, h, authors_box(box), scale))


def authors_patch(bgr: np.ndarray, bbox: tuple[int, int, int, int], scale: float, size: int = PATCH) -> np.ndarray:
    """The (size, size, 3) uint8 BGR patch the authors' CropImage cuts for a network of this zoom."""
    h, w = bgr.shape[:2]
    x1, y1, x2, y2 = patch_corners(w, h, bbox, scale)
    return cv2.resize(bgr[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1], (size, size))


def to_bgr(image: np.ndarray) -> np.ndarray:
    """vultus images are RGB (or grey); the networks were trained on OpenCV's BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, ::-1])


class MiniFASNetPair:
    """Both networks; `probabilities` gives each network's three class probabilities per face."""

    batch_size = 64

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, **_options):
        self.spec = spec
        self.name = spec.name
        self._sessions = [LazySession(lambda f=filename: self.spec.paths()[f], threads) for filename, _ in NETWORKS]

    def patches(self, items: Sequence[tuple[np.ndarray, Face]], edge: str = EDGE) -> list[np.ndarray]:
        """Per network, the (N, 80, 80, 3) uint8 BGR patches of the faces (images RGB as vultus loads them).
        `edge`: how a box larger than the image is cut (cut_patch); anything but the shipped EDGE is for
        bench/liveness_tight.py only (the operating points in liveness.json are measured with EDGE)."""
        out = [np.zeros((len(items), PATCH, PATCH, 3), np.uint8) for _ in NETWORKS]
        bgr_of: dict[int, np.ndarray] = {}
        for i, (img, face) in enumerate(items):
            bgr = bgr_of.get(id(img))
            if bgr is None:
                bgr = bgr_of[id(img)] = to_bgr(img)
            for k, (_, scale) in enumerate(NETWORKS):
                out[k][i] = cut_patch(bgr, authors_box(face.box), scale, edge)
        return out

    def probabilities_of_patches(self, patches: Sequence[np.ndarray]) -> np.ndarray:
        """(networks, N, 3) softmax outputs for each network's (N, 80, 80, 3) uint8 BGR patches."""
        result = []
        for session, batch in zip(self._sessions, patches, strict=True):
            parts = []
            for i in range(0, len(batch), self.batch_size):
                chunk = np.ascontiguousarray(batch[i:i + self.batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
                parts.append(session.run(chunk)[0])
            result.append(np.concatenate(parts) if parts else np.zeros((0, 3), np.float32))
        return np.stack(result)

    def probabilities(self, items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        return self.probabilities_of_patches(self.patches(items))

    def live_scores(self, items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        """(N,) the pair's live score: the mean of the two networks' probability of `live`."""
        return reference_score(self.probabilities(items))


def reference_score(probs: np.ndarray) -> np.ndarray:
    """The authors' live score from (networks, N, 3) probabilities: the mean probability of class 1."""
    return probs[:, :, LIVE_CLASS].mean(axis=0) if probs.size else np.zeros(probs.shape[1], np.float64)


def reference_is_live(probs: np.ndarray) -> np.ndarray:
    """The authors' decision: live when class 1 has the largest summed probability (test.py's argmax)."""
    return probs.sum(axis=0).argmax(axis=1) == LIVE_CLASS
