"""Exact search with numpy: a matrix product over every stored vector.

The reference the ANN index is measured against (bench/search.py), and a
backend for small galleries or for anyone who wants no approximation at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vultus.gallery.search.base import IndexFileError, VectorIndex


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries per row, best first."""
    k = min(k, sims.shape[1])
    if k <= 0:
        return np.zeros((sims.shape[0], 0), np.int64), np.zeros((sims.shape[0], 0), np.float32)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(
        np.arange(sims.shape[1]), (sims.shape[0], 1))
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


class ExactIndex(VectorIndex):
    kind = "exact"
    suffix = ".npz"

    def __init__(self, dim: int, **options):
        super().__init__(dim, **options)
        self._ids = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    def _flush(self) -> None:
        if self._pending:
            self._ids = np.concatenate([self._ids] + [p[0] for p in self._pending])
            self._vectors = np.concatenate([self._vectors] + [p[1] for p in self._pending])
            self._pending = []

    def __len__(self) -> int:
        return len(self._ids) + sum(len(p[0]) for p in self._pending)

    def add(self, ids, vectors) -> None:
        self._pending.append((np.asarray(ids, np.int64).copy(), np.asarray(vectors, np.float32).copy()))

    def remove(self, ids) -> int:
        self._flush()
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64))
        removed = int((~keep).sum())
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        return removed

    def search(self, queries, k, *, exact=False):
        self._flush()
        q = np.atleast_2d(np.asarray(queries, np.float32))
        cols, vals = top_k(q @ self._vectors.T, k)
        ids = self._ids[cols] if cols.size else cols
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
        return ids, vals.astype(np.float32)

    def keys(self) -> np.ndarray:
        self._flush()
        return self._ids.copy()

    def stored_bytes(self, vectors) -> list[bytes]:
        return [np.asarray(v, np.float32).tobytes() for v in vectors]

    def scrub(self, count: int) -> None:
        pass  # remove() already copied the survivors into new arrays

    def save(self, path: Path) -> None:
        self._flush()
        with open(path, "wb") as fh:
            np.savez(fh, ids=self._ids, vectors=self._vectors)

    @classmethod
    def load(cls, path, dim, **options):
        try:
            with np.load(path) as z:
                ids, vectors = z["ids"], z["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexFileError(str(exc)) from exc
        if vectors.ndim != 2 or vectors.shape[1] != dim or len(ids) != len(vectors):
            raise IndexFileError(f"shape {vectors.shape} does not fit {dim}-d vectors")
        out = cls(dim, **options)
        out._ids, out._vectors = ids.astype(np.int64), vectors.astype(np.float32)
        return out

    def memory_bytes(self) -> int:
        self._flush()
        return int(self._ids.nbytes + self._vectors.nbytes)
