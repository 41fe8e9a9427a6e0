"""Facial expression: vultus's own FER2013 model (train/emotion.py), in onnxruntime.

Each face is aligned from its 5 landmarks onto the average FER2013 framing
(FER_TEMPLATE, measured with YuNet on 1,437 FER2013 train images), converted
to grey the way Pillow's "L" mode does (ITU-R 601 luma), and fed as a 48x48
float image with values 0-255. The graph normalises, averages ten views (as
the model card describes) and returns seven probabilities.

The seven classes do not cover every expression (contempt, confusion, pain,
talking...). When the most likely class is below UNCERTAIN_BELOW, chosen on
a held-out part of the train split as the point below which the model is
wrong more often than right, the label is "uncertain" instead of a guess;
the probabilities are still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vultus.align import similarity_transform
from vultus.attributes.age_gender import warp_chip
from vultus.errors import VultusError
from vultus.models.registry import ModelSpec
from vultus.models.runtime import LazySession
from vultus.types import Face

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
UNCERTAIN = "uncertain"

# Where Face.landmarks (image-left eye, image-right eye, nose tip, mouth
# corners) sit in a 48x48 FER2013 image: the median over FER2013 train images.
FER_TEMPLATE = np.array([
    [14.51, 18.24], [32.61, 18.47], [22.60, 28.33], [15.91, 35.76], [30.65, 36.14],
], dtype=np.float32)
FER_SIZE = 48

# Chosen by train/emotion.py on the held-out part of the train split for the
# shipped model (train/reports/emotion-fer-v2.json, docs/model-cards/emotion.md):
# below this top probability the model's answers are more often wrong than right.
UNCERTAIN_BELOW = 0.417


@dataclass(frozen=True, slots=True)
class Emotion:
    label: str  # one of EMOTIONS, or "uncertain"
    top: str  # the most likely of EMOTIONS, even when label is "uncertain"
    confidence: float  # probability of `top`
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"label": self.label, "top": self.top, "confidence": round(self.confidence, 3),
                "probabilities": {k: round(v, 3) for k, v in self.probabilities.items()}}


def read_fer2013(zip_path: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(48x48 uint8 grey images, class indices into EMOTIONS) of one split of
    the FER2013 zip (`<split>/<class>/<name>.jpg`), in name order."""
    import io
    import zipfile

    from PIL import Image

    xs, ys = [], []
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == split and parts[1] in EMOTIONS and parts[2].lower().endswith(".jpg"):
                img = Image.open(io.BytesIO(zf.read(name))).convert("L")
                if img.size != (FER_SIZE, FER_SIZE):
                    img = img.resize((FER_SIZE, FER_SIZE), Image.BILINEAR)
                xs.append(np.asarray(img, dtype=np.uint8))
                ys.append(EMOTIONS.index(parts[1]))
    if not xs:
        raise VultusError(f"{zip_path}: no {split}/<class>/*.jpg images of the FER2013 layout")
    return np.stack(xs), np.array(ys, dtype=np.int64)


def fer_crop(image: np.ndarray, face: Face) -> np.ndarray:
    """The 48x48 uint8 grey crop of `face` framed as FER2013 faces are."""
    m = similarity_transform(face.landmarks, FER_TEMPLATE)
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return warp_chip(grey, m, FER_SIZE)


class EmotionClassifier:
    batch_size = 64

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, uncertain_below: float | None = None,
                 **_options):
        self.spec = spec
        self.name = spec.name
        self.uncertain_below = UNCERTAIN_BELOW if uncertain_below is None else uncertain_below
        self._session = LazySession(lambda: self.spec.path(), threads)

    def probabilities_of_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 7) probabilities for (N, 48, 48) uint8 grey FER-framed faces."""
        parts = []
        for i in range(0, len(crops), self.batch_size):
            batch = np.ascontiguousarray(crops[i:i + self.batch_size, None], dtype=np.float32)
            parts.append(self._session.run(batch)[0])
        return np.concatenate(parts) if parts else np.zeros((0, len(EMOTIONS)), dtype=np.float32)

    def probabilities(self, items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        crops = np.stack([fer_crop(img, f) for img, f in items]) if items else np.zeros((0, 48, 48), np.uint8)
        return self.probabilities_of_crops(crops)

    def predict(self, items: Sequence[tuple[np.ndarray, Face]]) -> list[Emotion]:
        return self.from_probabilities(self.probabilities(items))

    def from_probabilities(self, probs: np.ndarray) -> list[Emotion]:
        out = []
        for p in probs.astype(np.float64):
            k = int(p.argmax())
            top = EMOTIONS[k]
            out.append(Emotion(label=top if p[k] >= self.uncertain_below else UNCERTAIN, top=top,
                               confidence=float(p[k]), probabilities=dict(zip(EMOTIONS, map(float, p), strict=True))))
        return out
