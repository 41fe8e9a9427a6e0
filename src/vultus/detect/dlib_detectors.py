"""dlib's HOG (fast, frontal only) and MMOD CNN (slow on CPU, robust) detectors.

Neither gives 5 alignment points, so each face gets dlib's 68 landmarks and
the 5 points are derived from them (eye centres, nose tip, mouth corners): both
therefore run the dlib-68 predictor, a component the registry declares (its
licence, iBUG 300-W terms, is research use only).

dlib's object detectors keep scratch state in the object, so one instance must
not run in two threads at once (dlib's documentation); each detector here holds
a lock around its dlib call, since the model cache shares it between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from vultus.detect.base import Detector
from vultus.landmarks import five_from_68
from vultus.models.cache import get_model
from vultus.models.runtime import Lazy
from vultus.types import Box, Face

# dlib's detectors find no face below ~80 px, so images are upsampled once, as
# face_recognition does by default (its documented boxes are reproduced exactly).
# Large images were already shrunk to max_side, which bounds the cost.
UPSAMPLE = 1


class _DlibDetector(Detector):
    min_score = -0.2  # dlib's scores are margins, not probabilities

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._detector = Lazy(self._load)
        self._detector_lock = threading.Lock()
        self._landmarks = Lazy(lambda: get_model("dlib-68", task="landmarks"))

    def _load(self):
        raise NotImplementedError

    def _rects(self, image: np.ndarray, upsample: int) -> list[tuple[object, float]]:
        raise NotImplementedError

    def _detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        out = []
        for img in images:
            img = np.ascontiguousarray(img)
            found = [(r, s) for r, s in self._rects(img, UPSAMPLE) if s >= self.min_score]
            boxes = [Box(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1))
                     for r, _ in found]
            pts68 = self._landmarks.get().predict(img, boxes)
            out.append([Face(box=b, score=float(s), landmarks=five_from_68(p), detector=self.name, landmarks68=p)
                        for b, (_, s), p in zip(boxes, found, pts68, strict=True)])
        return out


class HogDetector(_DlibDetector):
    def _load(self):
        import dlib

        return dlib.get_frontal_face_detector()

    def _rects(self, image, upsample):
        with self._detector_lock:
            rects, scores, _ = self._detector.get().run(image, upsample, self.min_score)
        return list(zip(rects, scores, strict=True))


class MmodDetector(_DlibDetector):
    min_score = 0.0

    def _load(self):
        import dlib

        return dlib.cnn_face_detection_model_v1(str(self.spec.paths()["mmod_human_face_detector.dat"]))

    def _rects(self, image, upsample):
        with self._detector_lock:
            found = self._detector.get()(image, upsample)
        return [(d.rect, d.confidence) for d in found]
