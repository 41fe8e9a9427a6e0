"""dlib's ResNet-34 face recogniser (128-d), batched through dlib.

dlib's network was trained on 150x150 chips that dlib cuts from its own 5-point
predictor (eye corners, nose base) with padding 0.25. We cut the same chip
geometry from the detector's own 5 landmarks instead: DLIB_CHIP_150 is where
YuNet's points land, on average, in dlib's chip (measured on 300 LFW faces:
a warp to these points reproduces dlib.get_face_chip to ~4 grey levels). The
detector's landmarks are more robust than dlib's predictor run on a box it was
not trained on, and faces dlib's HOG misses are not lost.
"""

from __future__ import annotations

import cv2
import numpy as np

from vultus.align import similarity_transform
from vultus.embed.base import Embedder
from vultus.models.runtime import Lazy

DLIB_CHIP_150 = np.array(
    [[47.743, 45.429], [103.736, 45.791], [74.981, 77.487], [51.576, 102.406], [99.381, 103.304]], dtype=np.float32
)


def dlib_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    m = similarity_transform(landmarks, DLIB_CHIP_150)
    return cv2.warpAffine(image, m, (150, 150), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class DlibResnetEmbedder(Embedder):
    batch_size = 16

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._net = Lazy(self._load)

    def _load(self):
        import dlib

        return dlib.face_recognition_model_v1(str(self.spec.paths()["dlib_face_recognition_resnet_model_v1.dat"]))

    def _embed(self, items) -> np.ndarray:
        chips = [dlib_chip(img, face.landmarks) for img, face in items]
        return np.array(self._net.get().compute_face_descriptor(chips), dtype=np.float32)
