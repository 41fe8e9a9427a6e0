"""The Embedder interface: faces in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from vultus.models.registry import ModelSpec
from vultus.types import Face

FaceItem = tuple[np.ndarray, Face]  # (RGB image, a face found in it)


class Embedder(ABC):
    batch_size = 32

    def __init__(self, spec: ModelSpec, *, threads: int | None = None):
        self.spec = spec
        self.name = spec.name
        self.dim = spec.dim
        self.threads = threads

    def embed(self, items: Sequence[FaceItem]) -> np.ndarray:
        """(N, dim) float32, each row unit length, for a flat list of (image, face)."""
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._embed(items[i:i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        return l2_normalise(np.concatenate(parts).astype(np.float32))

    @abstractmethod
    def _embed(self, items: Sequence[FaceItem]) -> np.ndarray:
        """Raw vectors for one batch."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
