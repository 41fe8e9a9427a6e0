"""HNSW approximate search with usearch.

Face embeddings are hard for graph search: models are trained to spread
people evenly over the sphere, so SFace vectors of LFW use about 115 of their
128 dimensions (participation ratio), and past a person's own faces the
nearest neighbours are a crowd of strangers at nearly the same similarity.
bench/search.py measured on vectors fitted to LFW: connectivity 32 reaches a
given recall with half the search effort of 16; int8 storage caps recall near
0.92 (its rounding reorders the near-ties); half precision loses nothing
measurable once the gallery re-ranks the candidates exactly, at half the
memory of float32. The default search expansion favours recall over speed;
see bench/results/search.md for the trade-off at 100k and 1M.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vultus.gallery.search.base import IndexFileError, VectorIndex
from vultus.models.runtime import default_threads

# Keys at or above this are never embedding ids: scrub() uses them for the
# throw-away vectors that overwrite freed slots.
_SCRUB_KEY_BASE = 1 << 62

DEFAULTS = {"dtype": "f16", "connectivity": 32, "expansion_add": 128, "expansion_search": 256}


class HnswIndex(VectorIndex):
    kind = "hnsw"
    suffix = ".usearch"

    def __init__(self, dim: int, **options):
        opts = DEFAULTS | options
        super().__init__(dim, **opts)
        from usearch.index import Index

        self._index = Index(ndim=dim, metric="ip", dtype=opts["dtype"], connectivity=int(opts["connectivity"]),
                            expansion_add=int(opts["expansion_add"]), expansion_search=int(opts["expansion_search"]))

    def __len__(self) -> int:
        return len(self._index)

    @property
    def dtype(self) -> str:
        return str(self._index.dtype).rsplit(".", 1)[-1].lower()

    def add(self, ids, vectors) -> None:
        ids = np.asarray(ids, dtype=np.uint64)
        if ids.size == 0:
            return
        threads = default_threads() if ids.size > 256 else 1
        self._index.add(ids, np.ascontiguousarray(vectors, dtype=np.float32), threads=threads)

    def remove(self, ids) -> int:
        ids = np.asarray(ids, dtype=np.uint64)
        if ids.size == 0:
            return 0
        present = np.atleast_1d(self._index.contains(ids))
        gone = ids[present]
        if gone.size:
            self._index.remove(gone)
        return int(gone.size)

    def search(self, queries, k, *, exact=False):
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n_q = q.shape[0]
        if len(self._index) == 0 or k <= 0:
            return np.full((n_q, max(k, 0)), -1, np.int64), np.full((n_q, max(k, 0)), -np.inf, np.float32)
        threads = 1 if n_q == 1 else default_threads()
        m = self._index.search(q, count=k, threads=threads, exact=exact)
        keys = np.asarray(m.keys, dtype=np.uint64).astype(np.int64).reshape(n_q, -1)
        sims = (1.0 - np.asarray(m.distances, dtype=np.float32)).reshape(n_q, -1)
        # One query comes back as Matches (only the hits), several as BatchMatches.
        counts = np.asarray(m.counts).reshape(n_q) if hasattr(m, "counts") else np.array([keys.shape[1]])
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        keys = np.where(valid, keys, -1)
        sims = np.where(valid, sims, -np.inf).astype(np.float32)
        if keys.shape[1] < k:
            pad = k - keys.shape[1]
            keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        return keys, sims

    def keys(self) -> np.ndarray:
        return np.asarray(self._index.keys, dtype=np.uint64).astype(np.int64)

    def stored_bytes(self, vectors):
        v = np.asarray(vectors, np.float32)
        if self.dtype == "f16":
            return [row.astype(np.float16).tobytes() for row in v]
        if self.dtype == "f32":
            return [row.tobytes() for row in v]
        return None  # quantised storage: the bytes cannot be predicted, so the caller rebuilds instead

    def scrub(self, count: int) -> None:
        """usearch frees a removed vector's slot but leaves its bytes; adding
        throw-away vectors reuses those slots and overwrites them."""
        if count <= 0:
            return
        rng = np.random.default_rng()
        junk = rng.standard_normal((count, self.dim)).astype(np.float32)
        junk /= np.linalg.norm(junk, axis=1, keepdims=True)
        keys = np.arange(_SCRUB_KEY_BASE, _SCRUB_KEY_BASE + count, dtype=np.uint64)
        self._index.add(keys, junk, threads=1)
        self._index.remove(keys)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def load(cls, path, dim, **options):
        from usearch.index import Index

        try:
            meta = Index.metadata(str(path))
        except (ValueError, RuntimeError, OSError) as exc:
            raise IndexFileError(f"not a usearch index ({exc})") from exc
        if not meta or meta.get("dimensions") != dim:
            raise IndexFileError(f"index holds {meta and meta.get('dimensions')}-d vectors, expected {dim}")
        dtype = str(meta["kind_scalar"]).rsplit(".", 1)[-1].lower()
        out = cls(dim, **(options | {"dtype": dtype}))
        try:
            out._index.load(str(path))
        except (RuntimeError, ValueError, OSError) as exc:
            raise IndexFileError(f"cannot load ({exc})") from exc
        return out

    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)
