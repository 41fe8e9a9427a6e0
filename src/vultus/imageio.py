"""Loading images from paths, bytes or arrays into RGB uint8 arrays.

Every failure is an ImageError with the file name in its message, so a CLI or
service can report it in one line.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vultus.errors import ImageError

# Pillow's default bomb limit warns at ~89 MP and fails at twice that. We refuse
# plainly above this many pixels instead of letting a decode eat the machine.
MAX_PIXELS = 120_000_000

ImageInput = "str | Path | bytes | np.ndarray | Image.Image"


def _name(source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (and 32-bit integer) greyscale: scale the used range to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return np.repeat((arr * (255.0 / top)).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, as a viewer would show them on a page.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if img.mode == "RGB;16" or (img.mode.startswith("RGB") and img.mode not in ("RGB", "RGBA", "RGBX")):
        return np.asarray(img.convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_image(source) -> np.ndarray:
    """Return an HxWx3 RGB uint8 array with EXIF orientation applied.

    `source` may be a path, the encoded bytes of an image (or a binary stream),
    a PIL image, or an
    array (HxW greyscale, HxWx3 RGB or HxWx4 RGBA; uint8 or uint16).
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(source) or source)
    name = _name(source)
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{name}: no such file")
        if path.is_dir():
            raise ImageError(f"{name}: is a folder, not an image")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "read"):  # an open file or upload stream
        data = source.read()
        if not isinstance(data, bytes):
            raise ImageError(f"{name}: stream returned text, not bytes (open the file in binary mode)")
    else:
        raise ImageError(f"{name}: not an image source (expected a path, bytes, PIL image or array)")
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name}: image too large ({w}x{h}; the limit is {MAX_PIXELS:,} pixels)")
            img.load()
            img = ImageOps.exif_transpose(img) or img
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image Pillow can read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    return _to_rgb(img)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        raise ImageError("<ndarray>: empty array")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _to_rgb(Image.fromarray(arr, "RGBA"))
    raise ImageError(f"<ndarray>: unsupported array shape {arr.shape}")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def list_images(path: str | Path) -> list[Path]:
    """Image files under a folder (recursively, sorted), or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImageError(f"{path}: no such file or folder")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
