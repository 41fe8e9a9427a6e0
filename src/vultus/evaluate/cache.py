"""Embedding cache keyed by the sha256 of an image file's bytes.

One SQLite file per (detector, embedder) configuration under
`cache_dir()/embeddings/<embedder>-<signature>/<detector>-<signature>.sqlite`, where the signatures hash the
model names, versions, weight checksums and the settings that change the output (detector threshold and
resize limit, fusion weights). A changed model therefore gets a fresh cache instead of stale vectors.

Per image it stores every face the detector found (box, score, 5 landmarks), the image size, and the
embedding of each face that has been embedded so far (NaN rows for faces not yet embedded: evaluating
LFW embeds only the central face of each image, and a later run that needs another face adds it).
SQLite handles several processes sharing the file; a cache that cannot be written (read-only home) only
costs speed, never correctness.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.models.registry import cache_dir

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CachedImage:
    """What the cache knows about one image."""

    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32
    vectors: np.ndarray  # (n, dim) float32, NaN rows where a face is not embedded yet

    @property
    def n_faces(self) -> int:
        return int(self.scores.shape[0])

    def has_vector(self, i: int) -> bool:
        return bool(np.isfinite(self.vectors[i]).all())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_files(paths) -> tuple[dict, dict]:
    """({path: sha256}, {path: why it could not be read}) for each path, keyed as given.

    Only regular files under the size cap are read (vultus.imageio.read_file_bytes), so
    a FIFO or a device never hangs this; the reason drops the file name it starts with."""
    from vultus.errors import ImageError
    from vultus.imageio import read_file_bytes

    hashes, errors = {}, {}
    for p in paths:
        try:
            hashes[p] = sha256_bytes(read_file_bytes(p))
        except ImageError as exc:
            errors[p] = str(exc).removeprefix(f"{p}: ")
    return hashes, errors


def _signature(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_signature(spec, extra: dict | None = None) -> dict:
    from vultus.models.registry import get_spec

    # The alignment is part of what an embedding means: a new one must not reuse old vectors.
    return {"name": spec.name, "version": spec.version, "alignment": spec.input.alignment,
            "files": [f.sha256 for f in spec.files],
            "components": [model_signature(get_spec(c)) for c in spec.components], "extra": extra or {}}


def engine_cache_path(engine, root: Path | None = None) -> Path:
    """The cache file for an Engine's detector + embedder configuration."""
    det = engine.detector
    det_sig = model_signature(engine.detector_spec, {"min_score": getattr(det, "min_score", None),
                                                     "max_side": getattr(det, "max_side", None)})
    emb_extra = {}
    if engine.embedder_spec.components:
        from vultus.embed.fused import fusion_weights

        emb_extra["weights"] = fusion_weights()
    emb_sig = model_signature(engine.embedder_spec, emb_extra)
    base = Path(root) if root is not None else cache_dir() / "embeddings"
    return (base / f"{engine.embedder_spec.name}-{_signature(emb_sig)}"
            / f"{engine.detector_spec.name}-{_signature(det_sig)}.sqlite")


class EmbeddingCache:
    def __init__(self, path: Path, dim: int):
        self.path = Path(path)
        self.dim = int(dim)
        self._db: sqlite3.Connection | None = None
        self.writable = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS images (sha256 TEXT PRIMARY KEY, schema INTEGER, width INTEGER, "
                "height INTEGER, n INTEGER, boxes BLOB, scores BLOB, landmarks BLOB, vectors BLOB)")
            self._db.commit()
        except (OSError, sqlite3.Error):
            self._db = None
            self.writable = False

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_many(self, hashes: list[str]) -> dict[str, CachedImage]:
        if self._db is None or not hashes:
            return {}
        out: dict[str, CachedImage] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):  # SQLite limits the number of bound parameters
            chunk = unique[start:start + 500]
            rows = self._db.execute(
                f"SELECT sha256, schema, width, height, n, boxes, scores, landmarks, vectors FROM images "
                f"WHERE sha256 IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for h, schema, w, hh, n, boxes, scores, lms, vecs in rows:
                if schema != SCHEMA_VERSION:
                    continue
                vectors = np.frombuffer(vecs, np.float32).reshape(n, -1) if n else np.zeros((0, self.dim), np.float32)
                if n and vectors.shape[1] != self.dim:
                    continue
                out[h] = CachedImage(
                    width=w, height=hh,
                    boxes=np.frombuffer(boxes, np.float32).reshape(n, 4),
                    scores=np.frombuffer(scores, np.float32).reshape(n),
                    landmarks=np.frombuffer(lms, np.float32).reshape(n, 5, 2),
                    vectors=vectors.copy(),
                )
        return out

    def put_many(self, entries: dict[str, CachedImage]) -> None:
        if self._db is None or not entries:
            return
        rows = [(h, SCHEMA_VERSION, e.width, e.height, e.n_faces,
                 np.ascontiguousarray(e.boxes, np.float32).tobytes(),
                 np.ascontiguousarray(e.scores, np.float32).tobytes(),
                 np.ascontiguousarray(e.landmarks, np.float32).tobytes(),
                 np.ascontiguousarray(e.vectors, np.float32).tobytes()) for h, e in entries.items()]
        try:
            self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.commit()
        except sqlite3.Error:
            self.writable = False  # e.g. disk full or read-only: keep going without the cache

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
