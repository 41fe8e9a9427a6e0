"""Who appears when in a video: detect (every n-th frame), track, and identify each track once.

Each track's identity is decided from its embeddings aggregated over its best
frames (the `best_k` detections with the highest quality, here detector score
times a size ramp that reaches 1 at 64 px), averaged and renormalised, then
identified against a gallery collection with the collection's own threshold,
so one blurred or turned frame does not name a track.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.types import Box, Face
from vultus.video.io import VideoInfo, open_video
from vultus.video.track import FaceTracker, SceneCutDetector


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """One face track: when it is on screen, its best face, and who it is (with a gallery)."""

    track_id: int
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    detections: int
    best_frame: int
    best_time_s: float
    best_box: Box
    best_quality: float
    thumbnail: np.ndarray = field(repr=False)  # RGB crop of the best face, with a margin
    person: str | None = None  # None: unknown, or no gallery
    similarity: float | None = None
    embeddings_used: int = 0
    closest: str | None = None  # the most similar enrolled person, even when below the threshold

    @property
    def label(self) -> str:
        return self.person if self.person is not None else "unknown"

    def to_dict(self) -> dict:
        b = self.best_box
        return {"track": self.track_id, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "first_frame": self.first_frame, "last_frame": self.last_frame, "detections": self.detections,
                "best_frame": self.best_frame, "best_time_s": round(self.best_time_s, 3),
                "best_box": [round(v, 1) for v in b.as_tuple()], "best_quality": round(self.best_quality, 3),
                "person": self.label if self.similarity is not None else None,
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "embeddings_used": self.embeddings_used}


@dataclass(frozen=True, slots=True)
class VideoAnalysis:
    path: str
    info: VideoInfo
    frames: int
    every: int
    seconds: float
    tracks: list[TrackSummary]
    decision: object | None = None  # the gallery's Decision (threshold, fmr, source) when identifying
    #: per frame index: (track_id, box, detected) of every live track, for drawing
    boxes: dict[int, list[tuple[int, Box, bool]]] = field(default_factory=dict, repr=False)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        i = self.info
        out = {"video": self.path, "width": i.width, "height": i.height, "fps": round(i.fps, 3),
               "frames": self.frames, "duration_s": i.duration_s, "rotation": i.rotation, "every": self.every,
               "processing_fps": round(self.frames_per_second, 2), "tracks": [t.to_dict() for t in self.tracks]}
        if self.decision is not None:
            out["decision"] = self.decision.to_dict()
        return out


def face_quality(face: Face) -> float:
    """Detector confidence times a size ramp (1 from 64 px up): picks the frames worth embedding."""
    side = min(face.box.width, face.box.height)
    return float(face.score) * float(min(1.0, max(0.0, side / 64.0)))


def crop(rgb: np.ndarray, box: Box, margin: float = 0.25) -> np.ndarray:
    h, w = rgb.shape[:2]
    mx, my = box.width * margin, box.height * margin
    x1, y1 = max(0, int(box.x1 - mx)), max(0, int(box.y1 - my))
    x2, y2 = min(w, int(np.ceil(box.x2 + mx))), min(h, int(np.ceil(box.y2 + my)))
    return rgb[y1:y2, x1:x2].copy()


@dataclass(slots=True)
class _TrackState:
    first_frame: int
    start_s: float
    last_frame: int = 0
    end_s: float = 0.0
    detections: int = 0
    best: tuple | None = None  # (quality, frame, time, box, thumbnail)
    vectors: list = field(default_factory=list)  # heap of (quality, seq, vector)


def analyze_video(path: str | Path, *, detector: str = "yunet", every: int = 1, gallery=None,
                  collection: str | None = None, best_k: int = 5, min_detections: int = 2,
                  threads: int | None = None, progress: Callable[[int], None] | None = None) -> VideoAnalysis:
    """Detect faces every `every` frames, track them through every frame, and (with a gallery and a
    collection) decide who each track is. Tracks detected fewer than `min_detections` times are dropped
    (a one-frame false detection is not a person on screen)."""
    from vultus.errors import InvalidArgumentError
    from vultus.models.cache import get_model

    if every < 1:
        raise InvalidArgumentError(f"detection interval must be at least 1 frame (got {every})", value=every)
    embedder = decision = coll = None
    if gallery is not None:
        from vultus.gallery import DEFAULT_COLLECTION

        coll = gallery.collection(collection or DEFAULT_COLLECTION)
        decision = gallery.decision(coll)  # a collection that cannot decide fails before the video is read
        embedder = get_model(coll.contract.name, task="embed", threads=threads)
        detector = coll.detector or detector
    det = get_model(detector, task="detect", threads=threads)
    started = time.perf_counter()
    states: dict[int, _TrackState] = {}
    boxes: dict[int, list[tuple[int, Box, bool]]] = {}
    seq = 0
    with open_video(path, threads=threads) as video:
        tracker = FaceTracker(fps=video.info.fps)
        cuts = SceneCutDetector()
        for frame in video:
            cut = cuts(frame.rgb)
            if cut:
                tracker.reset()
            faces = det.detect([frame.rgb])[0] if cut or frame.index % every == 0 else None
            live = tracker.update(frame.index, faces)
            boxes[frame.index] = [(t.track_id, t.box, t.detected) for t in live]
            to_embed = []
            for t in live:
                if not t.detected:
                    continue
                st = states.get(t.track_id)
                if st is None:
                    st = states[t.track_id] = _TrackState(first_frame=frame.index, start_s=frame.time_s)
                st.last_frame, st.end_s = frame.index, frame.time_s
                st.detections += 1
                q = face_quality(t.face)
                if st.best is None or q > st.best[0]:
                    st.best = (q, frame.index, frame.time_s, t.box, crop(frame.rgb, t.box))
                if embedder is not None and (len(st.vectors) < best_k or q > st.vectors[0][0]):
                    to_embed.append((st, q, t.face))
            if to_embed:
                vectors = embedder.embed([(frame.rgb, f) for _, _, f in to_embed])
                for (st, q, _), v in zip(to_embed, vectors, strict=True):
                    seq += 1
                    item = (q, seq, v)
                    if len(st.vectors) < best_k:
                        heapq.heappush(st.vectors, item)
                    else:
                        heapq.heapreplace(st.vectors, item)
            if progress:
                progress(1)
        info, frames = video.info, video.frames_read
    kept = {tid: st for tid, st in states.items() if st.detections >= min_detections}
    idents = {}
    if embedder is not None and kept:
        ids = sorted(kept)
        means = np.stack([np.mean([v for _, _, v in kept[t].vectors], axis=0) for t in ids])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        found = gallery.identify_vectors(means, coll.name, top_k=2)
        idents = dict(zip(ids, found, strict=True))
    tracks = []
    for tid in sorted(kept, key=lambda t: (kept[t].start_s, t)):
        st = kept[tid]
        q, bf, bt, bb, thumb = st.best
        ident = idents.get(tid)
        tracks.append(TrackSummary(
            track_id=tid, start_s=st.start_s, end_s=st.end_s, first_frame=st.first_frame, last_frame=st.last_frame,
            detections=st.detections, best_frame=bf, best_time_s=bt, best_box=bb, best_quality=q, thumbnail=thumb,
            person=ident.person if ident else None, similarity=ident.similarity if ident else None,
            embeddings_used=len(st.vectors),
            closest=ident.matches[0].person if ident and ident.matches else None))
    live_ids = set(kept)
    boxes = {i: [b for b in bs if b[0] in live_ids] for i, bs in boxes.items()}
    return VideoAnalysis(path=str(path), info=info, frames=frames, every=every,
                         seconds=time.perf_counter() - started, tracks=tracks, decision=decision, boxes=boxes)


def write_annotated(analysis: VideoAnalysis, out: str | Path, *, progress: Callable[[int], None] | None = None,
                    threads: int | None = None) -> None:
    """A copy of the analysed video with each track's box and label drawn (carried boxes dashed-thin), audio kept."""
    from PIL import Image, ImageDraw

    from vultus.video.io import VideoWriter

    colours = [(0, 200, 255), (255, 80, 80), (80, 220, 80), (255, 200, 0), (200, 100, 255)]
    labels = {t.track_id: f"#{t.track_id} {t.label}" + (f" {t.similarity:.2f}" if t.similarity is not None else "")
              for t in analysis.tracks}
    with open_video(analysis.path, threads=threads) as video, VideoWriter(
            out, fps=video.info.fps, width=video.info.width, height=video.info.height,
            audio_from=analysis.path, threads=threads) as writer:
        width = max(2, round(max(video.info.width, video.info.height) / 400))
        for frame in video:
            img = Image.fromarray(frame.rgb)
            draw = ImageDraw.Draw(img)
            for tid, box, detected in analysis.boxes.get(frame.index, ()):
                colour = colours[tid % len(colours)]
                draw.rectangle(box.as_tuple(), outline=colour, width=width if detected else 1)
                draw.text((box.x1 + 2, max(0, box.y1 - 12)), labels.get(tid, f"#{tid}"), fill=colour)
            writer.write(np.asarray(img), frame.time_s)
            if progress:
                progress(1)
