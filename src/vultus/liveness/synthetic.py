"""Synthetic presentation attacks made from still photos, to test and calibrate the video layer.

A printed photo held up to a camera moves as one rigid plane: what the camera
sees is the photo under a homography that changes from frame to frame as the
hand drifts and tilts. `photo_moved_as_plane` makes such a clip from any still
image: the photo's four corners follow a damped random walk (a shared drift of
the whole print plus each corner's own jitter, which tilts it), and each frame
is the photo warped onto those corners over a dark background.

It is deliberately easy for the passive model (a sharp digital photo, no paper
texture, no border or fingers): the clip is caught, if at all, by its motion.
tests/test_liveness.py and bench/liveness_video.py use it.
"""

from __future__ import annotations

import cv2
import numpy as np


def photo_moved_as_plane(photo: np.ndarray, seed: int, n: int = 45, size: tuple[int, int] = (640, 480)
                         ) -> list[np.ndarray]:
    """`n` frames (width, height = `size`) of `photo` moved as one plane by a random homography sequence."""
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    width, height = size
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    base = np.float32([[width * .2, height * .1], [width * .8, height * .1], [width * .8, height * .9],
                       [width * .2, height * .9]])
    drift, velocity = np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)
    frames = []
    for _ in range(n):
        velocity = 0.8 * velocity + rng.normal(0, 1.0, (4, 2)).astype(np.float32) \
            + rng.normal(0, 2.0, (1, 2)).astype(np.float32)
        drift += velocity
        m = cv2.getPerspectiveTransform(src, base + drift)
        frames.append(cv2.warpPerspective(photo, m, size, borderValue=(40, 40, 40)))
    return frames
