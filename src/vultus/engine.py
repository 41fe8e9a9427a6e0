"""The Engine: detector, aligner, embedder and attribute models composed by name.

    engine = Engine()                      # YuNet + SFace
    faces = engine.embed("group.jpg")      # every face, with its embedding
    result = engine.verify("a.jpg", "b.jpg")

Models are loaded on first use through the process's one model cache
(vultus.models.cache), so Engines built with the same names share them, and
an Engine may be shared between threads.
Every *_batch method takes a list and runs the models batched, returning one
ImageResult per image (a value or that image's error, never an exception that
loses the rest); every *_stream method does the same over an iterable of any
length, a chunk at a time, with flat memory. The plain methods are the
one-image conveniences and raise the image's error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from vultus.batching import DEFAULT_CHUNK_SIZE, chunked, decode_batch, failed, with_value
from vultus.errors import InvalidArgumentError, ManyFacesError, NoFaceError, VultusError
from vultus.imageio import load_image
from vultus.models.cache import get_model
from vultus.models.calibration import operating_point
from vultus.models.registry import get_spec
from vultus.models.runtime import Lazy
from vultus.types import Embedding, Face, ImageResult, OperatingPoint, Verification


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
        """Faces in one image (path, bytes, PIL image or array), best first; raises its ImageError."""
        return self.detect_batch([image])[0].unwrap()

    def detect_batch(self, images: Sequence) -> list[ImageResult[list[Face]]]:
        """One result per image, in order: its faces, or the error it met (one detector call)."""
        return self._detect(decode_batch(images, max_side=self._detection_side()))

    def detect_stream(self, images: Iterable, *, chunk_size: int = DEFAULT_CHUNK_SIZE
                      ) -> Iterator[ImageResult[list[Face]]]:
        """detect_batch over an iterable of any length, `chunk_size` images at a time: each image is
        decoded once and released when its chunk is done, so memory does not grow with the stream."""
        return self._stream(self._detect, images, chunk_size, max_side=self._detection_side())

    def _detection_side(self) -> int | None:
        # Detection shrinks large photos to the detector's max_side anyway, so files are
        # decoded no larger than that needs (a big JPEG at 1/2..1/8 of its size, inside
        # the decoder) and the faces are mapped back to the full image's coordinates.
        return getattr(self.detector, "max_side", None)

    def _detect(self, decoded: list[ImageResult[np.ndarray]]) -> list[ImageResult[list[Face]]]:
        from vultus.detect.base import _rescale

        ok = [r for r in decoded if r.ok]
        found = iter(self.detector.detect([r.value for r in ok]) if ok else [])
        out = []
        for r in decoded:
            if not r.ok:
                out.append(r)
                continue
            faces = next(found)
            scale = r.value.shape[1] / r.width if r.width else 1.0  # decoded / full size
            if scale != 1.0:
                faces = [_rescale(f, 1.0 / scale, r.width, r.height) for f in faces]
            out.append(with_value(r, faces))
        return out

    @staticmethod
    def _stream(work, images: Iterable, chunk_size: int, *, max_side: int | None = None) -> Iterator:
        chunks = chunked(images, chunk_size)  # checks chunk_size now, not at the first image

        def results():
            start = 0
            for chunk in chunks:
                yield from work(decode_batch(chunk, start=start, max_side=max_side))
                start += len(chunk)

        return results()

    def landmarks68(self, image, faces: Sequence[Face] | None = None) -> list[Face]:
        """The faces (detected if not given) with dlib's 68 points filled in."""
        img = load_image(image)
        faces = self.detector.detect([img])[0] if faces is None else list(faces)
        return self._landmarks68.get().annotate([img], [faces])[0]

    # -- embedding -------------------------------------------------------
    def embed(self, image, faces: Sequence[Face] | None = None) -> list[Face]:
        """Every face in the image (or the given faces) with `embedding` set; raises its ImageError."""
        return self.embed_batch([image], None if faces is None else [faces])[0].unwrap()

    def embed_batch(self, images: Sequence, faces: Sequence[Sequence[Face]] | None = None
                    ) -> list[ImageResult[list[Face]]]:
        """One result per image: every face (or the given faces, one list per image) with its
        embedding, or the error the image met. One detector and one embedder call for the batch."""
        if faces is not None and len(faces) != len(images):
            raise InvalidArgumentError(f"{len(faces)} face lists for {len(images)} images",
                                       code="faces_images_mismatch", faces=len(faces), images=len(images))
        return self._embed(decode_batch(images), faces)

    def embed_stream(self, images: Iterable, *, chunk_size: int = DEFAULT_CHUNK_SIZE
                     ) -> Iterator[ImageResult[list[Face]]]:
        """embed_batch over an iterable of any length, a chunk at a time (see detect_stream)."""
        return self._stream(self._embed, images, chunk_size)

    def _embed(self, decoded: list[ImageResult[np.ndarray]], faces: Sequence[Sequence[Face]] | None = None
               ) -> list[ImageResult[list[Face]]]:
        ok = [k for k, r in enumerate(decoded) if r.ok]
        arrays = [decoded[k].value for k in ok]
        if faces is not None:
            per_image = [list(faces[k]) for k in ok]
        elif arrays:
            per_image = self.detector.detect(arrays)
        else:
            per_image = []
        items = [(img, f) for img, fs in zip(arrays, per_image, strict=True) for f in fs]
        vectors = self.embedder.embed(items) if items else []
        out: list[ImageResult[list[Face]]] = list(decoded)  # failures stay as they are
        n = 0
        for k, fs in zip(ok, per_image, strict=True):
            row = [replace(f, embedding=Embedding(vectors[n + j], self.embedder_name)) for j, f in enumerate(fs)]
            n += len(fs)
            out[k] = with_value(decoded[k], row)
        return out

    def embed_one(self, image, *, largest: bool = False) -> Face:
        """The single face of an image that must show one (an ID photo, a probe).

        Several faces raise ManyFacesError unless `largest` picks the biggest; none raises NoFaceError."""
        return self.embed_one_batch([image], largest=largest)[0].unwrap()

    def embed_one_batch(self, images: Sequence, *, largest: bool = False) -> list[ImageResult[Face]]:
        """One result per image: its single face, embedded, or the error (unreadable, NoFaceError,
        ManyFacesError)."""
        return self._embed_one(decode_batch(images), largest)

    def embed_one_stream(self, images: Iterable, *, largest: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE
                         ) -> Iterator[ImageResult[Face]]:
        """embed_one_batch over an iterable of any length, a chunk at a time (see detect_stream)."""
        return self._stream(lambda decoded: self._embed_one(decoded, largest), images, chunk_size)

    def _embed_one(self, decoded: list[ImageResult[np.ndarray]], largest: bool) -> list[ImageResult[Face]]:
        picked: list[ImageResult] = []
        for r in self._detect(decoded):
            if not r.ok:
                picked.append(r)
                continue
            try:
                picked.append(with_value(r, [pick_one(r.value, largest=largest, name=r.source)]))
            except VultusError as exc:
                picked.append(failed(r, exc))
        arrays = [d if p.ok else failed(d, p.error) for d, p in zip(decoded, picked, strict=True)]
        embedded = self._embed(arrays, [p.value if p.ok else [] for p in picked])
        return [with_value(r, r.value[0]) if r.ok else r for r in embedded]

    # -- attributes ------------------------------------------------------
    def analyze(self, image, faces: Sequence[Face] | None = None, **options) -> list:
        """Age, gender, emotion, head pose and quality of every face (or of the
        given faces): a FaceAnalysis each; raises the image's error. Options: see
        vultus.attributes.analyze.analyze_batch."""
        return self.analyze_batch([image], None if faces is None else [faces], **options)[0].unwrap()

    def analyze_batch(self, images: Sequence, faces: Sequence[Sequence[Face]] | None = None,
                      **options) -> list[ImageResult[list]]:
        """One result per image: a FaceAnalysis per face, or the error the image met."""
        from vultus.attributes.analyze import analyze_batch

        return analyze_batch(self, images, faces, **options)

    def analyze_stream(self, images: Iterable, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                       **options) -> Iterator[ImageResult[list]]:
        """analyze_batch over an iterable of any length, a chunk at a time (see detect_stream)."""
        from vultus.attributes.analyze import analyze_decoded, check_actions

        # Check the options now, not when the first chunk is pulled.
        options["actions"] = check_actions(options.get("actions"))
        return self._stream(lambda decoded: analyze_decoded(self, decoded, None, **options), images, chunk_size)

    # -- liveness --------------------------------------------------------
    def liveness(self, image, faces: Sequence[Face] | None = None, **options) -> list:
        """Is each face (detected if not given) a live person or a presentation attack (a print, a
        screen)? A vultus.liveness.api.Liveness per face. Options: point ("door", "check-in"),
        model, threshold; see vultus.liveness.api.liveness_batch."""
        return self.liveness_batch([image], None if faces is None else [faces], **options)[0].unwrap()

    def liveness_batch(self, images: Sequence, faces: Sequence[Sequence[Face]] | None = None,
                       **options) -> list[ImageResult[list]]:
        """One result per image, in order: a Liveness per face, or the error the image met."""
        if faces is not None and len(faces) != len(images):
            raise InvalidArgumentError(f"{len(faces)} face lists for {len(images)} images",
                                       code="faces_images_mismatch", faces=len(faces), images=len(images))
        return self._liveness(decode_batch(images), faces, options)

    def liveness_stream(self, images: Iterable, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                        **options) -> Iterator[ImageResult[list]]:
        """liveness_batch over an iterable of any length, a chunk at a time (see detect_stream)."""
        return self._stream(lambda decoded: self._liveness(decoded, None, options), images, chunk_size)

    def _liveness(self, decoded: list[ImageResult[np.ndarray]], faces, options: dict) -> list[ImageResult[list]]:
        from vultus.liveness.api import liveness_batch

        ok = [k for k, r in enumerate(decoded) if r.ok]
        given = None if faces is None else [faces[k] for k in ok]
        rows = iter(liveness_batch(self, [decoded[k].value for k in ok], given, **options) if ok else [])
        return [with_value(r, next(rows)) if r.ok else r for r in decoded]

    # -- decisions -------------------------------------------------------
    def operating_point(self, target_fmr: float | None = None) -> OperatingPoint:
        """The calibrated threshold of this engine's embedder for a false-match rate."""
        return operating_point(self.embedder_name, target_fmr)

    def verify(self, a, b, *, target_fmr: float | None = None, largest: bool = False,
               point: OperatingPoint | None = None) -> Verification:
        """Are the faces in images `a` and `b` the same person? Raises the first image's error.

        The threshold is the calibration's for `target_fmr`, or `point` when given
        (e.g. a threshold measured on the user's own data and stored on a gallery
        collection by `vultus calibrate --collection`)."""
        return self.verify_batch([(a, b)], target_fmr=target_fmr, largest=largest, point=point)[0].unwrap()

    def verify_batch(self, pairs: Sequence[tuple], *, target_fmr: float | None = None, largest: bool = False,
                     point: OperatingPoint | None = None) -> list[ImageResult[Verification]]:
        """One result per (a, b) pair: its Verification, or the first error of its two images.

        A pair's ``source`` is ``"A | B"``, its ``index`` the pair's position; width and height are
        not set. Every image is decoded once and the models run once for the whole batch."""
        if point is None:
            point = self.operating_point(target_fmr)
        flat = [img for pair in pairs for img in _pair(pair)]
        faces = self._embed_one(decode_batch(flat), largest)
        out: list[ImageResult[Verification]] = []
        for i in range(len(pairs)):
            ra, rb = faces[2 * i], faces[2 * i + 1]
            label = f"{ra.source} | {rb.source}"
            bad = ra.error or rb.error
            if bad is not None:
                out.append(ImageResult(i, label, error=bad))
                continue
            fa, fb = ra.value, rb.value
            sim = fa.embedding.similarity(fb.embedding)
            out.append(ImageResult(i, label, Verification(
                same=sim >= point.threshold, similarity=sim, threshold=point.threshold, fmr=point.fmr,
                model=self.embedder_name, faces=(fa, fb))))
        return out


def _pair(pair) -> tuple:
    if len(pair) != 2:
        raise InvalidArgumentError(f"a pair to verify has two images, not {len(pair)}", code="bad_pair",
                                   images=len(pair))
    return tuple(pair)


def pick_one(faces: Sequence[Face], *, largest: bool = False, name: str = "image") -> Face:
    if not faces:
        raise NoFaceError(f"{name}: no face found", file=name)
    if len(faces) > 1 and not largest:
        raise ManyFacesError(f"{name}: {len(faces)} faces found where one was expected", file=name,
                             faces=len(faces))
    return max(faces, key=lambda f: f.box.area)


def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities between two stacks of unit vectors."""
    return a @ b.T
