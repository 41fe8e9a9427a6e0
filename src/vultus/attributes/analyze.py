"""Engine.analyze: everything vultus can say about each face, in one typed result.

    for fa in Engine().analyze("group.jpg"):
        print(fa.age.years, fa.gender.label, fa.emotion.label, fa.pose.yaw, fa.quality.score)

All attribute models run batched over every face of every image at once. They
are loaded on first use through the process's model cache and shared by every
Engine (they hold no per-engine state; onnxruntime sessions are safe to share
between threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vultus.attributes.age_gender import Age, Gender
from vultus.attributes.emotion import Emotion
from vultus.attributes.pose import HeadPose, estimate_pose
from vultus.batching import decode_batch, with_value
from vultus.errors import InvalidArgumentError
from vultus.liveness.api import Liveness
from vultus.models.cache import get_model
from vultus.quality import Quality, assess_quality
from vultus.types import Face, ImageResult

ACTIONS = ("age", "gender", "emotion", "pose", "quality", "liveness")


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    """One face and its attributes; an attribute not asked for is None."""

    face: Face  # box, score, 5 landmarks and (for pose) the 68 landmarks
    age: Age | None = None
    gender: Gender | None = None
    emotion: Emotion | None = None
    pose: HeadPose | None = None
    quality: Quality | None = None
    liveness: Liveness | None = None

    @property
    def box(self):
        return self.face.box

    @property
    def landmarks(self) -> np.ndarray:
        return self.face.landmarks

    def to_dict(self) -> dict:
        out = self.face.to_dict()
        for name in ACTIONS:
            value = getattr(self, name)
            out[name] = None if value is None else value.to_dict()
        return out

    def label(self) -> str:
        """A short caption for drawing: "34y male happy q0.91"."""
        parts = []
        if self.age is not None:
            parts.append(f"{self.age.years:.0f}y")
        if self.gender is not None:
            parts.append(self.gender.label)
        if self.emotion is not None:
            parts.append(self.emotion.label)
        if self.pose is not None:
            parts.append(f"yaw{self.pose.yaw:+.0f}")
        if self.quality is not None:
            parts.append(f"q{self.quality.score:.2f}")
        if self.liveness is not None:
            parts.append("live" if self.liveness.live else "SPOOF")
        return " ".join(parts)


def attribute_model(name: str, task: str, threads: int | None = None):
    """The loaded model `name`, from the process's model cache."""
    return get_model(name, task=task, threads=threads)


def emotion_available() -> bool:
    """Whether an emotion model is registered: until the trained FER2013 model ships
    (train/emotion.py), analyze leaves emotion out by default rather than fail."""
    from vultus.models.registry import registry

    return any(spec.task == "emotion" for spec in registry().values())


def check_actions(actions: Sequence[str] | None) -> tuple[str, ...]:
    if actions is None:
        return ACTIONS if emotion_available() else tuple(a for a in ACTIONS if a != "emotion")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise InvalidArgumentError(f"unknown analysis {', '.join(unknown)}; choose from {', '.join(ACTIONS)}",
                                   code="unknown_analysis", unknown=unknown, choices=list(ACTIONS))
    return tuple(actions)


def analyze_batch(engine, images: Sequence, faces: Sequence[Sequence[Face]] | None = None, *,
                  actions: Sequence[str] | None = None, stability: bool = True,
                  threads: int | None = None) -> list[ImageResult[list[FaceAnalysis]]]:
    """One result per image, in order: a FaceAnalysis per face, or the error the
    image met (one bad image does not lose the others). `faces` (one list per
    image) skips detection; `actions` picks a subset of ACTIONS; stability=False
    makes quality skip the two embeddings per face its stability component costs."""
    actions = check_actions(actions)
    if faces is not None and len(faces) != len(images):
        raise InvalidArgumentError(f"{len(faces)} face lists for {len(images)} images",
                                   code="faces_images_mismatch", faces=len(faces), images=len(images))
    return analyze_decoded(engine, decode_batch(images), faces, actions=actions, stability=stability,
                           threads=threads)


def analyze_decoded(engine, decoded: list[ImageResult[np.ndarray]], faces: Sequence[Sequence[Face]] | None = None,
                    *, actions: Sequence[str] | None = None, stability: bool = True,
                    threads: int | None = None) -> list[ImageResult[list[FaceAnalysis]]]:
    """analyze_batch on images already decoded (vultus.batching.decode_batch); failures pass through."""
    actions = check_actions(actions)
    ok = [k for k, r in enumerate(decoded) if r.ok]
    arrays = [decoded[k].value for k in ok]
    if faces is not None:
        faces = [list(faces[k]) for k in ok]
    elif arrays:
        faces = [list(fs) for fs in engine.detector.detect(arrays)]
    else:
        faces = []
    if "pose" in actions:
        # The 68-point pose is the accurate one; landmarks are cheap next to the models.
        lm68 = attribute_model("dlib-68", "landmarks")
        todo = [i for i, fs in enumerate(faces) if any(f.landmarks68 is None for f in fs)]
        done = lm68.annotate([arrays[i] for i in todo], [faces[i] for i in todo]) if todo else []
        for i, fs in zip(todo, done, strict=True):
            faces[i] = fs
    items = [(img, f) for img, fs in zip(arrays, faces, strict=True) for f in fs]
    results: dict[str, list] = {}
    if items:
        if "age" in actions:
            results["age"] = attribute_model("age", "age", threads).predict(items)
        if "gender" in actions:
            results["gender"] = attribute_model("gender", "gender", threads).predict(items)
        if "emotion" in actions:
            results["emotion"] = attribute_model("emotion", "emotion", threads).predict(items)
        if "pose" in actions:
            results["pose"] = [estimate_pose(f) for _, f in items]
        if "quality" in actions:
            results["quality"] = assess_quality(items, engine.embedder if stability else None)
        if "liveness" in actions:
            from vultus.liveness.api import liveness_batch

            results["liveness"] = [r for row in liveness_batch(engine, arrays, faces) for r in row]
    out: list[ImageResult[list[FaceAnalysis]]] = list(decoded)  # failures stay as they are
    n = 0
    for k, fs in zip(ok, faces, strict=True):
        row = [FaceAnalysis(face=f, **{name: values[n + j] for name, values in results.items()})
               for j, f in enumerate(fs)]
        n += len(fs)
        out[k] = with_value(decoded[k], row)
    return out


def analyze(engine, image, faces: Sequence[Face] | None = None, **options) -> list[FaceAnalysis]:
    """The analyses of one image's faces; raises the image's error."""
    return analyze_batch(engine, [image], None if faces is None else [faces], **options)[0].unwrap()
