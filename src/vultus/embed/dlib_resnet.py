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

    def _embed(self, items) -> np.ndarray:
        predictor = self._predictor.get()
        chips = np.stack([dlib_chip(predictor, img, face.landmarks) for img, face in items])
        both = self._session.run(np.concatenate([chips, chips[:, :, ::-1]]).astype(np.float32))[0]
        n = len(chips)
        # Average unit vectors so neither view dominates; Embedder.embed renormalises.
        both /= np.linalg.norm(both, axis=1, keepdims=True)
        return both[:n] + both[n:]
