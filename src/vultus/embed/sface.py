"""SFace (MobileFaceNet-style, 128-d) in onnxruntime, batched."""

from __future__ import annotations

import numpy as np

from vultus.align import align_batch_112
from vultus.embed.base import Embedder
from vultus.models.onnx_tools import repair
from vultus.models.runtime import LazySession


class SFaceEmbedder(Embedder):
    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._session = LazySession(lambda: repair(self.spec.path()), self.threads)

    def _embed(self, items) -> np.ndarray:
        crops = align_batch_112(items)  # RGB, as OpenCV's FaceRecognizerSF feeds it (swapRB on BGR)
        batch = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        return self._session.run(batch)[0]
