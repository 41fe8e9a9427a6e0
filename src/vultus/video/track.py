"""Linking faces across frames: a small ByteTrack-style tracker.

Why not a package: supervision's ByteTrack is deprecated since 0.28 in favour of
the `trackers` package, and `trackers` requires `opencv-python`, which installs a
second `cv2` over vultus's `opencv-python-headless`; neither returns the
predicted boxes of tracks whose face was not detected in a frame, and covering
those is the point of tracking for anonymisation. The algorithm is ByteTrack's
association (Zhang et al., 2022): detections split by score; tracks matched to
confident detections first, then the leftover tracks to the weak detections that
a plain threshold would throw away, by IoU with the Hungarian method (scipy).
Motion is a constant-velocity carry of the box (centre and size, smoothed over
the matched detections) instead of a Kalman filter: faces in the clips vultus
handles move smoothly, detection runs every frame or every n-th frame, and a
carried box only has to bridge a few frames.

    tracker = FaceTracker(fps=30)
    for frame in video:
        faces = detector.detect([frame.rgb])[0] if frame.index % every == 0 else None
        for t in tracker.update(frame.index, faces):   # TrackedFace(track_id, box, score, detected, face)
            ...

update() returns every live track: those matched to a detection in this frame
(detected=True) and those carried by their velocity (detected=False): on frames
where detection did not run, and for up to `max_lost` frames after a track's
face was last seen (an occlusion or a missed detection), so the same track id
comes back when the face does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vultus.types import Box, Face


@dataclass(frozen=True, slots=True)
class TrackedFace:
    """A track's box in one frame. face is the detection (None when the box was carried); lost: frames since
    the track's face was last detected (0 when detected in this frame)."""

    track_id: int
    box: Box
    score: float
    detected: bool
    face: Face | None
    lost: int = 0


@dataclass(slots=True)
class _Track:
    track_id: int
    state: np.ndarray  # cx, cy, w, h at last_frame
    velocity: np.ndarray  # per frame
    last_frame: int
    last_detected: int
    hits: int
    score: float

    def predict(self, frame: int) -> np.ndarray:
        s = self.state + self.velocity * (frame - self.last_frame)
        s[2:] = np.maximum(s[2:], 1.0)
        return s


def _to_state(box: Box) -> np.ndarray:
    return np.array([(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2, box.width, box.height], dtype=np.float64)


def _to_box(s: np.ndarray) -> Box:
    cx, cy, w, h = (float(v) for v in s)
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between (N, 4) and (M, 4) x1,y1,x2,y2 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _xyxy(states: Sequence[np.ndarray]) -> np.ndarray:
    if not len(states):
        return np.zeros((0, 4))
    s = np.asarray(states)
    return np.stack([s[:, 0] - s[:, 2] / 2, s[:, 1] - s[:, 3] / 2, s[:, 0] + s[:, 2] / 2, s[:, 1] + s[:, 3] / 2], 1)


def _assign(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    if iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


class FaceTracker:
    """ByteTrack-style association with a constant-velocity carry.

    high_score: detections at least this confident start tracks and are matched first.
    low_score: weaker detections (down to this) only extend existing tracks.
    match_iou / low_match_iou: the IoU a predicted box needs with a detection to match it.
    max_lost: frames a track is carried without a detection before it ends (default: one second of video).
    smoothing: weight of the newest motion in the velocity (the rest is the previous velocity).
    """

    def __init__(self, *, fps: float = 30.0, high_score: float = 0.6, low_score: float = 0.3,
                 match_iou: float = 0.2, low_match_iou: float = 0.4, max_lost: int | None = None,
                 smoothing: float = 0.5):
        self.high_score, self.low_score = high_score, low_score
        self.match_iou, self.low_match_iou = match_iou, low_match_iou
        self.max_lost = max_lost if max_lost is not None else max(5, int(round(fps or 30)))
        self.smoothing = smoothing
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """End every track (a scene cut: no face on one side of it is the face on the other)."""
        self._tracks = []

    def update(self, frame: int, faces: Sequence[Face] | None) -> list[TrackedFace]:
        """Advance to `frame`; `faces` are its detections, or None when detection did not run on it."""
        if faces is None:
            return [TrackedFace(t.track_id, _to_box(t.predict(frame)), t.score, False, None, frame - t.last_detected)
                    for t in self._tracks]
        out: list[TrackedFace] = []
        faces = [f for f in faces if f.score >= self.low_score]
        high = [i for i, f in enumerate(faces) if f.score >= self.high_score]
        low = [i for i, f in enumerate(faces) if f.score < self.high_score]
        predicted = [t.predict(frame) for t in self._tracks]
        pboxes = _xyxy(predicted)
        fboxes = np.array([f.box.as_tuple() for f in faces], dtype=np.float64).reshape(-1, 4)
        matched_tracks: set[int] = set()
        used: set[int] = set()
        pairs: list[tuple[int, int]] = []
        # first: every track against the confident detections
        for r, c in _assign(iou_matrix(pboxes, fboxes[high]), self.match_iou):
            pairs.append((r, high[c]))
            matched_tracks.add(r)
            used.add(high[c])
        # second (ByteTrack): tracks left over against the weak detections
        rest = [i for i in range(len(self._tracks)) if i not in matched_tracks]
        for r, c in _assign(iou_matrix(pboxes[rest], fboxes[low]), self.low_match_iou):
            pairs.append((rest[r], low[c]))
            matched_tracks.add(rest[r])
            used.add(low[c])
        for ti, fi in pairs:
            t, f = self._tracks[ti], faces[fi]
            new = _to_state(f.box)
            gap = max(1, frame - t.last_frame)
            step = (new - t.state) / gap
            t.velocity = step if t.hits == 1 else (1 - self.smoothing) * t.velocity + self.smoothing * step
            t.state, t.last_frame, t.last_detected = new, frame, frame
            t.hits += 1
            t.score = f.score
            out.append(TrackedFace(t.track_id, f.box, f.score, True, f))
        survivors = []
        for i, t in enumerate(self._tracks):
            if i in matched_tracks:
                survivors.append(t)
            elif frame - t.last_detected <= self.max_lost:
                lost = frame - t.last_detected
                out.append(TrackedFace(t.track_id, _to_box(predicted[i]), t.score, False, None, lost))
                survivors.append(t)
        for i in high:
            if i in used:
                continue
            f = faces[i]
            t = _Track(self._next_id, _to_state(f.box), np.zeros(4), frame, frame, 1, f.score)
            self._next_id += 1
            survivors.append(t)
            out.append(TrackedFace(t.track_id, f.box, f.score, True, f))
        self._tracks = survivors
        out.sort(key=lambda tf: tf.track_id)
        return out


class SceneCutDetector:
    """Is this frame the first of a new shot? Both the mean pixel change of a 64x36 grey thumbnail and the
    change of its 16-bin histogram must be large: a hard cut changes both, while fast motion (a phone swung
    across the view) changes pixels but keeps the histogram. Tracks must not continue across a cut: an id
    carried onto another person's face would carry that person's identity (and a --keep decision) too.

    Measured on the Hamilton clip: its three cuts score 28-30 (pixels) and 0.38-0.65 (histogram); within a
    shot the pixel change stays under 14; the WebM phone replay's fastest motion reaches 25 but its histogram
    change stays under 0.36 with under 0.21 on those frames.
    """

    def __init__(self, *, pixel: float = 20.0, histogram: float = 0.3):
        self.pixel, self.histogram = pixel, histogram
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, rgb: np.ndarray) -> bool:
        import cv2

        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA)
        grey = grey.astype(np.float32)
        hist = np.histogram(grey, bins=16, range=(0, 256))[0] / grey.size
        prev, self._prev = self._prev, (grey, hist)
        if prev is None:
            return False
        return bool(np.abs(grey - prev[0]).mean() > self.pixel and np.abs(hist - prev[1]).sum() > self.histogram)
