"""Face quality: is this face good enough to trust for recognition?

One score in [0, 1] per face, built from five components, each in [0, 1]:

- sharpness: variance of the Laplacian of the aligned 112x112 grey face (a
  small face upscaled to 112 is blurry too, which is right: it holds less
  detail);
- exposure: mean brightness, contrast and clipped pixels of the aligned face;
- size: the face's size in the original image (the larger of the eye-to-eye
  and eyes-to-mouth distances, so a turned head does not read as small);
- pose: how far the head is turned from frontal (5-point pose, or 68-point
  when the face carries landmarks68);
- stability (only when an embedder is given): cosine similarity between the
  embedding of the face and of its mirror image. A clear frontal face gives
  nearly the same embedding both ways; occlusion, blur, odd pose or a
  non-face make the two disagree.

The score is a weighted geometric mean, so one very bad component (a profile,
a blur) pulls the whole score down however good the others are. Everything
runs on the 112x112 alignment the embedders use, in one pass over the batch.
bench/attributes.py shows the score is useful: rejecting the lowest-quality
LFW images lowers the verification error (bench/results/attributes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vultus.align import align_batch_112, mirrored
from vultus.attributes.pose import estimate_pose
from vultus.types import Face

# Mapping raw measurements to [0, 1]. Each component is 1 when that aspect is
# good enough and falls only when it is clearly bad, so that the score ranks
# faces by what is wrong with them, not by small differences among good ones.
# Breakpoints and weights were chosen on the LFW development pairs
# (pairsDevTrain.txt, the part of LFW meant for tuning); bench/attributes.py
# reports the View 2 pairs.
BLUR_VAR_BAD, BLUR_VAR_GOOD = 10.0, 60.0  # Laplacian variance of the aligned grey face (log scale ramp)
SCALE_PX_BAD, SCALE_PX_GOOD = 10.0, 40.0  # face scale (see face_scale) in pixels: size 0 .. 1
POSE_HALF_DEG = 45.0  # off-frontal angle at which the pose component is 0.5
STABILITY_BAD, STABILITY_GOOD = 0.80, 0.97  # mirror-embedding cosine (SFace): stability 0 .. 1

# On LFW, stability carries most of the signal (faces there are all sharp,
# large and lit); the others guard against what LFW lacks.
WEIGHTS = {"sharpness": 1.0, "exposure": 0.5, "size": 1.0, "pose": 0.5, "stability": 4.0}

# The central part of the 112x112 ArcFace crop: the face without background.
_INNER = (slice(24, 104), slice(20, 92))


@dataclass(frozen=True, slots=True)
class Quality:
    score: float
    sharpness: float
    exposure: float
    size: float
    pose: float
    stability: float | None
    # The raw measurements behind the components.
    blur_var: float = 0.0
    brightness: float = 0.0  # mean grey level 0-255 of the aligned face
    contrast: float = 0.0  # its standard deviation
    scale_px: float = 0.0  # face scale in the original image, see face_scale()
    face_px: float = 0.0  # sqrt of the box area
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    mirror_cosine: float | None = None

    def to_dict(self) -> dict:
        out = {k: round(getattr(self, k), 3) for k in ("score", "sharpness", "exposure", "size", "pose")}
        out["stability"] = None if self.stability is None else round(self.stability, 3)
        out["raw"] = {"blur_var": round(self.blur_var, 1), "brightness": round(self.brightness, 1),
                      "contrast": round(self.contrast, 1), "scale_px": round(self.scale_px, 1),
                      "face_px": round(self.face_px, 1), "yaw_deg": round(self.yaw_deg, 1),
                      "pitch_deg": round(self.pitch_deg, 1),
                      "mirror_cosine": None if self.mirror_cosine is None else round(self.mirror_cosine, 4)}
        return out


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def face_scale(face: Face) -> float:
    """Pixels between the eye centres, or from their midpoint to the mouth's
    midpoint, whichever is larger: about 70 mm on an adult face either way,
    and a turned head shortens only the first."""
    lm = face.landmarks
    eyes = float(np.linalg.norm(lm[1] - lm[0]))
    eyes_mouth = float(np.linalg.norm((lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2))
    return max(eyes, eyes_mouth)


def sharpness_score(blur_var: float) -> float:
    return _ramp(float(np.log(max(blur_var, 1e-6))), float(np.log(BLUR_VAR_BAD)), float(np.log(BLUR_VAR_GOOD)))


def exposure_score(grey: np.ndarray) -> tuple[float, float, float]:
    """(score, mean, std) of an aligned grey face region."""
    mean, std = float(grey.mean()), float(grey.std())
    clipped = float(((grey <= 8) | (grey >= 247)).mean())
    # Faces are fine anywhere from 60 to 190 mean grey; beyond that detail is lost.
    level = 1.0 - _ramp(abs(mean - 125.0), 65.0, 115.0)
    spread = _ramp(std, 8.0, 30.0)
    return level * spread * (1.0 - min(1.0, 2.0 * clipped)), mean, std


def pose_score(off_frontal_deg: float) -> float:
    return float(1.0 / (1.0 + (off_frontal_deg / POSE_HALF_DEG) ** 4))


def stability_score(cosine: float) -> float:
    return _ramp(cosine, STABILITY_BAD, STABILITY_GOOD)


def combine(components: dict[str, float | None]) -> float:
    """Weighted geometric mean of the components that are present."""
    num, den = 0.0, 0.0
    for name, value in components.items():
        if value is None:
            continue
        w = WEIGHTS[name]
        num += w * np.log(max(value, 1e-3))
        den += w
    return float(np.exp(num / den)) if den else 0.0


def mirror_cosines(items: Sequence[tuple[np.ndarray, Face]], embedder) -> np.ndarray:
    """Cosine between each face's embedding and its mirror image's, in one batch.
    A face that already carries an embedding from this embedder (Engine.embed
    sets it) reuses it, so only the mirror image is embedded."""
    own = [f.embedding is not None and f.embedding.model == embedder.name for _, f in items]
    todo = [item for item, has in zip(items, own, strict=True) if not has]
    flips = [mirrored(img, f) for img, f in items]
    vecs = embedder.embed(todo + flips)
    n = len(items)
    fresh = iter(vecs[:len(todo)])
    originals = np.stack([f.embedding.vector if has else next(fresh)
                          for (_, f), has in zip(items, own, strict=True)])
    return np.einsum("ij,ij->i", originals, vecs[len(todo):len(todo) + n])


def assess_quality(items: Sequence[tuple[np.ndarray, Face]], embedder=None) -> list[Quality]:
    """A Quality for each (RGB image, face). With an embedder (an Engine's
    `embedder`, e.g. SFace) the stability component is measured too, at the
    cost of two embeddings per face (one when the face already carries its
    embedding from that embedder)."""
    if not items:
        return []
    crops = align_batch_112(items)
    cosines = mirror_cosines(items, embedder) if embedder is not None else None
    out = []
    for i, (_img, face) in enumerate(items):
        grey = cv2.cvtColor(crops[i], cv2.COLOR_RGB2GRAY)[_INNER]
        blur_var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        exposure, mean, std = exposure_score(grey)
        scale_px = face_scale(face)
        pose = estimate_pose(face)
        off = pose.off_frontal if np.isfinite(pose.yaw) else 90.0
        comps: dict[str, float | None] = {
            "sharpness": sharpness_score(blur_var),
            "exposure": exposure,
            "size": _ramp(scale_px, SCALE_PX_BAD, SCALE_PX_GOOD),
            "pose": pose_score(off),
            "stability": None if cosines is None else stability_score(float(cosines[i])),
        }
        out.append(Quality(
            score=combine(comps), sharpness=comps["sharpness"], exposure=comps["exposure"], size=comps["size"],
            pose=comps["pose"], stability=comps["stability"], blur_var=blur_var, brightness=mean, contrast=std,
            scale_px=scale_px, face_px=float(np.sqrt(face.box.area)), yaw_deg=pose.yaw, pitch_deg=pose.pitch,
            mirror_cosine=None if cosines is None else float(cosines[i]),
        ))
    return out
