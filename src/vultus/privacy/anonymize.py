"""Cover faces in photos and videos: blur, pixelate, solid fill, or a binary mask.

Every face found by the recall-tuned detector (privacy.detect) is covered by an
ellipse (or a box) grown by `margin` of its size on every side. In a video the
faces are tracked (video.track): a face keeps its cover through frames where
detection misses it, for up to a second, its carried cover growing with each
missed frame; and a new track's cover is also drawn back over the few frames
before its first detection (held in a short delay buffer), since a face is
usually visible a frame or two before a detector is sure of it. Covers follow
tracks, not single detections, so they do not flicker.

With a gallery, `keep` leaves the named enrolled people visible (everyone else
is covered) and `only` covers just the named people. A face is matched by the
collection's threshold; in a video a track's decision uses the mean embedding of
its best frames, and a track stays covered under `keep` until it is identified.

Metadata (EXIF, GPS, XMP, ICC, comments) is not copied to the output unless
asked: images are written from their pixels alone; videos are re-encoded with
no container tags but the encoder's.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vultus.errors import InvalidArgumentError, VultusError
from vultus.types import Box, Face

MODES = ("blur", "pixelate", "solid", "mask")
SHAPES = ("ellipse", "box")


@dataclass(frozen=True, slots=True)
class AnonymizeOptions:
    """mode: blur | pixelate | solid (black) | mask (the output is a white-on-black mask of the covers).
    margin: each cover is the face's box grown by this share of its width/height on every side; faces under
        64 px get up to small_face_margin more (at 16 px and below), as a small face's box is placed less exactly.
    every: in videos, detect on every n-th frame (tracks carry the covers between).
    carry_growth: a carried cover grows by this share per frame since the face was last detected.
    lookback: frames before a track's first detection that also get its cover (None: a sixth of a second).
    small_every: in videos, the upscaled small-face pass runs on every n-th detection (it costs about three
        times the plain pass); small faces are carried by their tracks between.
    """

    mode: str = "blur"
    shape: str = "ellipse"
    margin: float = 0.3
    small_face_margin: float = 0.2
    every: int = 1
    strip_metadata: bool = True
    threads: int | None = None
    min_score: float = 0.3
    upscale: float = 2.0
    carry_growth: float = 0.05
    lookback: int | None = None
    small_every: int = 4

    def __post_init__(self):
        if self.mode not in MODES:
            raise InvalidArgumentError(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})", value=self.mode)
        if self.shape not in SHAPES:
            raise InvalidArgumentError(f"shape must be one of {', '.join(SHAPES)} (got {self.shape!r})",
                                       value=self.shape)
        if not 0 <= self.margin <= 2:
            raise InvalidArgumentError(f"margin must be between 0 and 2 (got {self.margin})", value=self.margin)
        if self.every < 1:
            raise InvalidArgumentError(f"detection interval must be at least 1 frame (got {self.every})",
                                       value=self.every)


@dataclass(frozen=True, slots=True)
class AnonymizeResult:
    source: str
    output: str | None
    kind: str  # image | video
    frames: int = 0
    faces_covered: int = 0  # images: faces; videos: tracks covered
    faces_kept: int = 0  # faces or tracks left visible by keep/only
    covered_frames: int = 0  # videos: frames with at least one cover
    carried_covers: int = 0  # videos: covers drawn where the detector did not find the face in that frame
    seconds: float = 0.0
    error: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "output": self.output, "kind": self.kind, "frames": self.frames,
                "faces_covered": self.faces_covered, "faces_kept": self.faces_kept,
                "covered_frames": self.covered_frames, "carried_covers": self.carried_covers,
                "seconds": round(self.seconds, 3), "error": self.error, "error_code": self.error_code}


# -- covers -----------------------------------------------------------------------
def grow(box: Box, margin: float, width: int, height: int) -> Box:
    mx, my = box.width * margin, box.height * margin
    return Box(max(0.0, box.x1 - mx), max(0.0, box.y1 - my), min(float(width), box.x2 + mx),
               min(float(height), box.y2 + my))


def cover_box(box: Box, options: AnonymizeOptions, width: int, height: int, extra: float = 0.0) -> Box:
    """The face box grown into its cover: the margin, more for small faces, plus `extra` (carried covers)."""
    side = min(box.width, box.height)
    small = options.small_face_margin * min(1.0, max(0.0, (64.0 - side) / 48.0))
    return grow(box, options.margin + small + extra, width, height)


def cover_mask(height: int, width: int, boxes: Iterable[Box], shape: str = "ellipse") -> np.ndarray:
    """A uint8 mask (255 inside a cover) for already-grown boxes."""
    mask = np.zeros((height, width), np.uint8)
    for b in boxes:
        if b.width <= 0 or b.height <= 0:
            continue
        if shape == "box":
            cv2.rectangle(mask, (int(b.x1), int(b.y1)), (int(np.ceil(b.x2)), int(np.ceil(b.y2))), 255, -1)
        else:
            centre = (round((b.x1 + b.x2) / 2), round((b.y1 + b.y2) / 2))
            # the ellipse inscribed in the grown box holds the face box's corners for margins >= 0.21
            axes = (max(1, round(b.width / 2)), max(1, round(b.height / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return mask


def apply_covers(rgb: np.ndarray, boxes: Sequence[Box], mode: str, shape: str) -> np.ndarray:
    """A copy of rgb with the (grown) boxes covered; for mode 'mask' the mask itself as RGB."""
    h, w = rgb.shape[:2]
    if mode == "mask":
        return np.repeat(cover_mask(h, w, boxes, shape)[..., None], 3, axis=2)
    out = rgb.copy()
    if not boxes:
        return out
    for b in boxes:
        x1, y1 = max(0, int(b.x1)), max(0, int(b.y1))
        x2, y2 = min(w, int(np.ceil(b.x2))), min(h, int(np.ceil(b.y2)))
        if x2 <= x1 or y2 <= y1:
            continue
        region = rgb[y1:y2, x1:x2]
        if mode == "solid":
            covered = np.zeros_like(region)
        elif mode == "pixelate":
            # about 8 blocks across a face: no features survive, the shape of a head does
            cells = min(8, x2 - x1)
            small = cv2.resize(region, (cells, max(1, round(cells * (y2 - y1) / (x2 - x1)))),
                               interpolation=cv2.INTER_AREA)
            covered = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        else:
            # a blur wide enough that the face's features are gone: sigma a quarter of the face, applied twice.
            # Done on a copy shrunk to 64 px (the result has no detail finer than that anyway): a full-size
            # Gaussian with sigma in the hundreds of pixels costs seconds per large face.
            rh, rw = y2 - y1, x2 - x1
            k = min(1.0, 64.0 / max(rh, rw))
            small = cv2.resize(region, (max(1, round(rw * k)), max(1, round(rh * k))), interpolation=cv2.INTER_AREA)
            sigma = max(2.0, max(small.shape[:2]) / 4)
            small = cv2.GaussianBlur(cv2.GaussianBlur(small, (0, 0), sigma), (0, 0), sigma)
            covered = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_LINEAR)
        # this cover's own shape: a neighbour's cover inside this box keeps its own (no seams where covers overlap)
        m = cover_mask(y2 - y1, x2 - x1, [Box(b.x1 - x1, b.y1 - y1, b.x2 - x1, b.y2 - y1)], shape)[..., None] > 0
        out[y1:y2, x1:x2] = np.where(m, covered, out[y1:y2, x1:x2])
    return out


# -- who to cover -------------------------------------------------------------------
class PersonFilter:
    """Decides from embeddings whether a face is covered, for keep/only with a gallery collection."""

    def __init__(self, gallery, collection: str | None, *, keep: Sequence[str] | None, only: Sequence[str] | None,
                 threads: int | None = None):
        from vultus.gallery import DEFAULT_COLLECTION
        from vultus.models.cache import get_model

        if keep and only:
            raise InvalidArgumentError("keep and only cannot be used together: keep covers everyone but the "
                                       "people named, only covers nobody but them")
        self.gallery = gallery
        self.coll = gallery.collection(collection or DEFAULT_COLLECTION)
        names = {p.name for p in gallery.people(self.coll.name)}
        wanted = list(keep or only or ())
        missing = [n for n in wanted if n not in names]
        if missing:
            from vultus.gallery.errors import NotFoundError

            raise NotFoundError(f"not enrolled in {self.coll.name!r}: {', '.join(missing)}", kind="person",
                                person=missing[0], collection=self.coll.name)
        self.keep = set(keep or ())
        self.only = set(only or ())
        self.embedder = get_model(self.coll.contract.name, task="embed", threads=threads)

    def people(self, vectors: np.ndarray) -> list[str | None]:
        if not len(vectors):
            return []
        return [i.person for i in self.gallery.identify_vectors(vectors, self.coll.name, top_k=1)]

    def covered(self, person: str | None) -> bool:
        if self.keep:
            return person not in self.keep
        return person in self.only


# -- images -----------------------------------------------------------------------
def anonymize_image(rgb: np.ndarray, options: AnonymizeOptions, detector, person_filter: PersonFilter | None = None
                    ) -> tuple[np.ndarray, list[Face], list[Face]]:
    """(covered copy, faces covered, faces left visible)."""
    faces = detector.detect([rgb])[0]
    covered, kept = _split(rgb, faces, person_filter)
    h, w = rgb.shape[:2]
    boxes = [cover_box(f.box, options, w, h) for f in covered]
    return apply_covers(rgb, boxes, options.mode, options.shape), covered, kept


def _split(rgb, faces, person_filter):
    if person_filter is None or not faces:
        return list(faces), []
    people = person_filter.people(person_filter.embedder.embed([(rgb, f) for f in faces]))
    covered = [f for f, p in zip(faces, people, strict=True) if person_filter.covered(p)]
    kept = [f for f, p in zip(faces, people, strict=True) if not person_filter.covered(p)]
    return covered, kept


def _save_image(rgb: np.ndarray, out: Path, source: Path, strip_metadata: bool) -> None:
    from PIL import Image

    img = Image.fromarray(rgb)
    kwargs: dict = {}
    suffix = out.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        kwargs.update(quality=95)
    if not strip_metadata:
        with Image.open(source) as src:
            exif = src.getexif()
            if exif:
                exif[0x0112] = 1  # the pixels are already upright
                kwargs["exif"] = exif.tobytes()
            if src.info.get("icc_profile"):
                kwargs["icc_profile"] = src.info["icc_profile"]
    img.save(out, **kwargs)


# -- videos -----------------------------------------------------------------------
@dataclass(slots=True)
class _TrackIdentity:
    vectors: list = field(default_factory=list)  # heap of (quality, seq, vector)
    person: str | None = None
    decided: bool = False


def anonymize_video(src: str | Path, out: str | Path, options: AnonymizeOptions, detector,
                    person_filter: PersonFilter | None = None, progress: Callable[[int], None] | None = None,
                    best_k: int = 5) -> AnonymizeResult:
    from vultus.video.analyze import face_quality
    from vultus.video.io import VideoWriter, open_video
    from vultus.video.track import FaceTracker, SceneCutDetector

    started = time.perf_counter()
    covered_tracks: set[int] = set()
    kept_tracks: set[int] = set()
    ids: dict[int, _TrackIdentity] = {}
    seq = 0
    covered_frames = carried = 0
    with open_video(src, threads=options.threads) as video:
        info = video.info
        lookback = options.lookback if options.lookback is not None else max(1, round((info.fps or 30) / 6))
        # detections below the recall detector's floor are never seen; all of them may extend a track
        tracker = FaceTracker(fps=info.fps, high_score=max(options.min_score, 0.5), low_score=options.min_score)
        cuts = SceneCutDetector()
        pending: deque = deque()  # (frame, covers: dict[track_id, Box], forced: set of track ids) awaiting lookback
        seen_tracks: set[int] = set()
        with VideoWriter(out, fps=info.fps, width=info.width, height=info.height,
                         audio_from=src, threads=options.threads) as writer:

            def flush(keep_last: int) -> None:
                nonlocal covered_frames
                while len(pending) > keep_last:
                    fr, covers, forced = pending.popleft()
                    boxes = [b for tid, b in covers.items() if tid in forced or _is_covered(tid, ids, person_filter)]
                    if boxes:
                        covered_frames += 1
                    writer.write(apply_covers(fr.rgb, boxes, options.mode, options.shape), fr.time_s)
                    if progress:
                        progress(1)

            for frame in video:
                faces = None
                cut = cuts(frame.rgb)
                if cut:  # a new shot: no track continues, and detection runs on its first frame whatever --every
                    tracker.reset()
                if cut or frame.index % options.every == 0:
                    small = cut or (frame.index // options.every) % max(1, options.small_every) == 0
                    faces = detector.detect([frame.rgb], small_faces=small)[0]
                live = tracker.update(frame.index, faces)
                h, w = frame.rgb.shape[:2]
                covers: dict[int, Box] = {}
                forced: set[int] = set()
                to_embed = []
                to_verify = []
                for t in live:
                    covers[t.track_id] = cover_box(t.box, options, w, h, options.carry_growth * t.lost)
                    if not t.detected:
                        carried += 1
                    if person_filter is not None and t.detected:
                        ident = ids.setdefault(t.track_id, _TrackIdentity())
                        if ident.decided and not person_filter.covered(ident.person):
                            # a visible track must show its own person in every frame it is detected in: a
                            # tracker's id switch must not lend a kept person's decision to someone else
                            to_verify.append((t.track_id, ident, t.face))
                            continue
                        q = face_quality(t.face)
                        if len(ident.vectors) < best_k or q > ident.vectors[0][0]:
                            to_embed.append((ident, q, t.face))
                    if t.track_id not in seen_tracks:
                        seen_tracks.add(t.track_id)
                        # a new face: cover it in the buffered frames before it was first detected, too
                        for _, earlier, _ in pending:
                            earlier.setdefault(t.track_id, covers[t.track_id])
                if to_embed:
                    vectors = person_filter.embedder.embed([(frame.rgb, f) for _, _, f in to_embed])
                    touched = []
                    for (ident, q, _), v in zip(to_embed, vectors, strict=True):
                        seq += 1
                        (heapq.heappush if len(ident.vectors) < best_k else heapq.heapreplace)(
                            ident.vectors, (q, seq, v))
                        touched.append(ident)
                    means = np.stack([np.mean([v for _, _, v in i.vectors], axis=0) for i in touched])
                    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
                    for ident, person in zip(touched, person_filter.people(means), strict=True):
                        ident.person, ident.decided = person, True
                if to_verify:
                    vectors = person_filter.embedder.embed([(frame.rgb, f) for _, _, f in to_verify])
                    for (tid, ident, _), person in zip(to_verify, person_filter.people(vectors), strict=True):
                        if person_filter.covered(person):
                            forced.add(tid)  # covered in this frame, and identified afresh from here on
                            ident.vectors, ident.person, ident.decided = [], None, False
                for tid in covers:
                    visible = tid not in forced and not _is_covered(tid, ids, person_filter)
                    (kept_tracks if visible else covered_tracks).add(tid)
                pending.append((frame, covers, forced))
                flush(lookback)
            flush(0)
            frames = video.frames_read
    kept_only = kept_tracks - covered_tracks if person_filter is not None else set()
    return AnonymizeResult(source=str(src), output=str(out), kind="video", frames=frames,
                           faces_covered=len(covered_tracks), faces_kept=len(kept_only),
                           covered_frames=covered_frames, carried_covers=carried,
                           seconds=time.perf_counter() - started)


def _is_covered(track_id: int, ids: dict[int, _TrackIdentity], person_filter: PersonFilter | None) -> bool:
    if person_filter is None:
        return True
    ident = ids.get(track_id)
    if ident is None or not ident.decided:
        return True  # not identified yet (never detected well enough to embed): covered, to be safe
    return person_filter.covered(ident.person)


# -- files --------------------------------------------------------------------------
def _inputs(paths: Iterable[str | Path]) -> list[Path]:
    from vultus.imageio import image_suffixes
    from vultus.video.io import video_suffixes

    wanted = image_suffixes() | video_suffixes()
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in wanted))
        else:
            out.append(p)
    return out


def anonymize_paths(inputs: Iterable[str | Path], out_dir: str | Path, options: AnonymizeOptions | None = None, *,
                    gallery=None, collection: str | None = None, keep: Sequence[str] | None = None,
                    only: Sequence[str] | None = None, progress: Callable[[int], None] | None = None
                    ) -> list[AnonymizeResult]:
    """Anonymise images and videos into out_dir (same file names; a video is written as .mp4). One bad input is
    reported in its result and does not stop the others."""
    from vultus.errors import OutputError
    from vultus.imageio import load_image
    from vultus.outputs import make_output_dir
    from vultus.privacy.detect import RecallDetector, RecallSettings
    from vultus.video.io import video_suffixes

    options = options or AnonymizeOptions()
    out_dir = make_output_dir(out_dir)
    person_filter = None
    if keep or only:
        if gallery is None:
            raise InvalidArgumentError("keep and only need a gallery of enrolled people")
        person_filter = PersonFilter(gallery, collection, keep=keep, only=only, threads=options.threads)
    detector = RecallDetector(RecallSettings(min_score=options.min_score, upscale=options.upscale),
                              threads=options.threads)
    results = []
    used_names: set[str] = set()
    for src in _inputs(inputs):
        is_video = src.suffix.lower() in video_suffixes()
        name = src.stem + ".mp4" if is_video else src.name
        if name in used_names:  # two inputs with one name (from different folders): keep both
            name = f"{src.stem}-{len(used_names)}{Path(name).suffix}"
        used_names.add(name)
        out = out_dir / name
        if out.resolve() == src.resolve():
            results.append(AnonymizeResult(str(src), None, "video" if is_video else "image",
                                           error=f"{src}: the output would overwrite the input",
                                           error_code="output_is_input"))
            continue
        try:
            if is_video:
                results.append(anonymize_video(src, out, options, detector, person_filter, progress))
            else:
                t0 = time.perf_counter()
                rgb = load_image(src)
                covered_rgb, covered, kept = anonymize_image(rgb, options, detector, person_filter)
                try:
                    _save_image(covered_rgb, out, src, options.strip_metadata)
                except OSError as exc:
                    raise OutputError(f"{out}: cannot write ({exc.strerror or exc})", file=str(out)) from exc
                results.append(AnonymizeResult(str(src), str(out), "image", frames=1, faces_covered=len(covered),
                                               faces_kept=len(kept), seconds=time.perf_counter() - t0))
                if progress:
                    progress(1)
        except VultusError as exc:
            if out.exists() and is_video:
                out.unlink()  # a half-written video must not pass for an anonymised one
            results.append(AnonymizeResult(str(src), None, "video" if is_video else "image", error=str(exc),
                                           error_code=exc.code))
    return results
