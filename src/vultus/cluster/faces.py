"""Every face of every photo, embedded once: the input of clustering.

Each file is hashed (sha256 of its bytes) and looked up in the evaluation's embedding cache
(vultus.evaluate.cache, one SQLite file per detector + embedder configuration), so a re-run detects
and embeds only new files. Every image is still decoded, because the quality gate and the report's
thumbnails need its pixels (decoding is a small share of detecting and embedding). Files that cannot
be read or decoded are listed with the reason and skipped; they never stop the run. Work is done by
worker processes when there are enough new images to repay starting them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.cache import CachedImage, EmbeddingCache, engine_cache_path, hash_files
from vultus.gallery.gate import GateThresholds, check, measure
from vultus.types import Box, Embedding, Face

THUMB_PX = 96  # side of the square face thumbnail the report embeds
THUMB_JPEG_QUALITY = 80
CHUNK = 16  # images per batch (and per worker task)
MIN_NEW_PER_WORKER = 64  # below this many new images per worker, worker start-up costs more than it saves


@dataclass(frozen=True)
class PhotoFace:
    """One detected face: where it is, how good it is, its embedding and a thumbnail."""

    image: str  # the path as given
    sha256: str
    index: int  # the face's number in its image (detector order)
    box: Box
    score: float
    quality: float
    gate: tuple[str, ...]  # why the quality gate refuses it; empty when it passes
    vector: np.ndarray = field(repr=False)
    thumbnail: bytes = field(default=b"", repr=False)  # JPEG

    @property
    def key(self) -> str:
        """Stable across runs and machines: the image bytes and the face's place in them."""
        return f"{self.sha256}:{self.index}"


@dataclass(frozen=True)
class PhotoFaces:
    faces: list[PhotoFace]
    errors: dict[str, str]  # path -> why it was skipped
    images: int  # images read
    images_without_faces: int
    cache_hits: int  # images whose faces and embeddings came from the cache
    cache_path: Path | None = None


def _thumbnail(img: np.ndarray, box: Box) -> bytes:
    h, w = img.shape[:2]
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    half = max(box.x2 - box.x1, box.y2 - box.y1) * 0.65  # a little margin around the face
    x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
    x2, y2 = int(min(w, cx + half)), int(min(h, cy + half))
    crop = img[y1:max(y1 + 1, y2), x1:max(x1 + 1, x2)]
    crop = cv2.resize(crop, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY,
                                                                              THUMB_JPEG_QUALITY])
    return buf.tobytes() if ok else b""


def _entry(faces: list[Face], width: int, height: int, dim: int) -> CachedImage:
    n = len(faces)
    return CachedImage(width=width, height=height,
                       boxes=np.array([f.box.as_tuple() for f in faces], np.float32).reshape(n, 4),
                       scores=np.array([f.score for f in faces], np.float32).reshape(n),
                       landmarks=np.array([f.landmarks for f in faces], np.float32).reshape(n, 5, 2),
                       vectors=np.full((n, dim), np.nan, np.float32))


def process_chunk(engine, jobs: Sequence[tuple[str, str, CachedImage | None]], limits: GateThresholds,
                  thumbnails: bool = True) -> list:
    """Decode, detect (unless cached), embed (faces not cached), gate and thumbnail a chunk of images.
    Returns per image (entry, [(quality, reasons, thumbnail)], fresh) or an error string."""
    from vultus.imageio import load_image

    dim = int(engine.embedder_spec.dim)
    out: list = [None] * len(jobs)
    arrays: dict[int, np.ndarray] = {}
    for k, (path, *_) in enumerate(jobs):
        try:
            arrays[k] = load_image(path)
        except VultusError as exc:
            out[k] = str(exc).removeprefix(f"{path}: ")
    need = [k for k in arrays if jobs[k][2] is None]
    entries = {k: jobs[k][2] for k in arrays if jobs[k][2] is not None}
    if need:
        found = engine.detector.detect([arrays[k] for k in need])
        for k, faces in zip(need, found, strict=True):
            h, w = arrays[k].shape[:2]
            entries[k] = _entry(faces, w, h, dim)
    items, where = [], []
    for k, e in entries.items():
        for i in range(e.n_faces):
            face = Face(box=Box(*(float(v) for v in e.boxes[i])), score=float(e.scores[i]),
                        landmarks=e.landmarks[i].copy(), detector=engine.detector_spec.name)
            items.append((arrays[k], face))
            where.append((k, i))
    todo = [j for j, (k, i) in enumerate(where) if not entries[k].has_vector(i)]
    fresh = {where[j][0] for j in todo} | set(need)
    if todo:
        vectors = engine.embedder.embed([items[j] for j in todo])
        for j, v in zip(todo, vectors, strict=True):
            k, i = where[j]
            entries[k].vectors[i] = v
    # The gate without the mirror-stability term: that would cost one more embedding per face.
    measures = measure(items) if items else []
    per_image: dict[int, list] = {k: [] for k in entries}
    for (k, _i), (img, face), m in zip(where, items, measures, strict=True):
        per_image[k].append((float(m.quality), check(m, limits), _thumbnail(img, face.box) if thumbnails else b""))
    for k, e in entries.items():
        out[k] = (e, per_image[k], k in fresh)
    return out


_WORKER: dict = {}


def _init_worker(detector: str, embedder: str, limits: GateThresholds, thumbnails: bool) -> None:
    os.environ["VULTUS_THREADS"] = "1"
    from vultus.engine import Engine

    _WORKER.update(engine=Engine(detector=detector, embedder=embedder, threads=1), limits=limits,
                   thumbnails=thumbnails)


def _work(jobs):
    return process_chunk(_WORKER["engine"], jobs, _WORKER["limits"], _WORKER["thumbnails"])


def photo_faces(engine, paths: Sequence, *, limits: GateThresholds | None = None, use_cache: bool = True,
                cache_root: Path | None = None, workers: int | None = None, thumbnails: bool = True,
                progress: Callable[[int], None] | None = None) -> PhotoFaces:
    """Every face of every image in `paths`, in path order, with embeddings from `engine`."""
    from vultus.models.runtime import default_threads

    limits = limits or GateThresholds()
    paths = [str(p) for p in dict.fromkeys(str(p) for p in paths)]
    dim = int(engine.embedder_spec.dim)
    hashes, errors = hash_files(paths)
    cache = EmbeddingCache(engine_cache_path(engine, cache_root), dim) if use_cache else None
    try:
        known = cache.get_many(list(hashes.values())) if cache is not None else {}
        hits = sum(1 for h in hashes.values() if h in known
                   and all(known[h].has_vector(i) for i in range(known[h].n_faces)))
        jobs = [(p, hashes[p], known.get(hashes[p])) for p in paths if p in hashes]
        chunks = [jobs[s:s + CHUNK] for s in range(0, len(jobs), CHUNK)]
        n_new = len(jobs) - hits
        if workers is None:
            workers = getattr(engine, "threads", None) or default_threads()
        workers = max(1, min(int(workers), os.cpu_count() or 1, n_new // MIN_NEW_PER_WORKER))
        results: dict[str, object] = {}

        def take(chunk, res):
            fresh = {}
            for (p, h, _), r in zip(chunk, res, strict=True):
                results[p] = r
                if not isinstance(r, str) and r[2]:
                    fresh[h] = r[0]
            if cache is not None and fresh:
                cache.put_many(fresh)
            if progress:
                progress(len(chunk))

        if workers > 1:
            ctx = mp.get_context("spawn")  # fork would copy onnxruntime's thread pools in an unusable state
            args = (engine.detector_spec.name, engine.embedder_spec.name, limits, thumbnails)
            with ctx.Pool(workers, _init_worker, args) as pool:
                for chunk, res in zip(chunks, pool.imap(_work, chunks), strict=True):
                    take(chunk, res)
        else:
            for chunk in chunks:
                take(chunk, process_chunk(engine, chunk, limits, thumbnails))
    finally:
        if cache is not None:
            cache.close()
    faces: list[PhotoFace] = []
    no_face = 0
    for p in paths:
        r = results.get(p) if p in hashes else None
        if p not in hashes:
            continue
        if isinstance(r, str):
            errors[p] = r
            continue
        entry, per_face, _ = r
        if entry.n_faces == 0:
            no_face += 1
        for i, (q, reasons, thumb) in enumerate(per_face):
            faces.append(PhotoFace(image=p, sha256=hashes[p], index=i,
                                   box=Box(*(float(v) for v in entry.boxes[i])), score=float(entry.scores[i]),
                                   quality=q, gate=tuple(reasons), vector=entry.vectors[i].copy(),
                                   thumbnail=thumb))
    return PhotoFaces(faces=faces, errors=errors, images=len(paths) - len(errors), images_without_faces=no_face,
                      cache_hits=hits, cache_path=cache.path if cache is not None else None)


def as_face(f: PhotoFace, model: str) -> Face:
    """A PhotoFace as the library's Face (box, score, embedding)."""
    return Face(box=f.box, score=f.score, landmarks=np.zeros((5, 2), np.float32), detector="",
                embedding=Embedding(f.vector, model))
