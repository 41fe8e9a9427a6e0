"""Image cues of a presentation attack that the MiniFASNet pair does not look at directly.

Each is computed on a face's crops and returns one number; the fusion model
(vultus.liveness.fusion) weighs them together with the two networks' outputs.

- moire: a screen re-photographed shows a periodic grid (moiré): energy in
  isolated peaks of the high-frequency spectrum of the face, relative to the
  smooth spectrum around them.
- high_frequency: the share of spectral energy at high frequencies; a print or
  screen loses fine skin texture (lower), while halftone dots add some back.
- specular: the share of near-white, unsaturated pixels on the face (glare on
  glossy paper or glass).
- saturation, chroma_spread: colour gamut; prints and screens compress it.
- blur: log variance of the Laplacian of the face (a re-captured face is softer).
- border: straight edges in the wide (4.0x) crop, outside the face: a photo's
  border, a phone's bezel.
"""

from __future__ import annotations

import cv2
import numpy as np

CUES = ("moire", "high_frequency", "specular", "saturation", "chroma_spread", "blur", "border")
FACE_SIDE = 128


def face_crop(bgr: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    h, w = bgr.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return np.zeros((FACE_SIDE, FACE_SIDE, 3), np.uint8)
    return cv2.resize(bgr[y1:y2, x1:x2], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)


def spectrum_cues(grey: np.ndarray) -> tuple[float, float]:
    """(moire, high_frequency) of a square grey face crop."""
    g = grey.astype(np.float32)
    g = (g - g.mean()) * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1]))
    mag = np.abs(np.fft.fftshift(np.fft.fft2(g)))
    n = g.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.hypot(yy, xx) / (n / 2)
    total = mag[r > 0.05].sum() + 1e-9
    high_band = (r > 0.5) & (r < 1.0)
    high_frequency = float(mag[high_band].sum() / total)
    # Peaks: how far the spectrum stands above its own local median in the mid-high band.
    log_mag = np.log1p(mag)
    local = cv2.medianBlur(log_mag.astype(np.float32), 5)
    band = (r > 0.25) & (r < 1.0)
    excess = (log_mag - local)[band]
    moire = float(np.percentile(excess, 99.5))
    return moire, high_frequency


def face_cues(bgr: np.ndarray, box: tuple[int, int, int, int], wide: np.ndarray) -> np.ndarray:
    """The CUES of one face: `box` its (left, top, width, height) in the BGR image, `wide` its 4.0x patch."""
    x, y, w, h = box
    face = face_crop(bgr, x, y, x + w, y + h)
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    moire, high = spectrum_cues(grey)
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    s, v = hsv[..., 1].astype(np.float32) / 255, hsv[..., 2].astype(np.float32) / 255
    specular = float(((v > 0.9) & (s < 0.15)).mean())
    ycc = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    chroma = float(np.hypot(ycc[..., 1].std(), ycc[..., 2].std()))
    blur = float(np.log1p(cv2.Laplacian(grey, cv2.CV_32F).var()))
    border = border_cue(wide)
    return np.array([moire, high, specular, float(s.mean()), chroma, blur, border], dtype=np.float64)


def border_cue(wide: np.ndarray) -> float:
    """Length of long straight edges in the wide patch outside its central (face) part, as a share of its side."""
    grey = cv2.cvtColor(wide, cv2.COLOR_BGR2GRAY) if wide.ndim == 3 else wide
    big = cv2.resize(grey, (160, 160), interpolation=cv2.INTER_LINEAR)
    edges = cv2.Canny(big, 60, 150)
    edges[48:112, 48:112] = 0  # the face itself (the 4.0x patch holds the box in its middle quarter)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=30, minLineLength=40, maxLineGap=4)
    if lines is None:
        return 0.0
    seg = np.asarray(lines).reshape(-1, 4).astype(np.float64)  # OpenCV versions differ in the array's shape
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]).sum()
    return float(min(length / 160.0, 10.0))
