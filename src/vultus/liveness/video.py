"""Liveness over a video or a sequence of frames: frame skipping, clips, temporal cues, one decision per face.

After "Deep Ensemble Learning with Frame Skipping for Face Anti-Spoofing", adapted
to what runs here: every n-th frame is sampled (`every`), each face is followed
across the sampled frames (vultus.video.track.FaceTracker), and each face's
samples are cut into fixed-length clips (`clip_len`). A clip is scored from

- the passive score of every sampled frame (the shipped model, as for images):
  its median, so one odd frame does not decide;
- a temporal cue: a photo or a screen moves as one rigid plane, so the motion of
  corners followed inside the face (Lucas-Kanade optical flow, frame to frame,
  forward-backward checked) from the clip's first sample to each later one is
  explained by one homography (the residual is tracking noise), while a live
  head turning, nodding, blinking or talking moves the nose against the eyes and
  mouth in a way no homography explains. A clip whose face moved clearly
  (median displacement m >= min_motion of the eye distance) but whose motion a
  homography explains (median residual r below c * m**p, also as a share of the
  eye distance: tracking drift grows with the motion) is a plane: an attack
  whatever its passive score. A face that does not move, or whose corners are
  lost (fast motion, blur), gives no temporal evidence either way.

A clip is live when its passive median passes the operating point's threshold
and it is not a plane. The face's decision is the majority of its clips, and
its confidence the share of clips that agree with it (ties: not live).
The plane constants (min_motion, c, p) are in vultus/models/liveness_plane.json,
chosen by bench/liveness_video.py by a rule written before its run: on synthetic
plane attacks (still photos of one set of LFW people moved by random homographies,
vultus.liveness.synthetic) and the live clips of one filmed stage video, then
reported on plane attacks from other people and the two real antispoof clips
(bench/results/liveness-video.md). No real print held by a hand chose them: a
real print bends and is lit unevenly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import cv2
import numpy as np

from vultus.liveness.api import LivenessPoint, detect_for_liveness, operating_point, shipped
from vultus.types import Box, Face

# A video is judged at the lenient point by default: its decision already pools many frames and the
# plane test, and at "door" the real person beside the phone in the shared spoof clip (hand over the
# mouth, at the frame's edge) is refused. Pass point="door" for the strict per-frame threshold.
VIDEO_DEFAULT_POINT = "check-in"
MIN_CLIPS_FRAMES = 3  # a track with fewer sampled frames than this is not decided
MIN_POINTS = 12  # corners that must survive the whole clip for the plane test


@dataclass(frozen=True, slots=True)
class ClipLiveness:
    frames: tuple[int, ...]  # frame indices of the clip's samples
    passive: float  # median passive score
    motion: float  # median landmark displacement from the first sample, / eye distance
    residual: float  # median homography residual, / eye distance
    plane: bool
    live: bool

    def to_dict(self) -> dict:
        return {"frames": [self.frames[0], self.frames[-1]], "passive": round(self.passive, 4),
                "motion": round(self.motion, 4),
                "residual": None if np.isnan(self.residual) else round(self.residual, 4), "plane": self.plane,
                "live": self.live}


@dataclass(frozen=True, slots=True)
class FaceTrackLiveness:
    """One face followed through the video and its decision."""

    track_id: int
    live: bool
    confidence: float  # share of clips agreeing with `live`
    clips: tuple[ClipLiveness, ...]
    first_frame: int
    last_frame: int
    box: Box  # where the face was in its first sampled frame
    point: LivenessPoint = field(repr=False)

    @property
    def reason(self) -> str:
        if self.live:
            return ""
        planes = sum(c.plane for c in self.clips)
        low = sum(c.passive < self.point.threshold for c in self.clips)
        parts = []
        if low:
            parts.append(f"{low} of {len(self.clips)} clips below the passive threshold {self.point.threshold:.3f}")
        if planes:
            parts.append(f"{planes} of {len(self.clips)} clips move as one rigid plane (a photo or a screen)")
        return "; ".join(parts) or "too few clips"

    def to_dict(self) -> dict:
        return {"track": self.track_id, "live": self.live, "confidence": round(self.confidence, 3),
                "reason": self.reason, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "box": [round(v, 1) for v in self.box.as_tuple()], "operating_point": self.point.name,
                "threshold": round(self.point.threshold, 6), "clips": [c.to_dict() for c in self.clips]}


@dataclass(frozen=True, slots=True)
class VideoLiveness:
    faces: tuple[FaceTrackLiveness, ...]
    frames_read: int
    frames_sampled: int
    model: str

    @property
    def live(self) -> bool:
        """Whether the video shows at least one live face and no attack (the check a door makes)."""
        return bool(self.faces) and all(f.live for f in self.faces)

    def to_dict(self) -> dict:
        return {"live": self.live, "model": self.model, "frames_read": self.frames_read,
                "frames_sampled": self.frames_sampled, "faces": [f.to_dict() for f in self.faces]}


@cache
def plane_constants() -> dict:
    """min_motion, coef (c) and exponent (p) of the plane test, from vultus/models/liveness_plane.json
    (written by bench/liveness_video.py), read once per process."""
    return json.loads(resources.files("vultus").joinpath("models/liveness_plane.json").read_text())


def is_plane(motion: float, residual: float) -> bool:
    """A face that moved (motion >= min_motion) as one plane (residual < coef * motion**exponent);
    both as shares of the eye distance."""
    k = plane_constants()
    return motion >= k["min_motion"] and residual < k["coef"] * motion ** k["exponent"]


def plane_fit(first: np.ndarray, later: np.ndarray, eye: float) -> tuple[float, float]:
    """(motion, residual) of points from `first` to `later` (N, 2): their mean displacement and the mean
    error of the best single homography between them, both as shares of the eye distance."""
    eye = eye or 1.0
    motion = float(np.linalg.norm(later - first, axis=1).mean()) / eye
    h, _ = cv2.findHomography(first.astype(np.float64), later.astype(np.float64), 0)
    if h is None:
        return motion, 1.0
    mapped = cv2.perspectiveTransform(first.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)
    return motion, float(np.linalg.norm(mapped - later, axis=1).mean()) / eye


def face_points(grey: np.ndarray, face: Face) -> np.ndarray:
    """Corners to follow inside the face (at least the 5 landmarks)."""
    b = face.box
    mask = np.zeros_like(grey)
    cx, cy, hw, hh = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, b.width * 0.4, b.height * 0.45
    mask[int(max(cy - hh, 0)):int(cy + hh), int(max(cx - hw, 0)):int(cx + hw)] = 255
    pts = cv2.goodFeaturesToTrack(grey, maxCorners=120, qualityLevel=0.01, minDistance=4, mask=mask)
    pts = np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2)
    return np.vstack([face.landmarks.astype(np.float32), pts])


def follow(greys: list[np.ndarray], start: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Points of the first grey frame followed frame to frame by pyramidal Lucas-Kanade; returns the
    starting points that survived every step and their positions in each later frame."""
    alive = np.ones(len(start), bool)
    pos = start.astype(np.float32)
    path = []
    for prev, nxt in zip(greys, greys[1:], strict=False):
        new, status, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, pos.reshape(-1, 1, 2), None, winSize=(21, 21),
                                                  maxLevel=3)
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, new, None, winSize=(21, 21), maxLevel=3)
        ok = (status.ravel() == 1) & (status_back.ravel() == 1) & \
            (np.linalg.norm(back.reshape(-1, 2) - pos, axis=1) < 1.0)  # forward-backward check
        alive &= ok
        pos = new.reshape(-1, 2)
        path.append(pos.copy())
    return alive, path


def score_clip(frames: list[int], passive: list[float], greys: list[np.ndarray], faces: list[Face],
               threshold: float) -> ClipLiveness:
    start = face_points(greys[0], faces[0])
    eye = float(np.linalg.norm(faces[0].landmarks[0] - faces[0].landmarks[1]))
    alive, path = follow(greys, start)
    fits = []
    for pos in path:
        if alive.sum() >= MIN_POINTS:
            fits.append(plane_fit(start[alive], pos[alive], eye))
    # Too few points followed through the clip (fast motion, blur): no temporal evidence. The 5 detector
    # landmarks are not used instead: their noise (about 1% of the eye distance) is the size of the signal.
    motion = float(np.median([m for m, _ in fits])) if fits else 0.0
    residual = float(np.median([r for _, r in fits])) if fits else float("nan")
    plane = bool(fits) and is_plane(motion, residual)
    score = float(np.median(passive))
    return ClipLiveness(tuple(frames), score, motion, residual, plane, score >= threshold and not plane)


def liveness_of_frames(engine, frames: Iterable[np.ndarray], *, every: int = 3, clip_len: int = 8,
                       point: str | None = None, model: str | None = None, fps: float = 15.0) -> VideoLiveness:
    """Liveness of each face in a sequence of RGB frames (arrays), sampling every `every`-th frame."""
    from vultus.models.cache import get_model
    from vultus.video.track import FaceTracker

    if every < 1 or clip_len < 2:
        from vultus.errors import VultusError

        raise VultusError("every must be >= 1 and clip_len >= 2", code="bad_option", every=every, clip_len=clip_len)
    model = model or shipped()["adopted"]
    chosen = operating_point(point or VIDEO_DEFAULT_POINT, model)
    scorer = get_model(model, task="liveness")
    tracker = FaceTracker(fps=fps / every)
    # Per track: the samples of its current clip (frames kept only until the clip is scored, so memory
    # stays at one clip per face however long the video), its scored clips, and where it began and ended.
    pending: dict[int, list[tuple[int, float, np.ndarray, Face]]] = {}
    clips: dict[int, list[ClipLiveness]] = {}
    span: dict[int, list] = {}

    def close_clip(track_id: int) -> None:
        part = pending.pop(track_id, [])
        if part:
            clips.setdefault(track_id, []).append(score_clip(
                [p[0] for p in part], [p[1] for p in part], [p[2] for p in part], [p[3] for p in part],
                chosen.threshold))

    read = sampled = 0
    for index, rgb in enumerate(frames):
        read += 1
        if index % every:
            continue
        sampled += 1
        faces = detect_for_liveness(engine.detector, [rgb])[0]
        tracked = [t for t in tracker.update(sampled, faces) if t.detected and t.face is not None]
        if not tracked:
            continue
        scores = scorer.live_scores([(rgb, t.face) for t in tracked])
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for t, score in zip(tracked, scores, strict=True):
            pending.setdefault(t.track_id, []).append((index, float(score), grey, t.face))
            span.setdefault(t.track_id, [index, index, t.face.box])[1] = index
            if len(pending[t.track_id]) == clip_len:
                close_clip(t.track_id)
    for track_id in list(pending):
        # A short tail adds no evidence to a track that has clips; a short track is not decided.
        if len(pending[track_id]) >= MIN_CLIPS_FRAMES:
            close_clip(track_id)
    results = []
    for track_id, done in sorted(clips.items()):
        live_share = sum(c.live for c in done) / len(done)
        live = live_share > 0.5
        first, last, box = span[track_id]
        results.append(FaceTrackLiveness(track_id, live, live_share if live else 1 - live_share, tuple(done),
                                         first, last, box, chosen))
    return VideoLiveness(tuple(results), read, sampled, model)


def liveness_of_video(engine, path, **options) -> VideoLiveness:
    """Liveness of each face in a video file (read with vultus.video)."""
    from vultus.video import open_video

    with open_video(path) as video:
        fps = video.info.fps or 15.0
        return liveness_of_frames(engine, (f.rgb for f in video), fps=fps, **options)
