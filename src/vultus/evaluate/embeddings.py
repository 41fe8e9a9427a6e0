"""One embedding per image for evaluation, through the embedding cache.

Evaluation protocols compare images, not faces: each image contributes the one face it is about. When the
detector finds several, `pick` chooses: "center" (the box whose centre is nearest the image centre: right
for LFW's 250x250 crops, where background faces sit at the edges) or "largest". Images that cannot be
read or show no face are failures: they are kept (NaN vector) and listed with the reason, so that every
protocol can count them instead of silently dropping them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.cache import CachedImage, EmbeddingCache, engine_cache_path, hash_files
from vultus.types import Box, Embedding, Face

PICKS = ("center", "largest")

#: progress(done, total): called as images are embedded (done counts up to total). The library never
#: draws anything itself; the CLI passes a callback that draws a bar or prints a line.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbeddedImages:
    """Vectors for a list of images, in the order given (duplicates removed)."""

    paths: list[Path]
    vectors: np.ndarray  # (n, dim) float32; NaN rows for failures
    faces: list[Face | None]  # the face each vector belongs to
    n_faces: np.ndarray  # faces the detector found per image (0 for failures)
    errors: dict[Path, str]  # failures and why
    model: str
    detector: str
    pick: str
    cache_hits: int = 0
    seconds: float = 0.0
    cache_path: Path | None = None
    _index: dict[Path, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._index.update({p: i for i, p in enumerate(self.paths)})

    def index(self, path) -> int:
        return self._index[Path(path)]

    def indices(self, paths: Sequence) -> np.ndarray:
        return np.fromiter((self._index[Path(p)] for p in paths), dtype=np.int64, count=len(paths))

    @property
    def ok(self) -> np.ndarray:
        return np.isfinite(self.vectors).all(axis=1)

    @property
    def n_multi_face(self) -> int:
        return int(np.sum(self.n_faces > 1))


def choose_face(boxes: np.ndarray, width: int, height: int, pick: str) -> int:
    """Index of the face an image is about (boxes: (n, 4), n >= 1)."""
    if pick == "largest":
        return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    if pick == "center":
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
        return int(np.argmin(cx * cx + cy * cy))
    raise VultusError(f"unknown face choice {pick!r}; use one of {', '.join(PICKS)}")


def _face(entry: CachedImage, i: int, detector: str, model: str) -> Face:
    b = entry.boxes[i]
    emb = Embedding(entry.vectors[i].copy(), model) if entry.has_vector(i) else None
    return Face(box=Box(*(float(v) for v in b)), score=float(entry.scores[i]), landmarks=entry.landmarks[i].copy(),
                detector=detector, embedding=emb)


def _entry_from_faces(faces: list[Face], width: int, height: int, dim: int) -> CachedImage:
    n = len(faces)
    return CachedImage(
        width=width, height=height,
        boxes=np.array([f.box.as_tuple() for f in faces], np.float32).reshape(n, 4),
        scores=np.array([f.score for f in faces], np.float32).reshape(n),
        landmarks=np.array([f.landmarks for f in faces], np.float32).reshape(n, 5, 2),
        vectors=np.full((n, dim), np.nan, np.float32),
    )


def embed_images(engine, paths: Sequence, *, pick: str = "center", use_cache: bool = True,
                 cache_root: Path | None = None, progress: Progress | None = None, chunk: int = 32,
                 workers: int | None = None) -> EmbeddedImages:
    """Detect, pick one face and embed it for every image, reusing cached results by image hash.

    Images not in the cache are processed by `workers` processes with one model thread each (default:
    the engine's thread budget, i.e. --threads, else VULTUS_THREADS, else every core) when there are
    enough of them to repay starting the workers; a small model on small images uses cores better as
    separate processes than as threads inside one. `progress(done, total)` is called after each chunk."""
    if pick not in PICKS:
        raise VultusError(f"unknown face choice {pick!r}; use one of {', '.join(PICKS)}")
    if engine.embedder_spec.components:
        return _embed_fused(engine, paths, pick=pick, use_cache=use_cache, cache_root=cache_root,
                            progress=progress, chunk=chunk, workers=workers)
    start = time.perf_counter()
    unique = list(dict.fromkeys(Path(p) for p in paths))
    dim = int(engine.embedder_spec.dim)
    model, detector = engine.embedder_name, engine.detector_spec.name
    cache = EmbeddingCache(engine_cache_path(engine, cache_root), dim) if use_cache else None
    hashes, errors = hash_files(unique)
    entries: dict[str, CachedImage] = cache.get_many(list(hashes.values())) if cache is not None else {}
    hits = 0
    chosen: dict[Path, int] = {}
    todo: list[Path] = []
    for p, h in hashes.items():
        e = entries.get(h)
        if e is not None and e.n_faces == 0:
            hits += 1
        elif e is not None:
            chosen[p] = choose_face(e.boxes, e.width, e.height, pick)
            if e.has_vector(chosen[p]):
                hits += 1
                continue
            todo.append(p)
        else:
            todo.append(p)
    bar = _Counter(progress, len(todo)) if progress is not None and todo else None
    n_workers = _worker_count(engine, workers, len(todo))
    try:
        if n_workers > 1:
            fresh = [p for p in todo if hashes[p] not in entries]
            _parallel(engine, fresh, hashes, entries, chosen, errors, pick, dim, cache, n_workers, chunk, bar)
            fresh_set = set(fresh)
            todo = [p for p in todo if p not in fresh_set]
        for s in range(0, len(todo), chunk):
            _process_chunk(engine, todo[s:s + chunk], hashes, entries, chosen, errors, pick, dim, cache)
            if bar is not None:
                bar.update(len(todo[s:s + chunk]))
    finally:
        if cache:
            cache.close()
    vectors = np.full((len(unique), dim), np.nan, np.float32)
    faces: list[Face | None] = []
    n_faces = np.zeros(len(unique), np.int64)
    for k, p in enumerate(unique):
        e = entries.get(hashes.get(p, ""))
        if p in errors or e is None:
            faces.append(None)
            continue
        n_faces[k] = e.n_faces
        if e.n_faces == 0:
            errors[p] = "no face found"
            faces.append(None)
            continue
        i = chosen[p]
        vectors[k] = e.vectors[i]
        faces.append(_face(e, i, detector, model))
    return EmbeddedImages(paths=unique, vectors=vectors, faces=faces, n_faces=n_faces, errors=errors, model=model,
                          detector=detector, pick=pick, cache_hits=hits, seconds=time.perf_counter() - start,
                          cache_path=cache.path if cache is not None else None)


def _process_chunk(engine, chunk, hashes, entries, chosen, errors, pick, dim, cache) -> None:
    from vultus.imageio import load_image

    arrays, ok = [], []
    for p in chunk:
        try:
            arrays.append(load_image(p))
            ok.append(p)
        except VultusError as exc:
            errors[p] = str(exc).removeprefix(f"{p}: ")
    need_detect = [k for k, p in enumerate(ok) if hashes[p] not in entries]
    if need_detect:
        found = engine.detector.detect([arrays[k] for k in need_detect])
        for k, faces in zip(need_detect, found, strict=True):
            h, w = arrays[k].shape[:2]
            entries[hashes[ok[k]]] = _entry_from_faces(faces, w, h, dim)
    to_embed, face_lists = [], []
    for k, p in enumerate(ok):
        e = entries[hashes[p]]
        if e.n_faces == 0:
            continue
        chosen[p] = i = choose_face(e.boxes, e.width, e.height, pick)
        if not e.has_vector(i):
            to_embed.append(k)
            face_lists.append([_face(e, i, engine.detector_spec.name, engine.embedder_name)])
    if to_embed:
        embedded = engine.embed_batch([arrays[k] for k in to_embed], face_lists)
        for k, result in zip(to_embed, embedded, strict=True):
            p = ok[k]
            entries[hashes[p]].vectors[chosen[p]] = result.unwrap()[0].embedding.vector
    if cache is not None:
        cache.put_many({hashes[p]: entries[hashes[p]] for p in ok})


class _Counter:
    """Counts images done and passes (done, total) to a progress callback."""

    def __init__(self, callback: Progress, total: int):
        self.callback, self.total, self.done = callback, total, 0
        callback(0, total)

    def update(self, n: int) -> None:
        self.done += n
        self.callback(self.done, self.total)


# Below this many images to embed, starting worker processes (each loads its models) costs more than it saves.
MIN_IMAGES_PER_WORKER = 200


def _worker_count(engine, workers: int | None, n_images: int) -> int:
    import os

    from vultus.models.runtime import default_threads

    if workers is None:
        workers = getattr(engine, "threads", None) or default_threads()
    workers = max(1, min(int(workers), os.cpu_count() or 1, n_images // MIN_IMAGES_PER_WORKER))
    return workers


_WORKER_ENGINE = None


def _init_worker(detector: str, embedder: str, max_side: int | None) -> None:
    global _WORKER_ENGINE
    from vultus.engine import Engine

    _WORKER_ENGINE = Engine(detector=detector, embedder=embedder, threads=1, max_side=max_side)


def _worker_chunk(job: tuple[list[str], str]) -> list:
    """Decode, detect, pick and embed in a worker; returns one tuple per image (or an error string)."""
    from vultus.imageio import load_image

    paths, pick = job
    engine = _WORKER_ENGINE
    arrays, ok, out = [], [], [None] * len(paths)
    for i, p in enumerate(paths):
        try:
            arrays.append(load_image(p))
            ok.append(i)
        except VultusError as exc:
            out[i] = str(exc).removeprefix(f"{p}: ")
    if not ok:
        return out
    found = engine.detector.detect(arrays)
    items, where = [], []
    for k, (img, faces) in enumerate(zip(arrays, found, strict=True)):
        h, w = img.shape[:2]
        entry = _entry_from_faces(faces, w, h, int(engine.embedder_spec.dim))
        choice = choose_face(entry.boxes, w, h, pick) if faces else -1
        out[ok[k]] = (entry, choice)
        if faces:
            items.append((img, faces[choice]))
            where.append(ok[k])
    if items:
        vectors = engine.embedder.embed(items)
        for i, v in zip(where, vectors, strict=True):
            out[i][0].vectors[out[i][1]] = v
    return out


def _parallel(engine, todo, hashes, entries, chosen, errors, pick, dim, cache, n_workers, chunk, bar) -> None:
    import multiprocessing as mp

    jobs = [([str(p) for p in todo[s:s + chunk]], pick) for s in range(0, len(todo), chunk)]
    max_side = getattr(engine.detector, "max_side", None)
    ctx = mp.get_context("spawn")  # fork would copy onnxruntime's thread pools in an unusable state
    with ctx.Pool(n_workers, _init_worker, (engine.detector_spec.name, engine.embedder_spec.name, max_side)) as pool:
        for (names, _), results in zip(jobs, pool.imap(_worker_chunk, jobs), strict=True):
            batch = {}
            for name, res in zip(names, results, strict=True):
                p = Path(name)
                if isinstance(res, str):
                    errors[p] = res
                    continue
                entry, choice = res
                entries[hashes[p]] = entry
                batch[hashes[p]] = entry
                if choice >= 0:
                    chosen[p] = choice
            if cache is not None:
                cache.put_many(batch)
            if bar is not None:
                bar.update(len(names))


def _embed_fused(engine, paths, **options) -> EmbeddedImages:
    """A fused embedder's vectors from its components' (cached) vectors: [sqrt(w1) v1, sqrt(w2) v2, ...] is
    exactly what FusedEmbedder computes, so each component is embedded (and cached) once and reused."""
    from dataclasses import replace

    from vultus.embed.fused import combine, fusion_weights
    from vultus.engine import Engine

    start = time.perf_counter()
    max_side = getattr(engine.detector, "max_side", None)
    parts = {name: embed_images(Engine(detector=engine.detector_spec.name, embedder=name, max_side=max_side),
                                paths, **options) for name in engine.embedder_spec.components}
    first = next(iter(parts.values()))
    vectors = combine({n: e.vectors for n, e in parts.items()}, fusion_weights())
    errors: dict[Path, str] = {}
    for e in parts.values():
        for p, why in e.errors.items():
            errors.setdefault(p, why)
    model = engine.embedder_name
    faces = [None if f is None or p in errors else replace(f, embedding=Embedding(v, model))
             for p, f, v in zip(first.paths, first.faces, vectors, strict=True)]
    return EmbeddedImages(paths=first.paths, vectors=vectors, faces=faces, n_faces=first.n_faces, errors=errors,
                          model=model, detector=first.detector, pick=first.pick,
                          cache_hits=min(e.cache_hits for e in parts.values()),
                          seconds=time.perf_counter() - start, cache_path=first.cache_path)
