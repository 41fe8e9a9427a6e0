"""The vector index interface: derived data that proposes candidates fast.

An index maps embedding ids (the store's row ids) to vectors and answers
"which ids are nearest to this query?". Its similarities may be approximate
(reduced precision, approximate graph search); the gallery re-ranks every
candidate with the exact float32 vectors from the store, so an index only
decides which candidates are looked at, never a final score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class IndexFileError(Exception):
    """An index file that cannot be read back; the caller rebuilds it."""


class VectorIndex(ABC):
    kind: str = ""
    suffix: str = ".idx"

    def __init__(self, dim: int, **options):
        self.dim = dim
        self.options = options

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (N,) int64 ids and (N, dim) float32 unit vectors; ids must be new."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove ids that are present; returns how many were."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) int64 ids (-1 where fewer exist) and (Q, k) float32 similarities, best first."""

    def search_above(self, queries: np.ndarray, k: int, min_similarity: float, *,
                     exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """As search, keeping only hits with similarity >= min_similarity (-1 / -inf elsewhere).
        Clustering's kNN graph needs only the neighbours that can matter; an index that can skip
        the rest cheaply overrides this."""
        ids, sims = self.search(queries, k, exact=exact)
        low = sims < min_similarity
        return np.where(low, -1, ids), np.where(low, -np.inf, sims).astype(np.float32)

    @abstractmethod
    def keys(self) -> np.ndarray:
        """Every id held, int64."""

    @abstractmethod
    def stored_bytes(self, vectors: np.ndarray) -> list[bytes]:
        """How each vector would look inside a saved file: used to prove that
        removed vectors left no trace in it."""

    @abstractmethod
    def scrub(self, count: int) -> None:
        """Overwrite storage freed by the last removals (at least `count` slots)."""

    @abstractmethod
    def save(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, path: Path, dim: int, **options) -> VectorIndex:
        """Read a saved index; IndexFileError if it cannot."""

    @abstractmethod
    def memory_bytes(self) -> int: ...


class NativeIndex(VectorIndex):
    """An index a store keeps itself (GalleryStore.native_index), inside its own
    transactions: adding and removing happen with the rows, so add() and remove() are
    not the gallery's to call, and there is no file to save, load or scrub."""

    kind = "native"
    suffix = ""
    #: up to this many vectors, "auto" search scans them all (exactly) rather than walk the index
    exhaustive_up_to: int = 20_000

    @abstractmethod
    def describe(self) -> str:
        """One line for `vultus gallery stats`: what the index is and its settings."""

    @abstractmethod
    def rebuild(self) -> None:
        """Rebuild the index from the rows (PostgreSQL: REINDEX)."""

    def add(self, ids, vectors) -> None:
        raise NotImplementedError("a native index is written by the store's own transactions")

    def remove(self, ids) -> int:
        raise NotImplementedError("a native index is written by the store's own transactions")

    def stored_bytes(self, vectors) -> list[bytes]:
        return []

    def scrub(self, count: int) -> None:
        return None

    def save(self, path: Path) -> None:
        raise NotImplementedError("a native index lives in the store")

    @classmethod
    def load(cls, path, dim, **options):
        raise IndexFileError("a native index lives in the store")
