"""The Engine: detector, aligner, embedder and attribute models composed by name.

    engine = Engine()                      # YuNet + SFace
    faces = engine.embed("group.jpg")      # every face, with its embedding
    result = engine.verify("a.jpg", "b.jpg")

Models are loaded on first use through the process's one model cache
(vultus.models.cache), so Engines built with the same names share them, and
an Engine may be shared between threads.
Every *_batch method takes a list and runs the models batched; the plain
methods are the one-image conveniences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from vultus.errors import ManyFacesError, NoFaceError
from vultus.imageio import decode_image, load_image
from vultus.models.cache import get_model
from vultus.models.calibration import operating_point
from vultus.models.registry import get_spec
from vultus.models.runtime import Lazy
from vultus.types import Embedding, Face, OperatingPoint, Verification


class Engine:
    def __init__(self, detector: str = "yunet", embedder: str = "sface", *, threads: int | None = None,
                 max_side: int | None = None):
        # Look the names up now so a typo fails here, not at the first image.
        self.detector_spec = get_spec(detector, task="detect")
        self.embedder_spec = get_spec(embedder, task="embed")
        det_options = {"threads": threads, "max_side": max_side or None}
        # Nothing loads here: each Lazy fetches its model from the model cache on first use
        # and keeps the reference, so later calls cost an attribute read.
        self._detector = Lazy(lambda: get_model(detector, task="detect", **det_options))
        self._embedder = Lazy(lambda: get_model(embedder, task="embed", threads=threads))
        self._landmarks68 = Lazy(lambda: get_model("dlib-68", task="landmarks"))

    @property
    def detector(self):
        return self._detector.get()

    @property
    def embedder(self):
        return self._embedder.get()

    @property
    def embedder_name(self) -> str:
        return self.embedder_spec.name

    # -- detection -------------------------------------------------------
    def detect(self, image) -> list[Face]:
        """Faces in one image (path, bytes, PIL image or array), best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence) -> list[list[Face]]:
        # Detection shrinks large photos to the detector's max_side anyway, so files
        # are decoded no larger than that needs (a big JPEG at 1/2..1/8 of its size)
        # and the faces are mapped back to the full image's coordinates.
        from vultus.detect.base import _rescale

        max_side = getattr(self.detector, "max_side", None)
        decoded = [decode_image(i, max_side=max_side) for i in images]
        found = self.detector.detect([d.pixels for d in decoded])
        return [fs if d.scale == 1.0 else [_rescale(f, 1.0 / d.scale, d.width, d.height) for f in fs]
                for d, fs in zip(decoded, found, strict=True)]

    def landmarks68(self, image, faces: Sequence[Face] | None = None) -> list[Face]:
        """The faces (detected if not given) with dlib's 68 points filled in."""
        img = load_image(image)
        faces = self.detector.detect([img])[0] if faces is None else list(faces)
        return self._landmarks68.get().annotate([img], [faces])[0]

    # -- embedding -------------------------------------------------------
    def embed(self, image, faces: Sequence[Face] | None = None) -> list[Face]:
        """Every face in the image (or the given faces) with `embedding` set."""
        return self.embed_batch([image], None if faces is None else [faces])[0]

    def embed_batch(self, images: Sequence, faces: Sequence[Sequence[Face]] | None = None) -> list[list[Face]]:
        arrays = [load_image(i) for i in images]
        if faces is None:
            faces = self.detector.detect(arrays)
        items = [(img, f) for img, fs in zip(arrays, faces, strict=True) for f in fs]
        vectors = self.embedder.embed(items)
        out, k = [], 0
        for fs in faces:
            row = []
            for f in fs:
                row.append(replace(f, embedding=Embedding(vectors[k], self.embedder_name)))
                k += 1
            out.append(row)
        return out

    def embed_one(self, image, *, largest: bool = False) -> Face:
        """The single face of an image that must show one (an ID photo, a probe).

        Several faces raise ManyFacesError unless `largest` picks the biggest."""
        return self.embed_one_batch([image], largest=largest)[0]

    def embed_one_batch(self, images: Sequence, *, largest: bool = False) -> list[Face]:
        arrays = [load_image(i) for i in images]
        detected = self.detector.detect(arrays)
        picked = [[pick_one(fs, largest=largest, name=_label(src))] for fs, src in zip(detected, images, strict=True)]
        return [fs[0] for fs in self.embed_batch(arrays, picked)]

    # -- attributes ------------------------------------------------------
    def analyze(self, image, faces: Sequence[Face] | None = None, **options) -> list:
        """Age, gender, emotion, head pose and quality of every face (or of the
        given faces): a FaceAnalysis each. Options: see vultus.attributes.analyze."""
        from vultus.attributes.analyze import analyze_batch

        return analyze_batch(self, [image], None if faces is None else [faces], **options)[0]

    # -- liveness --------------------------------------------------------
    def liveness(self, image, faces: Sequence[Face] | None = None, **options) -> list:
        """Is each face (detected if not given) a live person or a presentation attack (a print, a
        screen)? A vultus.liveness.api.Liveness per face. Options: point ("door", "check-in"),
        model, threshold; see vultus.liveness.api.liveness_batch."""
        return self.liveness_batch([image], None if faces is None else [faces], **options)[0]

    def liveness_batch(self, images: Sequence, faces: Sequence[Sequence[Face]] | None = None, **options) -> list:
        from vultus.liveness.api import liveness_batch

        return liveness_batch(self, images, faces, **options)

    # -- decisions -------------------------------------------------------
    def operating_point(self, target_fmr: float | None = None) -> OperatingPoint:
        """The calibrated threshold of this engine's embedder for a false-match rate."""
        return operating_point(self.embedder_name, target_fmr)

    def verify(self, a, b, *, target_fmr: float | None = None, largest: bool = False,
               point: OperatingPoint | None = None) -> Verification:
        """Are the faces in images `a` and `b` the same person?

        The threshold is the calibration's for `target_fmr`, or `point` when given
        (e.g. a threshold measured on the user's own data and stored on a gallery
        collection by `vultus calibrate --collection`)."""
        if point is None:
            point = self.operating_point(target_fmr)
        fa, fb = self.embed_one_batch([a, b], largest=largest)
        sim = fa.embedding.similarity(fb.embedding)
        return Verification(same=sim >= point.threshold, similarity=sim, threshold=point.threshold,
                            fmr=point.fmr, model=self.embedder_name, faces=(fa, fb))


def pick_one(faces: Sequence[Face], *, largest: bool = False, name: str = "image") -> Face:
    if not faces:
        raise NoFaceError(f"{name}: no face found", file=name)
    if len(faces) > 1 and not largest:
        raise ManyFacesError(f"{name}: {len(faces)} faces found where one was expected", file=name,
                             faces=len(faces))
    return max(faces, key=lambda f: f.box.area)


def _label(image) -> str:
    if isinstance(image, str):
        return image
    if hasattr(image, "__fspath__"):
        return str(image)
    return "image"


def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities between two stacks of unit vectors."""
    return a @ b.T
