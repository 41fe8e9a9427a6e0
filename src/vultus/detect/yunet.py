"""YuNet: a small anchor-free detector with 5 landmarks, run in onnxruntime.

The shipped graph takes 640x640; after onnx_tools.repair it takes any size that
is a multiple of 32, so each image runs at (about) its own size: a 250x250
LFW image costs well under a millisecond.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from vultus.detect.base import Detector, nms
from vultus.models.onnx_tools import repair
from vultus.models.runtime import LazySession
from vultus.types import Box, Face

STRIDES = (8, 16, 32)


class YuNetDetector(Detector):
    min_score = 0.6  # OpenCV's demo uses 0.9; 0.6 keeps hard LFW faces and few false boxes
    nms_iou = 0.3
    max_batch = 16

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self._session = LazySession(lambda: repair(self.spec.path(), spatial_dynamic=True), self.threads)

    def _detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        results: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            groups[(-(-h // 32) * 32, -(-w // 32) * 32)].append(i)
        for (ph, pw), idxs in groups.items():
            for start in range(0, len(idxs), self.max_batch):
                chunk = idxs[start:start + self.max_batch]
                batch = np.zeros((len(chunk), 3, ph, pw), dtype=np.float32)
                for j, i in enumerate(chunk):
                    img = images[i]
                    # RGB -> BGR planes, raw 0-255, padded at the bottom and right.
                    batch[j, :, : img.shape[0], : img.shape[1]] = img[..., ::-1].transpose(2, 0, 1)
                outs = self._session.run(batch)
                for j, i in enumerate(chunk):
                    results[i] = self._decode([o[j] for o in outs], ph, pw, images[i].shape[:2])
        return results

    def _decode(self, outs: list[np.ndarray], ph: int, pw: int, shape: tuple[int, int]) -> list[Face]:
        # Output order: cls_8,16,32, obj_8,16,32, bbox_8,16,32, kps_8,16,32.
        all_boxes, all_scores, all_kps = [], [], []
        for k, stride in enumerate(STRIDES):
            cls, obj, bbox, kps = outs[k][:, 0], outs[3 + k][:, 0], outs[6 + k], outs[9 + k]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.nonzero(score >= self.min_score)[0]
            if keep.size == 0:
                continue
            cols = pw // stride
            r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
            b = bbox[keep]
            cx, cy = (c + b[:, 0]) * stride, (r + b[:, 1]) * stride
            w, h = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
            all_boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            kp = kps[keep].reshape(-1, 5, 2)
            kp = np.stack([(kp[..., 0] + c[:, None]) * stride, (kp[..., 1] + r[:, None]) * stride], axis=2)
            all_kps.append(kp)
            all_scores.append(score[keep])
        if not all_boxes:
            return []
        boxes, scores, kps = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_kps)
        ih, iw = shape
        faces = []
        for i in nms(boxes, scores, self.nms_iou):
            x1, y1, x2, y2 = boxes[i]
            box = Box(float(max(0, x1)), float(max(0, y1)), float(min(iw, x2)), float(min(ih, y2)))
            if box.width < 2 or box.height < 2:
                continue
            faces.append(Face(box=box, score=float(scores[i]), landmarks=kps[i].astype(np.float32),
                              detector=self.name))
        return faces
