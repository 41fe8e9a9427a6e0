"""Turning enrollment images into faces ready to store, in worker processes.

Each worker builds its own Engine (models hold native sessions that cannot be
pickled) with one thread, so N workers use N cores without oversubscribing.
Workers only compute; the parent process is the single writer and commits
each finished chunk in one transaction, so a crash loses at most the chunks
in flight. Workers are started with "spawn": the parent may hold an index and
a database connection that a forked child must not inherit.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.connection
import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from vultus.align import canonical_crop
from vultus.errors import ImageError, VultusError
from vultus.gallery import gate
from vultus.gallery.types import EnrollItem, NewFace
from vultus.imageio import load_image, read_file_bytes
from vultus.types import Box, Embedding, Face

CROP_JPEG_QUALITY = 95
CHUNK = 8  # images per worker task and per committed transaction
PICKS = ("one", "largest", "central")


@dataclass(frozen=True, slots=True)
class EnrollOptions:
    """How enrollment treats each image; `gate` holds every quality threshold."""

    gate: gate.GateThresholds = field(default_factory=gate.GateThresholds)
    keep_crops: bool = True
    # Which face of a photo is the person. "one": the photo should show one person;
    # with several faces the largest is taken only if the next is clearly smaller
    # (below `ambiguous_area_share` of its area), else the photo is refused.
    # "largest": the biggest face whatever else is there. "central": the face
    # nearest the centre (photos cropped around their subject, such as LFW's).
    pick: str = "one"
    ambiguous_area_share: float = 0.5
    # A liveness operating point ("door", "check-in") each face must pass, or None. Enroll sets it
    # from the collection when the collection requires liveness.
    liveness: str | None = None

    def __post_init__(self):
        if self.pick not in PICKS:
            raise ValueError(f"pick must be one of {', '.join(PICKS)} (got {self.pick!r})")


@dataclass(frozen=True, slots=True)
class Processed:
    position: int
    path: str
    person: str
    status: str  # ok | refused | error
    reason: str = ""
    new_face: NewFace | None = None


def sha256_file(path) -> str:
    """The sha256 of a regular file (ImageError for a FIFO, a device, a file over the size cap)."""
    return hashlib.sha256(read_file_bytes(path)).hexdigest()


def error_reason(exc: ImageError, path) -> str:
    """An ImageError's message without the file name it starts with (the outcome names the file)."""
    return re.sub(r"^<\d+ bytes>: ", "", str(exc).removeprefix(f"{path}: "))


def encode_crop(crop_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    if not ok:
        raise ImageError("could not encode the aligned crop")
    return buf.tobytes()


def decode_crop(jpeg: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ImageError("a stored crop is not a readable JPEG")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def choose_face(faces: Sequence[Face], options: EnrollOptions, shape: tuple[int, ...]) -> tuple[Face | None, str]:
    if not faces:
        return None, "no face found"
    if options.pick == "central":
        cy, cx = shape[0] / 2, shape[1] / 2
        return min(faces, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - cx) ** 2
                   + ((f.box.y1 + f.box.y2) / 2 - cy) ** 2), ""
    by_area = sorted(faces, key=lambda f: -f.box.area)
    crowded = len(by_area) > 1 and by_area[1].box.area >= options.ambiguous_area_share * by_area[0].box.area
    if crowded and options.pick == "one":
        return None, (f"{len(by_area)} faces of similar size; crop the photo to one person, or pick "
                      "the largest face or the one nearest the centre")
    return by_area[0], ""


# A face given by its box must overlap a detected face at least this much (intersection over union).
MIN_BOX_IOU = 0.5


def face_at(faces: Sequence[Face], box: tuple[float, float, float, float]) -> tuple[Face | None, str]:
    """The detected face that is the given box (a face found earlier by the same detector)."""
    target = Box(*box)
    best = max(faces, key=lambda f: f.box.iou(target), default=None)
    if best is None or best.box.iou(target) < MIN_BOX_IOU:
        return None, "the face at the given box was not found in the photo"
    return best, ""


def process_items(engine, items: Sequence[tuple[int, EnrollItem]], options: EnrollOptions) -> list[Processed]:
    """Load, detect, gate and embed a chunk of images; batched where the models allow."""
    out: dict[int, Processed] = {}
    loaded: list[tuple[int, EnrollItem, str, np.ndarray]] = []
    for pos, item in items:
        try:
            data = read_file_bytes(item.path)
            img = load_image(data)
        except ImageError as exc:
            out[pos] = Processed(pos, str(item.path), item.person, "error", error_reason(exc, item.path))
            continue
        loaded.append((pos, item, hashlib.sha256(data).hexdigest(), img))
    detections = engine.detector.detect([img for *_, img in loaded]) if loaded else []
    chosen: list[tuple[int, EnrollItem, str, np.ndarray, Face]] = []
    for (pos, item, sha, img), faces in zip(loaded, detections, strict=True):
        face, why = choose_face(faces, options, img.shape) if item.box is None else face_at(faces, item.box)
        if face is None:
            out[pos] = Processed(pos, str(item.path), item.person, "refused", why)
            continue
        chosen.append((pos, item, sha, img, face))
    if options.liveness and chosen:
        from vultus.liveness.api import liveness_batch

        checks = liveness_batch(engine, [img for *_, img, _ in chosen], [[face] for *_, face in chosen],
                                point=options.liveness)
        for (pos, item, *_), (check,) in zip(chosen, checks, strict=True):
            if not check.live:
                out[pos] = Processed(pos, str(item.path), item.person, "refused", check.reason)
        chosen = [c for c, (check,) in zip(chosen, checks, strict=True) if check.live]
    # Embed first: the gate's quality score reuses each face's embedding and
    # only adds the embedding of its mirror image (for SFace collections).
    vectors = engine.embedder.embed([(img, face) for *_, img, face in chosen]) if chosen else []
    chosen = [(pos, item, sha, img, replace(face, embedding=Embedding(np.asarray(vec, np.float32),
                                                                          engine.embedder.name)))
              for (pos, item, sha, img, face), vec in zip(chosen, vectors, strict=True)]
    measures = gate.measure([(img, face) for *_, img, face in chosen], engine.embedder) if chosen else []
    for (pos, item, sha, img, face), m in zip(chosen, measures, strict=True):
        reasons = gate.check(m, options.gate)
        if reasons:
            out[pos] = Processed(pos, str(item.path), item.person, "refused", "; ".join(reasons))
            continue
        vec = face.embedding.vector
        face = replace(face, embedding=None)
        crop_jpeg = crop_face = None
        if options.keep_crops:
            crop, crop_face = canonical_crop(img, face)
            crop_jpeg = encode_crop(crop)
        nf = NewFace(person=item.person, image_sha256=sha, image_path=str(item.path.resolve()), face=face,
                     vector=vec, quality=m.to_dict(), crop_jpeg=crop_jpeg,
                     crop_face=crop_face)
        out[pos] = Processed(pos, str(item.path), item.person, "ok", "", nf)
    return [out[pos] for pos, _ in items]


# -- worker processes ------------------------------------------------------
_WORKER: dict = {}


def _exit_with_parent() -> None:
    """A pool worker blocks on its task queue, which it also holds open itself, so
    it would outlive a parent killed with SIGKILL. Watch the parent and leave
    with it."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="vultus-parent-watch", daemon=True).start()


def _init_worker(detector: str, embedder: str, options: EnrollOptions) -> None:
    _exit_with_parent()
    os.environ["VULTUS_THREADS"] = "1"
    from vultus.engine import Engine

    _WORKER["engine"] = Engine(detector=detector, embedder=embedder, threads=1)
    _WORKER["options"] = options


def _work(chunk: list[tuple[int, EnrollItem]]) -> list[Processed]:
    try:
        return process_items(_WORKER["engine"], chunk, _WORKER["options"])
    except VultusError as exc:  # e.g. a model file failing its checksum: report, do not hang the pool
        return [Processed(pos, str(item.path), item.person, "error", str(exc)) for pos, item in chunk]


def chunks(items: Sequence[tuple[int, EnrollItem]], size: int = CHUNK) -> list[list[tuple[int, EnrollItem]]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def run_in_workers(work: list[list[tuple[int, EnrollItem]]], detector: str, embedder: str, options: EnrollOptions,
                   workers: int) -> Iterator[list[Processed]]:
    """Yield each chunk's results as soon as it is done; at most 2 chunks per
    worker are queued, so memory stays flat however large the folder."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(detector, embedder, options)) as pool:
        queue = list(reversed(work))
        running = set()
        try:
            while queue or running:
                while queue and len(running) < 2 * workers:
                    running.add(pool.submit(_work, queue.pop()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in running:
                fut.cancel()


def run_in_process(engine, work: list[list[tuple[int, EnrollItem]]], options: EnrollOptions
                   ) -> Iterator[list[Processed]]:
    for chunk in work:
        yield process_items(engine, chunk, options)
