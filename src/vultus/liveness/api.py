"""Liveness of every face in an image: typed results, decisions at measured operating points.

The shipped score and its operating points are in vultus/models/liveness.json,
written by bench/liveness.py: which model is adopted (vultus's fusion or the
MiniFASNet reference pair), and per named operating point the threshold chosen
on the training subjects with the APCER and BPCER measured at it on the
held-out subjects (ISO/IEC 30107-3 terms: APCER, the share of attacks accepted
as live; BPCER, the share of live faces refused).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import cv2
import numpy as np

from vultus.errors import VultusError
from vultus.types import Box, Face

# A face filling the whole frame (a tight crop) is often missed by the detector; such images are
# tried again with this much border added on every side (as a share of the longer side).
PAD_SHARE = 0.3
# ...and, if still no face, halved again and again. A face that fills a 468 px crop is larger than
# most faces YuNet was trained on, and the halftone dots of a re-photographed paper print or the moire
# of a screen are fine texture that hides the face from it: shrinking with area averaging
# (cv2.INTER_AREA) brings the face into the detector's size range and averages that texture away. On
# micro_print_screen this finds the face in all 6 paper prints and the 1 screen replay the bordered
# image missed (7 of 18 crops; bench/results/liveness-acquire.md, where no face is found in 116
# face-free photo crops); the MiniFASNet crop is then cut from the full-resolution image, so the
# halftone and moire the liveness networks look at are untouched. No threshold is lowered.
# The halving stops before the bordered image's shorter side falls below this:
MIN_SHRUNK_SIDE = 96


# A face whose 2.7x crop cannot grow past this zoom inside the image (the face fills the frame) is scored,
# but with a warning: the lowest zoom reached by any live face of the NUAA training subjects' full frames,
# on which the operating points were chosen (1.50; box geometry only, no score). On tight crops of held-out
# NUAA subjects `door` accepted 17.4% of print attacks against 0% in their full frames, and no padding of
# the image helped (bench/results/liveness-tight.md).
MIN_ZOOM = 1.5


@dataclass(frozen=True, slots=True)
class LivenessPoint:
    """A decision threshold on the live score and the error rates measured at it."""

    name: str
    threshold: float
    apcer: float  # attacks accepted as live, on held-out subjects
    bpcer: float  # live faces refused, on held-out subjects
    measured_on: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "threshold": round(self.threshold, 6), "apcer": round(self.apcer, 4),
                "bpcer": round(self.bpcer, 4), "measured_on": self.measured_on}


@dataclass(frozen=True, slots=True)
class Liveness:
    """One face's liveness: `live` is score >= point.threshold."""

    live: bool
    score: float  # in [0, 1]; higher is more likely live
    point: LivenessPoint
    model: str
    face: Face = field(repr=False)
    zoom: float = float("nan")  # how far the 2.7x crop could enlarge the box inside the image (passive.reached_zoom)

    @property
    def threshold(self) -> float:
        return self.point.threshold

    @property
    def apcer(self) -> float:
        return self.point.apcer

    @property
    def bpcer(self) -> float:
        return self.point.bpcer

    @property
    def reason(self) -> str:
        """Why a face was refused (empty when live)."""
        if self.live:
            return ""
        return f"liveness score {self.score:.3f} below {self.point.threshold:.3f} (presentation attack suspected)"

    @property
    def warning(self) -> str:
        """Set when the face fills the image, so the networks saw none of its surroundings (empty otherwise)."""
        if not self.zoom < MIN_ZOOM:
            return ""
        return (f"the face fills the image (its crop reached zoom {self.zoom:.1f} of 2.7): outside the conditions "
                f"the error rates were measured in, and tight crops let print attacks pass; give the whole camera "
                f"frame")

    def to_dict(self) -> dict:
        return {"live": self.live, "score": round(self.score, 4), "threshold": round(self.point.threshold, 6),
                "operating_point": self.point.name, "apcer": round(self.point.apcer, 4),
                "bpcer": round(self.point.bpcer, 4), "model": self.model,
                "box": [round(v, 1) for v in self.face.box.as_tuple()],
                "zoom": None if self.zoom != self.zoom else round(self.zoom, 3), "warning": self.warning}


@cache
def shipped() -> dict:
    """The contents of vultus/models/liveness.json, read once per process (every
    liveness call needs it; treat it as read-only)."""
    return json.loads(resources.files("vultus").joinpath("models/liveness.json").read_text())


def operating_points(model: str | None = None) -> dict[str, LivenessPoint]:
    info = shipped()
    model = model or info["adopted"]
    points = info["models"].get(model)
    if points is None:
        raise VultusError(f"no measured liveness operating points for model {model!r}", code="liveness_model",
                          model=model)
    return {name: LivenessPoint(name, p["threshold"], p["apcer"], p["bpcer"], info["measured_on"])
            for name, p in points["points"].items()}


def operating_point(name: str | None = None, model: str | None = None) -> LivenessPoint:
    points = operating_points(model)
    name = name or shipped()["default_point"]
    if name not in points:
        raise VultusError(f"unknown liveness operating point {name!r}; known: {', '.join(points)}",
                          code="liveness_point", point=name)
    return points[name]


def pad_for_detection(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The image with a PAD_SHARE border replicated on every side, and the border's width: the first
    help's try (detect_helped) for an image that fits the detector's size."""
    pad = int(round(PAD_SHARE * max(image.shape[:2])))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad


def detect_for_liveness(detector, images: Sequence[np.ndarray]) -> list[list[Face]]:
    """Faces per image. An image where none is found is tried again with a border added (a tight face
    crop), then with that bordered image halved again and again (a face too large for the detector, or
    hidden by a print's halftone or a screen's moire) down to MIN_SHRUNK_SIDE, stopping at the first try
    that finds a face; the faces found are mapped back to the image and clipped to it."""
    found = detector.detect(list(images))
    for i, faces in enumerate(found):
        if not faces:
            found[i] = detect_helped(detector, images[i])[0]
    return found


def detect_helped(detector, image: np.ndarray) -> tuple[list[Face], str]:
    """The faces an image's bordered and then shrunk copies give (see detect_for_liveness), with the
    try that found them: "border", "border, shrunk 0.5", ...; ([], "") when none does.

    The shrink steps are taken from the size the detector works at: a photo larger than its max_side
    with the border is first brought to that size (the detector would shrink it so itself, and halving
    the full-size photo would only repeat that try), and only then bordered, so a large photo is
    never copied at full size with its border."""
    h, w = image.shape[:2]
    pad = int(round(PAD_SHARE * max(h, w)))
    max_side = getattr(detector, "max_side", None)
    base = min(1.0, max_side / (max(h, w) + 2 * pad)) if max_side else 1.0
    if base < 1.0:
        image = cv2.resize(image, (max(1, round(w * base)), max(1, round(h * base))), interpolation=cv2.INTER_AREA)
        pad = int(round(pad * base))
    bh, bw = image.shape[:2]
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    shrink, tried = 1.0, padded
    while True:
        faces = detector.detect([tried])[0]
        if faces:
            how = "border" if shrink == 1.0 else f"border, shrunk {shrink:g}"
            # tried -> padded -> the (possibly reduced) image -> the image as given
            kx, ky = padded.shape[1] / tried.shape[1], padded.shape[0] / tried.shape[0]
            return [_back(f, kx, ky, pad, w / bw, h / bh, w, h) for f in faces], how
        shrink /= 2
        if shrink * min(padded.shape[:2]) < MIN_SHRUNK_SIDE:
            return [], ""
        tried = cv2.resize(padded, (max(1, round(padded.shape[1] * shrink)), max(1, round(padded.shape[0] * shrink))),
                           interpolation=cv2.INTER_AREA)


def _back(face: Face, kx: float, ky: float, pad: int, rx: float, ry: float, w: int, h: int) -> Face:
    """A face found in a shrunk (kx, ky: the bordered copy's size over the shrunk one's) bordered (pad px)
    copy of an image reduced rx, ry times, in the image's own coordinates; its box clipped to the image."""
    from dataclasses import replace

    def x(v):
        return (v * kx - pad) * rx

    def y(v):
        return (v * ky - pad) * ry

    b = face.box
    box = Box(min(max(0.0, x(b.x1)), float(w)), min(max(0.0, y(b.y1)), float(h)),
              max(0.0, min(float(w), x(b.x2))), max(0.0, min(float(h), y(b.y2))))

    def points(p):
        return None if p is None else np.stack([x(p[:, 0]), y(p[:, 1])], axis=1).astype(np.float32)

    return replace(face, box=box, landmarks=points(face.landmarks), landmarks68=points(face.landmarks68))


def liveness_batch(engine, images: Sequence, faces: Sequence[Sequence[Face]] | None = None, *,
                   point: str | None = None, model: str | None = None,
                   threshold: float | None = None) -> list[list[Liveness]]:
    """Per image, a Liveness for every face (detected if not given), all faces scored in one batch.

    `model`: a registry model of task "liveness" (default: the adopted one in liveness.json);
    `point`: a named operating point of that model ("door", "check-in"; default in liveness.json);
    `threshold`: a threshold of your own instead (its APCER and BPCER are then unknown: NaN)."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    model = model or shipped()["adopted"]
    scorer = get_model(model, task="liveness")
    chosen = operating_point(point, model)
    if threshold is not None:
        chosen = LivenessPoint("custom", float(threshold), float("nan"), float("nan"), "not measured")
    arrays = [load_image(i) for i in images]
    if faces is None:
        faces = detect_for_liveness(engine.detector, arrays)
    items = [(img, f) for img, fs in zip(arrays, faces, strict=True) for f in fs]
    scores = scorer.live_scores(items) if items else np.zeros(0)
    from vultus.liveness.passive import reached_zoom

    out, k = [], 0
    for img, fs in zip(arrays, faces, strict=True):
        row = []
        for f in fs:
            score = float(scores[k])
            row.append(Liveness(live=score >= chosen.threshold, score=score, point=chosen, model=model, face=f,
                                zoom=reached_zoom(img.shape, f.box)))
            k += 1
        out.append(row)
    return out
