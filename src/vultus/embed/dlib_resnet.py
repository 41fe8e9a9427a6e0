"""dlib's ResNet face recogniser (128-d): dlib cuts the chip, onnxruntime runs the network.

dlib's network was trained on 150x150 chips that dlib cuts from its own 5-point
predictor (eye corners, nose base) with padding 0.25, run on a box from dlib's
HOG detector. We cut that same chip, dlib.get_face_chip from dlib's 5-point
predictor, but run the predictor on a HOG-like box derived from the detector's
own landmarks (HOG_BOX_FROM_LANDMARKS), so faces that HOG misses are not lost.
Chosen on LFW View 1, the protocol's development set, over a similarity warp
of the detector's 5 points onto dlib's chip geometry and over the 68-point
predictor (bench/dlib_alignment.py, bench/results/dlib-alignment.md).

The network runs in onnxruntime, batched, from a graph built at load time
from dlib's own .dat file (vultus.models.dlib_onnx): its output matches dlib's
compute_face_descriptor to float rounding and it runs about 20 times faster
than dlib-bin, which is built without BLAS.

Each face is embedded twice, as cut and mirrored, and the two vectors are
averaged: on LFW this lifted 10-fold accuracy by about a quarter of a point
(measured with the earlier chip, bench/results/lfw.md) for twice the network time.
"""

from __future__ import annotations

import numpy as np

from vultus.embed.base import Embedder
from vultus.models.runtime import Lazy, LazySession

RECOGNISER = "dlib_face_recognition_resnet_model_v1.dat"
PREDICTOR5 = "shape_predictor_5_face_landmarks.dat"

# The box dlib's HOG detector would draw, from the 5 landmarks: centre = landmark
# centroid + (A, B) * s, side = C * s, with s the RMS distance of the landmarks
# from their centroid. Medians over 2,993 LFW View 1 faces where HOG and YuNet
# both found the face (bench/dlib_alignment.py).
HOG_BOX_FROM_LANDMARKS = (-0.186, -0.076, 3.930)

# dlib-resnet-jitter's ten views of each chip (and of its mirror): (shift x, shift y in px, object height
# u, rotation in degrees), drawn once with numpy.random.default_rng(0) from the distributions of
# dlib.jitter_image (the 144 px inner square of the chip scaled by 1/u, u in [0.97, 1), shifted by up
# to 2% of 144 px, rotated by up to 3 degrees), and fixed here so every run gives every face the same
# vector. Chosen on LFW View 1 (bench/results/dlib-alignment.md) by a rule fixed before scoring.
JITTERS = (
    (0.7888993189715767, -1.3260285287201072, 0.9712287959828465, -2.9008341868288254),
    (1.804436577793569, 2.3774721251196773, 0.9881930069152577, 1.3769793659039902),
    (0.25127995084083576, 2.506017161017545, 0.9944674480881048, -2.9835689989791114),
    (2.0586486331443994, -2.6865470862405254, 0.991882366838434, -1.946066276384646),
    (2.091910592735347, 0.23881662863476832, 0.9789883595972162, -0.4638766728140493),
    (-2.7168786942021335, -2.1641283273625116, 0.9901120261966619, 0.8831370694455005),
    (0.6646182421320224, -0.6700172874515513, 0.9999063259743185, 2.8850120326573805),
    (1.0687218306088015, 0.8666454313026217, 0.9906465174498225, -0.6664714561253771),
    (-2.1018441310709113, 1.2757728395179109, 0.985755376131047, -1.138548746646266),
    (-0.0815883331288948, 2.2434499258502414, 0.998011965043528, -0.8532288197455786),
)


def hog_like_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square box dlib's HOG detector would give this face."""
    a, b, c = HOG_BOX_FROM_LANDMARKS
    pts = np.asarray(landmarks, dtype=np.float64)
    centre = pts.mean(axis=0)
    s = float(np.sqrt(((pts - centre) ** 2).sum(axis=1).mean()))
    cx, cy, half = centre[0] + a * s, centre[1] + b * s, c * s / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


def dlib_chip(predictor, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 150x150 chip (padding 0.25, RGB uint8) of one face: `predictor`
    (a dlib.shape_predictor) placed on the HOG-like box of the face's 5 landmarks."""
    import dlib

    image = np.ascontiguousarray(image)
    shape = predictor(image, dlib.rectangle(*hog_like_box(landmarks)))
    return dlib.get_face_chip(image, shape, size=150, padding=0.25)


def jittered(chip: np.ndarray, shift_x: float, shift_y: float, height: float, degrees: float) -> np.ndarray:
    """One view of a 150x150 chip as dlib.jitter_image cuts it: the chip's inner 144 px square
    scaled by 1/height, shifted and rotated about its centre, resampled to 150x150, zeros outside."""
    import cv2

    scale = 144 / height / 150
    a = np.deg2rad(degrees)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([75.0, 75.0])
    m = np.c_[rot, centre + (shift_x, shift_y) - rot @ centre]  # output pixel -> chip pixel
    return cv2.warpAffine(np.ascontiguousarray(chip), m, (150, 150), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class DlibResnetEmbedder(Embedder):
    batch_size = 32

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._predictor = Lazy(self._load_predictor)
        self._session = LazySession(self._network, self.threads)

    def _load_predictor(self):
        import dlib

        return dlib.shape_predictor(str(self.spec.paths()[PREDICTOR5]))

    def _network(self) -> bytes:
        from vultus.models.dlib_onnx import dlib_resnet_onnx

        return dlib_resnet_onnx(self.spec.paths()[RECOGNISER]).SerializeToString()

    def _chips(self, items) -> np.ndarray:
        predictor = self._predictor.get()
        return np.stack([dlib_chip(predictor, img, face.landmarks) for img, face in items])

    def _views(self, chips: np.ndarray) -> list[np.ndarray]:
        """The images the network sees for each chip: the chip and its mirror."""
        return [chips, chips[:, :, ::-1]]

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """dlib's raw 128-d descriptors (not normalised, as compute_face_descriptor returns them) of
        (N, 150, 150, 3) chips, one network run per chip, no extra views."""
        return self._session.run(np.asarray(chips, dtype=np.float32))[0]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unnormalised vectors, one per chip, for (N, 150, 150, 3) dlib chips: the sum of the unit
        vectors of the chip's views (so no view dominates; Embedder.embed renormalises)."""
        views = self._views(chips)
        out = self.descriptors(np.concatenate(views))
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.reshape(len(views), len(chips), -1).sum(axis=0)

    def _embed(self, items) -> np.ndarray:
        return self.embed_chips(self._chips(items))


class DlibResnetJitterEmbedder(DlibResnetEmbedder):
    """dlib-resnet averaged over ten dlib-style jitters of the chip and ten of its mirror image.

    dlib's own answer to "more accurate, slower" (compute_face_descriptor's num_jitters), made
    deterministic: the ten jitters are fixed (JITTERS). Twenty network runs per face instead of two.
    On LFW View 1 it beat plain dlib-resnet on pair accuracy and on TAR at every FMR measured
    (bench/results/dlib-alignment.md), so `fused` uses it. On View 2 only the gain at strict
    thresholds held: TAR at FMR 1e-3 94.94% against 94.17%, 10-fold accuracy 99.02% against
    99.17% (bench/results/lfw.md)."""

    batch_size = 8  # 160 chips per network call

    def _views(self, chips: np.ndarray) -> list[np.ndarray]:
        mirrors = chips[:, :, ::-1]
        return [np.stack([jittered(c, *j) for c in source]) for j in JITTERS for source in (chips, mirrors)]
