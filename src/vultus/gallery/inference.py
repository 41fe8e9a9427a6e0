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
import math
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
from vultus.gallery.types import EnrollItem, NewFace, SubjectChoice
from vultus.imageio import load_image, read_file_bytes
from vultus.types import Box, Embedding, Face

CROP_JPEG_QUALITY = 95
CHUNK = 8  # images per worker task and per committed transaction
# Which face of a photo is the person (EnrollOptions.subject); see choose_subject.
SUBJECTS = ("center_largest", "only", "largest", "central")
_SUBJECT_ALIASES = {"one": "only"}  # the name "only" had before it became a subject policy
# center_largest: faces of at least this share of the largest face's area compete to be the subject
# (smaller ones are the background); the one nearest the centre wins when every other competitor is at
# least SUBJECT_CENTRE_MARGIN (of the image's half-diagonal) farther from the centre. Chosen on one half
# of LFW's people and reported on the other (bench/enroll_subject.py, bench/results/identify.md).
SUBJECT_AREA_SHARE = 0.9
SUBJECT_CENTRE_MARGIN = 0.2


@dataclass(frozen=True, slots=True)
class EnrollOptions:
    """How enrollment treats each image; `gate` holds every quality threshold."""

    gate: gate.GateThresholds = field(default_factory=gate.GateThresholds)
    keep_crops: bool = True
    # Which face of a photo is the person (choose_subject):
    # "center_largest" (default): of the faces that are the largest or close to it (area at least
    #   `subject_area_share` of the largest), the one nearest the centre, if no other is about as near;
    #   a photo where no face is clearly the subject is refused.
    # "only": the photo should show one person; with several faces the largest is taken only if the next
    #   is clearly smaller (below `ambiguous_area_share` of its area), else the photo is refused.
    # "largest": the biggest face whatever else is there. "central": the face nearest the centre.
    subject: str = "center_largest"
    ambiguous_area_share: float = 0.5
    subject_area_share: float = SUBJECT_AREA_SHARE
    subject_centre_margin: float = SUBJECT_CENTRE_MARGIN
    # A liveness operating point ("door", "check-in") each face must pass, or None. Enroll sets it
    # from the collection when the collection requires liveness.
    liveness: str | None = None
    pick: str | None = None  # the older name of `subject` ("one" is "only"); when given it sets `subject`

    def __post_init__(self):
        if self.pick is not None:
            object.__setattr__(self, "subject", _SUBJECT_ALIASES.get(self.pick, self.pick))
            object.__setattr__(self, "pick", None)
        if self.subject not in SUBJECTS:
            raise ValueError(f"subject must be one of {', '.join(SUBJECTS)} (got {self.subject!r})")


def subject_policy(name: str) -> str:
    """A subject policy's name, checked ("one" is accepted for "only")."""
    name = _SUBJECT_ALIASES.get(name, name)
    if name not in SUBJECTS:
        from vultus.gallery.errors import GalleryError

        raise GalleryError(f"subject must be one of {', '.join(SUBJECTS)} (got {name!r})", code="bad_subject",
                           value=name, choices=list(SUBJECTS))
    return name


@dataclass(frozen=True, slots=True)
class Processed:
    position: int
    path: str
    person: str
    status: str  # ok | refused | error
    reason: str = ""
    new_face: NewFace | None = None
    subject: SubjectChoice | None = None  # the face taken as the person, once one was


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


def _centre_distance(face: Face, shape: tuple[int, ...]) -> float:
    """How far the box's centre is from the image's centre, as a share of the half-diagonal (0 to 1)."""
    h, w = shape[0], shape[1]
    cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
    return math.hypot(cx - w / 2, cy - h / 2) / max(1e-9, math.hypot(w / 2, h / 2))


def choose_subject(faces: Sequence[Face], options: EnrollOptions, shape: tuple[int, ...]
                   ) -> tuple[int | None, str]:
    """(index of the face that is the person, why) or (None, why no face is)."""
    n = len(faces)
    if not n:
        return None, "no face found"
    if n == 1:
        return 0, "the only face found"
    areas = [f.box.area for f in faces]
    top = max(areas)
    largest = max(range(n), key=lambda i: areas[i])
    dist = [_centre_distance(f, shape) for f in faces]
    if options.subject == "largest":
        return largest, f"the largest of {n} faces"
    if options.subject == "central":
        c = min(range(n), key=lambda i: dist[i])
        return c, f"nearest the centre of {n} faces"
    by_area = sorted(range(n), key=lambda i: -areas[i])
    if options.subject == "only":
        second = areas[by_area[1]] / top if top > 0 else 1.0
        if second >= options.ambiguous_area_share:
            return None, (f"{n} faces of similar size; crop the photo to one person, or choose the subject "
                          "with center_largest, largest or central")
        return largest, f"the largest of {n} faces (the next is {second:.2f}x its area)"
    # center_largest
    share = options.subject_area_share
    rivals = sorted((i for i in range(n) if areas[i] >= share * top), key=lambda i: dist[i])
    c = rivals[0]
    size = "the largest" if c == largest else f"{areas[c] / top:.2f}x the area of the largest"
    if len(rivals) == 1:
        return c, f"{size} of {n} faces, and no other is within {share:g}x its area"
    gap = dist[rivals[1]] - dist[c]
    if gap < options.subject_centre_margin:
        return None, (f"no face is clearly the subject: {len(rivals)} of the {n} faces are of similar size "
                      f"(at least {share:g}x the largest) and about as near the centre ({dist[c]:.2f} and "
                      f"{dist[rivals[1]]:.2f} of the half-diagonal); crop the photo to the person")
    return c, (f"nearest the centre ({dist[c]:.2f} of the half-diagonal; the next face of similar size "
               f"{dist[rivals[1]]:.2f}) and {size} of {n} faces")


# A face given by its box must overlap a detected face at least this much (intersection over union).
MIN_BOX_IOU = 0.5


def face_index_at(faces: Sequence[Face], box: tuple[float, float, float, float]) -> tuple[int | None, str]:
    """The index of the detected face that is the given box (a face found earlier by the same detector)."""
    target = Box(*box)
    best = max(range(len(faces)), key=lambda i: faces[i].box.iou(target), default=None)
    if best is None or faces[best].box.iou(target) < MIN_BOX_IOU:
        return None, "the face at the given box was not found in the photo"
    return best, f"the face at the given box (overlap {faces[best].box.iou(target):.2f})"


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
    subjects: dict[int, SubjectChoice] = {}
    for (pos, item, sha, img), faces in zip(loaded, detections, strict=True):
        i, why = choose_subject(faces, options, img.shape) if item.box is None else face_index_at(faces, item.box)
        if i is None:
            out[pos] = Processed(pos, str(item.path), item.person, "refused", why)
            continue
        subjects[pos] = SubjectChoice(index=i, box=faces[i].box, faces=len(faces), reason=why)
        chosen.append((pos, item, sha, img, faces[i]))
    if options.liveness and chosen:
        from vultus.liveness.api import liveness_batch

        checks = liveness_batch(engine, [img for *_, img, _ in chosen], [[face] for *_, face in chosen],
                                point=options.liveness)
        for (pos, item, *_), (check,) in zip(chosen, checks, strict=True):
            if not check.live:
                out[pos] = Processed(pos, str(item.path), item.person, "refused", check.reason,
                                     subject=subjects[pos])
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
            out[pos] = Processed(pos, str(item.path), item.person, "refused", "; ".join(reasons),
                                 subject=subjects[pos])
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
        out[pos] = Processed(pos, str(item.path), item.person, "ok", "", nf, subject=subjects[pos])
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
