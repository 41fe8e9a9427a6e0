"""The differentiable half of cloaking: crops, embedders, image transforms and SSIM in PyTorch.

Everything here works on one face's region of interest (ROI), an (1, 3, H, W) float tensor of
RGB pixel values 0-255, so a gradient step costs the same for a 250 px photo and a 24 MP one.
The embedders see exactly what vultus's onnxruntime pipeline feeds them:

* sface: the 112x112 ArcFace-template crop, `cv2.warpAffine` with bilinear sampling and a
  replicated border (vultus.align.align_112), here `grid_sample` at the same sampling points;
* dlib-resnet: dlib's 150x150 chip, `dlib.get_face_chip` from dlib's 5-point predictor (bilinear,
  zeros outside the image), and its mirror image, here `grid_sample` at the points dlib's
  chip_details give.

The warps are fixed per face (computed once from the clean image's landmarks); the gradient flows
through the sampling to the pixels. Imported only by privacy.cloak, once torch is known to be
installed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vultus.privacy.torch_onnx import OnnxModule

_NETWORKS: dict[str, torch.nn.Module] = {}
_LOCK = threading.Lock()


def network(name: str) -> torch.nn.Module:
    """The torch copy of a shipped embedder's network, built from the same ONNX graph vultus runs in
    onnxruntime, once per process. Input: sface (N, 3, 112, 112) RGB 0-255; dlib-resnet
    (N, 150, 150, 3) RGB 0-255 (the graph's own layout). Output: raw (unnormalised) vectors."""
    with _LOCK:
        if name not in _NETWORKS:
            import onnx

            from vultus.models.cache import get_model

            embedder = get_model(name, task="embed")
            if name == "sface":
                from vultus.models.onnx_tools import repair

                graph = onnx.load_from_string(repair(embedder.spec.path()))
            elif name == "dlib-resnet":
                from vultus.embed.dlib_resnet import RECOGNISER
                from vultus.models.dlib_onnx import dlib_resnet_onnx

                graph = dlib_resnet_onnx(embedder.spec.paths()[RECOGNISER])
            else:
                raise ValueError(name)
            module = OnnxModule(graph).eval()
            for p in module.buffers():
                p.requires_grad_(False)
            _NETWORKS[name] = module
        return _NETWORKS[name]


# -- warps --------------------------------------------------------------------------
def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([np.asarray(m, np.float64), [0, 0, 1]])
    return np.linalg.inv(full)[:2]


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b for 2x3 affine maps (b first)."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def sface_crop_to_image(landmarks: np.ndarray) -> np.ndarray:
    """2x3 map from 112x112 crop pixels to image pixels, as align_112 samples them."""
    from vultus.align import ARCFACE_112, similarity_transform

    return invert_affine(similarity_transform(np.asarray(landmarks, np.float32), ARCFACE_112))


def dlib_chip_to_image(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """2x3 map from dlib's 150x150 chip pixels to image pixels: dlib's 5-point predictor on the HOG-like
    box (embed.dlib_resnet.dlib_chip), then the rotated rectangle of dlib.get_face_chip_details, mapped
    the way dlib's extract_image_chip maps it (its corners onto the chip's corners)."""
    import cv2
    import dlib

    from vultus.embed.dlib_resnet import PREDICTOR5, hog_like_box
    from vultus.models.cache import get_model

    predictor = _predictor(get_model("dlib-resnet", task="embed").spec.paths()[PREDICTOR5])
    shape = predictor(np.ascontiguousarray(rgb), dlib.rectangle(*hog_like_box(landmarks)))
    det = dlib.get_face_chip_details(shape, 150, 0.25)
    r = det.rect
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(det.angle), np.sin(det.angle)
    rot = np.array([[c, -s], [s, c]])
    corners = [rot @ (np.array(p) - centre) + centre for p in
               ((r.left(), r.top()), (r.right(), r.top()), (r.right(), r.bottom()))]
    chip = [(0, 0), (det.cols - 1, 0), (det.cols - 1, det.rows - 1)]
    return cv2.getAffineTransform(np.float32(chip), np.float32(corners)).astype(np.float64)


_PREDICTORS: dict[str, object] = {}


def _predictor(path):
    import dlib

    with _LOCK:
        key = str(path)
        if key not in _PREDICTORS:
            _PREDICTORS[key] = dlib.shape_predictor(key)
        return _PREDICTORS[key]


def mirror_map(width: int) -> np.ndarray:
    """x -> width - 1 - x: the image flipped left-right."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def sface_mirror_to_image(landmarks: np.ndarray, width: int) -> np.ndarray:
    """The crop sface-flip's mirror view samples (vultus.align.mirrored, then align_112), as a map
    from crop pixels to image pixels."""
    pts = np.asarray(landmarks, np.float64).copy()
    pts[:, 0] = (width - 1) - pts[:, 0]
    pts = pts[[1, 0, 2, 4, 3]]
    return compose(mirror_map(width), sface_crop_to_image(pts))


def jitter_map(size: int, rng: np.random.Generator, *, shift: float, scale: float, degrees: float) -> np.ndarray:
    """A small random similarity of crop pixels about the crop's centre: the landmarks of a re-detected face
    never land exactly where the clean image's did."""
    a = np.deg2rad(rng.uniform(-degrees, degrees))
    k = 1 + rng.uniform(-scale, scale)
    t = rng.uniform(-shift, shift, 2) * size
    rot = k * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([(size - 1) / 2] * 2)
    return np.c_[rot, centre + t - rot @ centre]


def warp(roi: torch.Tensor, crop_to_roi: np.ndarray, size: int, padding: str) -> torch.Tensor:
    """(K, 3, size, size) bilinear samples of roi (1, 3, H, W) at crop_to_roi (K, 2, 3) maps of crop pixels to
    ROI pixels (align_corners: pixel centres at integer coordinates, as cv2 and dlib sample)."""
    _, _, h, w = roi.shape
    k = len(crop_to_roi)
    v, u = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    ones = torch.ones_like(u)
    pts = torch.stack([u, v, ones], dim=-1).reshape(-1, 3)  # (S*S, 3)
    m = torch.from_numpy(np.asarray(crop_to_roi, np.float64))  # (K, 2, 3)
    xy = torch.einsum("kij,pj->kpi", m, pts)  # (K, S*S, 2)
    norm = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64)
    grid = (xy * norm - 1.0).reshape(k, size, size, 2).float()
    return F.grid_sample(roi.expand(k, -1, -1, -1), grid, mode="bilinear", padding_mode=padding,
                         align_corners=True)


@dataclass
class FaceGeometry:
    """One face's fixed crops, in ROI pixel coordinates."""

    sface: np.ndarray  # (2, 3): the sface crop
    sface_mirror: np.ndarray  # (2, 3): sface-flip's mirror view
    dlib: np.ndarray  # (2, 3): dlib's chip


def embed(roi: torch.Tensor, geometry: FaceGeometry, names, *, jitters: dict[str, np.ndarray] | None = None,
          mirror_sface: bool = False) -> dict[str, torch.Tensor]:
    """Unit vectors per embedder name for the face in `roi`. dlib-resnet, as vultus runs it, is the mean of
    the chip's and its mirror's unit vectors; sface is the crop alone (with mirror_sface, averaged with
    sface-flip's mirror view, so a search also covers sface-flip and fused). `jitters` (per name, 2x3 crop
    maps) moves each crop slightly, for the random transforms of a search."""
    out = {}
    for name in names:
        j = None if jitters is None else jitters.get(name)
        if name == "sface":
            maps = [geometry.sface] + ([geometry.sface_mirror] if mirror_sface else [])
            if j is not None:
                maps = [compose(m, j) for m in maps]
            crops = warp(roi, np.stack(maps), 112, "border")
            v = F.normalize(network("sface")(crops), dim=1)
            out[name] = F.normalize(v.sum(0, keepdim=True), dim=1)[0]
        elif name == "dlib-resnet":
            m = geometry.dlib if j is None else compose(geometry.dlib, j)
            chip = warp(roi, m[None], 150, "zeros")
            chips = torch.cat([chip, chip.flip(-1)]).permute(0, 2, 3, 1)  # NHWC, as the graph takes it
            v = F.normalize(network("dlib-resnet")(chips), dim=1)
            out[name] = F.normalize(v.sum(0, keepdim=True), dim=1)[0]
        else:
            raise ValueError(name)
    return out


# -- random transforms (EOT) ----------------------------------------------------------
_LUMA_Q = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_CHROMA_Q = np.full((8, 8), 99, np.float32)
_CHROMA_Q[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _dct_matrix() -> torch.Tensor:
    d = np.zeros((8, 8), np.float64)
    for k in range(8):
        for n in range(8):
            d[k, n] = (np.sqrt(1 / 8) if k == 0 else np.sqrt(2 / 8)) * np.cos(np.pi * (2 * n + 1) * k / 16)
    return torch.from_numpy(d).float()


_DCT = _dct_matrix()


def _soft_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) with a usable gradient (Shin & Song 2017): round(x) + (x - round(x))^3."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _blocks_quantised(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """8x8 DCT, quantisation by `table`, dequantisation and inverse DCT of (1, 1, H, W), H and W multiples of 8."""
    _, _, h, w = plane.shape
    b = plane.reshape(h // 8, 8, w // 8, 8).permute(0, 2, 1, 3)  # (bh, bw, 8, 8)
    coef = _DCT @ (b - 128.0) @ _DCT.T
    coef = _soft_round(coef / table) * table
    back = _DCT.T @ coef @ _DCT + 128.0
    return back.permute(0, 2, 1, 3).reshape(1, 1, h, w)


def jpeg_like(x: torch.Tensor, quality: float) -> torch.Tensor:
    """A differentiable JPEG round trip of (1, 3, H, W) RGB 0-255 (its top left corner on the image's own 16 px
    grid, so the blocks fall where an encoder's do): YCbCr, 4:2:0 chroma, 8x8 DCT quantised with the IJG tables
    at `quality`."""
    h0, w0 = x.shape[2:]
    x = F.pad(x, (0, -w0 % 16, 0, -h0 % 16), mode="replicate")  # an encoder pads the last blocks the same way
    q = float(np.clip(quality, 1, 100))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    luma = torch.from_numpy(np.clip(np.floor((_LUMA_Q * scale + 50) / 100), 1, 255))
    chroma = torch.from_numpy(np.clip(np.floor((_CHROMA_Q * scale + 50) / 100), 1, 255))
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    y = _blocks_quantised(y, luma)
    h, w = x.shape[2:]
    planes = []
    for c in (cb, cr):
        small = F.avg_pool2d(c, 2)
        small = _blocks_quantised(small, chroma)
        planes.append(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))
    cb, cr = planes
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return torch.cat([r, g, b], dim=1)[:, :, :h0, :w0]


def resize_round_trip(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Shrunk by `factor` (antialiased, as an upload pipeline would) and scaled back up."""
    h, w = x.shape[2:]
    small = F.interpolate(x, size=(max(8, round(h * factor)), max(8, round(w * factor))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def random_view(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One random transform of the search: sometimes a downscale round trip (0.45-1x), sometimes a JPEG round
    trip (quality 55-95, most often: re-encoding is what every upload does), sometimes both, sometimes neither;
    values clipped to the pixel range."""
    if rng.random() < 0.5:
        x = resize_round_trip(x, rng.uniform(0.45, 1.0))
    if rng.random() < 0.75:
        x = jpeg_like(x, rng.uniform(55, 95))
    return x.clamp(0, 255)


# -- image quality ----------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32) - size // 2) ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


_WINDOW = _gaussian_window()


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, range 255) of two
    (1, 3, H, W) images, averaged over the colour channels: (H, W), same size (reflect-padded)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(t):
        return F.conv2d(F.pad(t, (5, 5, 5, 5), mode="reflect"), _WINDOW, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return m.mean(dim=1)[0]
