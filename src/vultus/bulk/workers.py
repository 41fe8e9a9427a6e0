"""What runs inside Ray's actors: one vultus Engine per actor, on one thread.

Ray Data calls an instance of these classes on each batch (`map_batches` over
an actor pool). Each actor builds its Engine once; the models load through the
process's model cache on the first batch and serve every batch after it. A
batch comes in as columns pos, path, person and goes out as pos and one pickled
payload per image: the image's sha256 (or the ImageError hashing met) and what
was computed for it. Nothing here raises for one image: a corrupt file is that
image's error, carried as data to the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import time
from pathlib import Path

import numpy as np

from vultus.errors import ImageError, VultusError
from vultus.gallery.inference import EnrollOptions, Processed, process_items
from vultus.gallery.types import EnrollItem
from vultus.imageio import read_file_bytes


def _one_thread_engine(detector: str, embedder: str):
    # Each actor holds one CPU (num_cpus=1): one onnxruntime thread per actor, never more.
    os.environ["VULTUS_THREADS"] = "1"
    os.environ["VULTUS_ONNX_THREADS"] = "1"
    from vultus.engine import Engine

    return Engine(detector=detector, embedder=embedder, threads=1)


def _items(batch: dict) -> list[tuple[int, EnrollItem]]:
    return [(int(pos), EnrollItem(Path(str(path)), str(person)))
            for pos, path, person in zip(batch["pos"], batch["path"], batch["person"], strict=True)]


def _out(positions: list[int], payloads: list[bytes], cpu_s: float) -> dict:
    """The batch's results; `cpu_s`, the CPU time the actor spent on it, rides on the first row."""
    out = np.empty(len(payloads), dtype=object)
    out[:] = payloads
    cpu = np.zeros(len(payloads), np.float64)
    if len(cpu):
        cpu[0] = cpu_s
    return {"pos": np.asarray(positions, np.int64), "payload": out, "cpu_s": cpu}


class KnownImages:
    """A small actor on the driver's node holding the gallery's store open: the
    enroll actors ask it which images are already enrolled before computing
    them, so a resumed job skips what a crashed one committed. It opens the
    store, not a Gallery, because it only reads (a Gallery would tidy index files
    the driver is writing)."""

    def __init__(self, location: str, collection: str):
        from vultus.gallery.storage import open_store

        self.store = open_store(location, create=False)
        self.collection_id = self.store.collection(collection).id

    def known(self, sha256s: list[str]) -> dict[str, str]:
        return self.store.known_images(self.collection_id, sha256s)


class EnrollWorker:
    """Hash, skip what the gallery has, then detect, gate and embed exactly as
    `Gallery.enroll` does (vultus.gallery.process_items)."""

    def __init__(self, detector: str, embedder: str, options: EnrollOptions, known=None):
        self.engine = _one_thread_engine(detector, embedder)
        self.options = options
        self.known = known  # a KnownImages actor handle, or None

    def __call__(self, batch: dict) -> dict:
        cpu0 = time.process_time()
        entries = []
        for pos, item in _items(batch):
            try:
                sha: str | ImageError = hashlib.sha256(read_file_bytes(item.path)).hexdigest()
            except ImageError as exc:
                sha = exc
            entries.append((pos, item, sha))
        shas = [sha for *_, sha in entries if isinstance(sha, str)]
        known: dict[str, str] = {}
        if shas and self.known is not None:
            import ray

            known = ray.get(self.known.known.remote(shas))
        todo = [(pos, item) for pos, item, sha in entries if isinstance(sha, str) and sha not in known]
        try:
            done = {p.position: p for p in process_items(self.engine, todo, self.options)} if todo else {}
        except VultusError as exc:  # a model failing its checksum: every image says so, the job goes on
            done = {pos: Processed(pos, str(item.path), item.person, "error", str(exc)) for pos, item in todo}
        payloads = [pickle.dumps((sha, done.get(pos))) for pos, _, sha in entries]
        return _out([pos for pos, *_ in entries], payloads, time.process_time() - cpu0)


class _ImageWorker:
    """Hash each image, skip those whose sha256 the output already holds, and
    compute the rest from the bytes read for the hash (each file is read once)."""

    def __init__(self, detector: str, embedder: str, skip: frozenset[str]):
        self.engine = _one_thread_engine(detector, embedder)
        self.skip = skip

    def __call__(self, batch: dict) -> dict:
        cpu0 = time.process_time()
        entries = []
        for pos, item in _items(batch):
            try:
                data = read_file_bytes(item.path)
                entries.append((pos, hashlib.sha256(data).hexdigest(), data))
            except ImageError as exc:
                entries.append((pos, exc, None))
        todo = [(pos, sha, data) for pos, sha, data in entries if data is not None and sha not in self.skip]
        try:
            results = dict(zip([pos for pos, *_ in todo], self.compute([data for *_, data in todo]), strict=True))
        except VultusError as exc:
            results = {pos: ("error", _error(exc)) for pos, *_ in todo}
        payloads = []
        for pos, sha, data in entries:
            if data is None:
                payloads.append(pickle.dumps((sha, ("error", _error(sha)))))
            else:
                payloads.append(pickle.dumps((sha, results.get(pos))))  # None: already in the output
        return _out([pos for pos, *_ in entries], payloads, time.process_time() - cpu0)

    def compute(self, images: list[bytes]) -> list[tuple[str, object]]:
        raise NotImplementedError


def _error(exc: VultusError) -> dict:
    # Images are decoded from the bytes read for the hash, so messages name "<N bytes>", not the file
    return {"code": exc.code, "message": re.sub(r"^<\d+ bytes>: ", "", str(exc))}


def _face_columns(face) -> dict:
    return {"box": [float(v) for v in face.box.as_tuple()], "score": float(face.score),
            "landmarks": np.asarray(face.landmarks, np.float32).ravel().tolist()}


class EmbedWorker(_ImageWorker):
    """Every face of each image with its embedding."""

    def compute(self, images):
        out = []
        for r in self.engine.embed_batch(images):
            if not r.ok:
                out.append(("error", _error(r.error)))
                continue
            rows = [_face_columns(f) | {"face": i, "embedding": np.asarray(f.embedding.vector, np.float32).tolist()}
                    for i, f in enumerate(r.value)]
            out.append(("ok", rows))
        return out


class AnalyzeWorker(_ImageWorker):
    """Every face of each image with its attributes (`vultus analyze`'s)."""

    def __init__(self, detector: str, embedder: str, skip: frozenset[str], actions: tuple[str, ...],
                 stability: bool = True):
        super().__init__(detector, embedder, skip)
        self.actions, self.stability = actions, stability

    def compute(self, images):
        out = []
        for r in self.engine.analyze_batch(images, actions=self.actions, stability=self.stability):
            if not r.ok:
                out.append(("error", _error(r.error)))
                continue
            rows = []
            for i, a in enumerate(r.value):
                rows.append(_face_columns(a.face) | {
                    "face": i,
                    "age": None if a.age is None else float(a.age.years),
                    "gender": None if a.gender is None else a.gender.label,
                    "emotion": None if a.emotion is None else a.emotion.label,
                    "quality": None if a.quality is None else float(a.quality.score),
                    "yaw": None if a.pose is None else float(a.pose.yaw),
                    "pitch": None if a.pose is None else float(a.pose.pitch),
                    "roll": None if a.pose is None else float(a.pose.roll),
                    "live": None if a.liveness is None else bool(a.liveness.live),
                    "attributes": json.dumps({k: v for k, v in a.to_dict().items() if k in self.actions},
                                             default=float),
                })
            out.append(("ok", rows))
        return out
