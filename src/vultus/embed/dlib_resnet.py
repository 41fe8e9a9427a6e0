"""dlib's ResNet-34 face recogniser (128-d), batched through dlib.

Alignment is dlib's own: its 5-point predictor is run on the detector's box
(YuNet by default, which finds faces dlib's HOG misses) and dlib.get_face_chip
cuts the 150x150 chip the network was trained on.
"""

from __future__ import annotations

import numpy as np

from vultus.embed.base import Embedder
from vultus.landmarks import dlib_rect
from vultus.models.runtime import Lazy


class DlibResnetEmbedder(Embedder):
    batch_size = 16

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._models = Lazy(self._load)

    def _load(self):
        import dlib

        paths = self.spec.paths()
        return (dlib.shape_predictor(str(paths["shape_predictor_5_face_landmarks.dat"])),
                dlib.face_recognition_model_v1(str(paths["dlib_face_recognition_resnet_model_v1.dat"])))

    def chips(self, items) -> list[np.ndarray]:
        import dlib

        predictor, _ = self._models.get()
        out = []
        for img, face in items:
            img = np.ascontiguousarray(img)
            shape = predictor(img, dlib_rect(face.box))
            out.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
        return out

    def _embed(self, items) -> np.ndarray:
        _, net = self._models.get()
        return np.array(net.compute_face_descriptor(self.chips(items)), dtype=np.float32)
