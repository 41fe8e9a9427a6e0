"""Typed results returned by every stage of the pipeline.

Coordinates are in pixels of the original image (after EXIF orientation), x to
the right and y down. Vectors are numpy arrays; everything else is plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from vultus.errors import ModelMismatchError, VultusError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Embedding:
    """An L2-normalised float32 vector and the name of the model that made it."""

    vector: np.ndarray
    model: str

    def similarity(self, other: Embedding) -> float:
        """Cosine similarity; refuses to compare vectors from different models."""
        if other.model != self.model:
            raise ModelMismatchError(
                f"cannot compare an embedding from {self.model!r} with one from {other.model!r}"
            )
        return float(np.dot(self.vector, other.vector))


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face.

    landmarks: (5, 2) float32 in the order right eye, left eye, nose tip, right
    and left mouth corner (the subject's right, i.e. the eye on the image's left
    comes first), the order the 112x112 alignment template uses.
    """

    box: Box
    score: float
    landmarks: np.ndarray
    detector: str
    landmarks68: np.ndarray | None = None
    embedding: Embedding | None = None

    def to_dict(self) -> dict:
        out = {
            "box": [round(v, 1) for v in self.box.as_tuple()],
            "score": round(self.score, 4),
            "landmarks": np.round(self.landmarks, 1).tolist(),
            "detector": self.detector,
        }
        if self.landmarks68 is not None:
            out["landmarks68"] = np.round(self.landmarks68, 1).tolist()
        if self.embedding is not None:
            out["embedding_model"] = self.embedding.model
        return out


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A decision threshold and the false-match rate it was measured to give."""

    threshold: float
    fmr: float
    source: str = "LFW"

    def describe(self) -> str:
        return f"threshold {self.threshold:.4f} (false-match rate {self.fmr:.0e} on {self.source})"


@dataclass(frozen=True, slots=True)
class Verification:
    """The answer to "are these two faces the same person?"."""

    same: bool
    similarity: float
    threshold: float
    fmr: float
    model: str
    faces: tuple[Face, Face] = field(repr=False, default=None)  # type: ignore[assignment]

    def to_dict(self) -> dict:
        return {
            "same": self.same,
            "similarity": round(self.similarity, 4),
            "threshold": round(self.threshold, 4),
            "false_match_rate": self.fmr,
            "model": self.model,
            "faces": [f.to_dict() for f in self.faces] if self.faces else None,
        }


@dataclass(frozen=True, slots=True)
class ImageResult(Generic[T]):
    """The outcome for one image of a batch: a value, or the error that image met.

    Batch and stream methods (``Engine.detect_batch``, ``Engine.detect_stream``,
    ``Gallery.identify`` ...) return one of these per input, in input order, so
    one bad image never loses the others. Exactly one of ``value`` and ``error``
    is set. ``index`` is the input's position in the batch or stream, ``source``
    a label for people (the path for a path; ``<image N>`` otherwise), and
    ``width``/``height`` the decoded image's size (None when decoding failed).
    """

    index: int
    source: str
    value: T | None = None
    error: VultusError | None = None
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value; raises the image's error when it has one."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]

    def error_dict(self) -> dict[str, Any] | None:
        """``{"code", "message", "details"}`` of the error (``VultusError.to_dict``), or None."""
        return None if self.error is None else self.error.to_dict()
