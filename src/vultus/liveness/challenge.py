"""Active liveness: a random challenge of 2-4 actions, answered by frames that show them in order.

    issuer = ChallengeIssuer()                        # holds a secret and the nonces it issued
    challenge = issuer.issue()                        # Challenge(nonce, actions, issued_at, deadline, token)
    ... the client shows challenge.actions to the person and records frames ...
    result = issuer.verify(engine, challenge.token, frames)   # frames: [(time_s, image), ...]
    result.passed, result.reason

A challenge is signed (HMAC-SHA256 with the issuer's secret), so a client can
neither invent one nor change its actions or deadline; each nonce is accepted
once, so a recorded answer cannot be replayed. The frames must:

- arrive before the deadline (the verifier's clock);
- show one face each, all the same person (each frame's embedding against the
  first frame's, at the embedder's calibrated threshold for a false-match rate
  of 1e-3): a face swapped in mid-sequence is refused;
- pass the passive liveness check on every frame (operating point "check-in");
- show the actions in the challenge's order, each after the previous one,
  measured against the first frame (the person at rest): a blink is the eye
  aspect ratio of dlib's 68 landmarks dropping below BLINK_EAR and below
  BLINK_SHARE of the resting one; a turn is the head's yaw moving TURN_DEGREES
  to the person's left or right; looking up, the pitch rising LOOK_UP_DEGREES;
  a smile, the mouth widening by SMILE_SHARE relative to the eye corners.

The 68-point landmarks (dlib-68) carry the iBUG 300-W research-only terms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.errors import VultusError

ACTIONS = ("blink", "turn_left", "turn_right", "look_up", "smile")
BLINK_EAR = 0.22
BLINK_SHARE = 0.75
TURN_DEGREES = 15.0
LOOK_UP_DEGREES = 10.0
SMILE_SHARE = 1.12
DEFAULT_TTL_S = 30.0
SAME_FACE_FMR = 1e-3
PASSIVE_POINT = "check-in"


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    actions: tuple[str, ...]
    issued_at: float  # seconds since the epoch
    deadline: float
    token: str  # what the client sends back with its frames

    def to_dict(self) -> dict:
        return {"nonce": self.nonce, "actions": list(self.actions), "issued_at": self.issued_at,
                "deadline": self.deadline, "token": self.token}


@dataclass(frozen=True, slots=True)
class FrameMeasure:
    time_s: float
    ear: float  # eye aspect ratio, mean of both eyes
    yaw: float
    pitch: float
    mouth: float  # mouth width / outer eye-corner distance
    passive: float
    same_face: float  # similarity to the first frame's face


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    passed: bool
    reason: str  # why it failed ("" when passed)
    nonce: str
    actions: tuple[str, ...]
    seen_at: tuple[int | None, ...]  # per action, the frame that showed it
    frames: tuple[FrameMeasure, ...]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "nonce": self.nonce, "actions": list(self.actions),
                "seen_at_frame": list(self.seen_at),
                "frames": [{k: round(float(getattr(f, k)), 4) for k in FrameMeasure.__slots__} for f in self.frames]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ChallengeIssuer:
    """Issues signed challenges and verifies their answers, each nonce once."""

    def __init__(self, secret: bytes | None = None, *, ttl_s: float = DEFAULT_TTL_S, clock=time.time,
                 used_file: Path | None = None):
        """`secret`: the signing key (random for this issuer if None). `used_file`: a file that records
        spent nonces, so that several processes sharing the secret (the CLI) refuse a replay too."""
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: set[str] = set()
        self._lock = threading.Lock()
        self._used_file = used_file

    def issue(self, actions: Sequence[str] | None = None, *, rng: secrets.SystemRandom | None = None) -> Challenge:
        """A new challenge: `actions` as given (checked), or 2-4 distinct random ones."""
        if actions is None:
            rng = rng or secrets.SystemRandom()
            actions = rng.sample(ACTIONS, rng.randint(2, 4))
        actions = tuple(actions)
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown or not actions:
            raise VultusError(f"unknown challenge actions {unknown}; choose from {', '.join(ACTIONS)}",
                              code="challenge_actions")
        now = self._clock()
        payload = {"nonce": secrets.token_hex(16), "actions": list(actions), "issued_at": now,
                   "deadline": now + self.ttl_s}
        body = _b64(json.dumps(payload, sort_keys=True).encode())
        token = body + "." + _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return Challenge(payload["nonce"], actions, now, payload["deadline"], token)

    def read(self, token: str) -> Challenge:
        """The challenge a token carries, if this issuer signed it (else a VultusError)."""
        body, _, sig = token.partition(".")
        want = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        # compared as bytes: a token with any text in it is refused, never a TypeError
        if not sig or not hmac.compare_digest(sig.encode(), want.encode()):
            raise VultusError("the challenge token was not issued here or was altered", code="challenge_forged")
        p = json.loads(_unb64(body))
        return Challenge(p["nonce"], tuple(p["actions"]), p["issued_at"], p["deadline"], token)

    def verify(self, engine, token: str, frames: Sequence[tuple[float, object]]) -> ChallengeResult:
        """Check an answer: `frames` are (time in seconds, image) in the order recorded."""
        challenge = self.read(token)
        with self._lock:
            replay = challenge.nonce in self._used or self._spend_in_file(challenge.nonce)
            self._used.add(challenge.nonce)  # a nonce is spent by its first answer, pass or fail
        if replay:
            return _failed(challenge, "this challenge was already answered (a replayed nonce)")
        if self._clock() > challenge.deadline:
            return _failed(challenge, f"answered after the deadline ({self._clock() - challenge.deadline:.1f} s late)")
        return check_frames(engine, challenge, frames)


    def _spend_in_file(self, nonce: str) -> bool:
        """Record `nonce` in the used file; True if it was there already."""
        if self._used_file is None:
            return False
        import fcntl

        self._used_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._used_file, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # two processes answering at once: one spends it
            fh.seek(0)
            if nonce in fh.read().split():
                return True
            fh.write(nonce + "\n")
            fh.flush()
        return False


def install_issuer(ttl_s: float = DEFAULT_TTL_S, *, folder: Path | None = None,
                   prefix: str = "challenge") -> ChallengeIssuer:
    """The issuer of this installation: its secret (`<prefix>.key`, made once, mode 0600) and its spent
    nonces (`<prefix>-used.txt`) live in `folder` (default: the cache dir, the CLI's). Every process
    that opens the same folder and prefix (uvicorn workers of one service) signs with the same secret
    and refuses a nonce any of them has spent."""
    import contextlib
    import os
    import tempfile

    from vultus.models.registry import cache_dir

    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = folder / f"{prefix}.key"
    if not key.exists():
        # Written whole to a temporary file, then linked into place: a second process starting at the
        # same moment either wins the link or reads the complete key of the one that did.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{prefix}.key.")
        try:
            with os.fdopen(fd, "wb") as fh:  # mkstemp makes it 0600
                fh.write(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, key)
        finally:
            os.unlink(tmp)
    secret = key.read_bytes()
    if len(secret) != 32:
        raise VultusError(f"{key}: not a challenge key (remove it to make a new one)", code="challenge_key",
                          file=str(key))
    return ChallengeIssuer(secret, ttl_s=ttl_s, used_file=folder / f"{prefix}-used.txt")


def _failed(challenge: Challenge, reason: str, measures=()) -> ChallengeResult:
    return ChallengeResult(False, reason, challenge.nonce, challenge.actions, (None,) * len(challenge.actions),
                           tuple(measures))


def eye_aspect_ratio(lm68: np.ndarray) -> float:
    def one(eye):
        vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        return vertical / (2 * np.linalg.norm(eye[0] - eye[3]))

    return float((one(lm68[36:42]) + one(lm68[42:48])) / 2)


def measure_frames(engine, frames: Sequence[tuple[float, object]]) -> tuple[list[FrameMeasure], str]:
    """Per frame what the checks need; the reason ("" if none) a frame cannot be used."""
    from vultus.attributes.pose import estimate_pose
    from vultus.imageio import load_image
    from vultus.liveness.api import liveness_batch

    images = [load_image(img) for _, img in frames]
    found = engine.detector.detect(images)
    for k, faces in enumerate(found):
        if len(faces) != 1:
            return [], f"frame {k} shows {len(faces)} faces; every frame must show exactly one"
    faces = [fs[0] for fs in found]
    embedded = [r.unwrap()[0] for r in engine.embed_batch(images, [[f] for f in faces])]
    passive = [r[0].score for r in liveness_batch(engine, images, [[f] for f in faces], point=PASSIVE_POINT)]
    out = []
    for (t, _), img, face, emb, score in zip(frames, images, faces, embedded, passive, strict=True):
        f68 = engine.landmarks68(img, [face])[0]
        lm = f68.landmarks68
        pose = estimate_pose(f68)
        mouth = float(np.linalg.norm(lm[54] - lm[48]) / np.linalg.norm(lm[45] - lm[36]))
        out.append(FrameMeasure(float(t), eye_aspect_ratio(lm), pose.yaw, pose.pitch, mouth, float(score),
                                emb.embedding.similarity(embedded[0].embedding)))
    return out, ""


def shows(action: str, m: FrameMeasure, rest: FrameMeasure) -> bool:
    if action == "blink":
        return m.ear < BLINK_EAR and m.ear < BLINK_SHARE * rest.ear
    if action == "turn_left":  # the person's own left: positive yaw (vultus.attributes.pose)
        return m.yaw - rest.yaw > TURN_DEGREES
    if action == "turn_right":
        return m.yaw - rest.yaw < -TURN_DEGREES
    if action == "look_up":
        return m.pitch - rest.pitch > LOOK_UP_DEGREES
    if action == "smile":
        return m.mouth > SMILE_SHARE * rest.mouth
    raise VultusError(f"unknown challenge action {action!r}", code="challenge_actions")


def check_frames(engine, challenge: Challenge, frames: Sequence[tuple[float, object]]) -> ChallengeResult:
    from vultus.liveness.api import operating_point

    if len(frames) < len(challenge.actions) + 1:
        return _failed(challenge, f"{len(frames)} frames cannot show a face at rest and {len(challenge.actions)} "
                                  "actions")
    times = [t for t, _ in frames]
    if any(b <= a for a, b in zip(times, times[1:], strict=False)):
        return _failed(challenge, "frame times do not increase")
    if times[-1] - times[0] > challenge.deadline - challenge.issued_at:
        return _failed(challenge, "the frames span longer than the challenge allowed")
    measures, why = measure_frames(engine, frames)
    if why:
        return _failed(challenge, why)
    same = engine.operating_point(SAME_FACE_FMR).threshold
    for k, m in enumerate(measures):
        if m.same_face < same:
            return _failed(challenge, f"frame {k} shows another person (similarity {m.same_face:.3f} to the first "
                                      f"frame, below {same:.3f})", measures)
    threshold = operating_point(PASSIVE_POINT).threshold
    for k, m in enumerate(measures):
        if m.passive < threshold:
            return _failed(challenge, f"frame {k} fails the passive liveness check (score {m.passive:.3f} below "
                                      f"{threshold:.3f})", measures)
    rest = measures[0]
    seen: list[int | None] = []
    k = 1
    for action in challenge.actions:
        while k < len(measures) and not shows(action, measures[k], rest):
            k += 1
        if k >= len(measures):
            seen.append(None)
            seen += [None] * (len(challenge.actions) - len(seen))
            done = ", ".join(f"{a} (frame {s})" for a, s in zip(challenge.actions, seen, strict=False) if s is not None)
            return ChallengeResult(False, f"{action} not seen in order" + (f" after {done}" if done else ""),
                                   challenge.nonce, challenge.actions, tuple(seen), tuple(measures))
        seen.append(k)
        k += 1
    return ChallengeResult(True, "", challenge.nonce, challenge.actions, tuple(seen), tuple(measures))
