"""Loading images from paths, bytes or arrays into RGB uint8 arrays, safely.

Strangers' files are read here, so nothing in this module may hang or eat the
machine:

- only regular files are read: a FIFO, a device (``/dev/zero``), a socket or a
  folder is refused by its type, found with ``os.stat`` before it is opened, and
  the file is opened non-blocking and checked again, so one swapped in between
  cannot block the open either;
- at most ``max_bytes + 1`` bytes are read, so a file larger than the cap, or
  one that grows while it is read, is refused without reading it all;
- the decoded size is checked against one pixel limit from the header, before
  anything is decoded; JPEGs wanted at a reduced size (``max_side``) are decoded
  at that size by the JPEG decoder itself, and the limit applies to the pixels
  actually decoded.

Every failure is an ImageError with the file name in its message and a code
(file_not_found, not_a_regular_file, file_too_large, empty_file, not_an_image,
corrupt_image, image_too_large, unreadable_file) with the facts in its data.

Folders are scanned by ``scan_images``: every regular file whose name Pillow
registers as a format it reads, and a list of everything else it skipped and
why, decided from names and ``os.stat`` alone (no decoding).
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vultus.errors import ImageError, InvalidArgumentError

#: The most pixels vultus decodes from one image, unless the caller says
#: otherwise (``max_pixels=``, or the environment variable below). 50 MP holds a
#: 48 MP phone photo; decoding one costs about 0.5 GB. Pillow's own bomb warning
#: (89.5 MP) is silenced in favour of this limit; Pillow still refuses outright
#: above twice that (179 MP) whatever the limit says.
MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "VULTUS_MAX_PIXELS"

#: The largest file read, in bytes (``max_bytes=``, or the environment variable below).
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_FILE_BYTES_ENV = "VULTUS_MAX_FILE_BYTES"

# Formats Pillow could open that are never read here: decoding EPS/PostScript
# runs Ghostscript, an interpreter of programs, on the file.
REFUSED_FORMATS = frozenset({"EPS"})
# Formats Pillow opens through another format's opener (MPO through JPEG's), so
# they have no entry of their own in Image.OPEN.
_OPENED_VIA = {"MPO": "JPEG"}

ImageInput = "str | Path | bytes | np.ndarray | Image.Image"

# Image.open's decompression-bomb warning is silenced with warnings.catch_warnings,
# which swaps process-wide state; the lock keeps two threads from interleaving it.
# Only the header parse runs under it, never a decode.
_OPEN_LOCK = threading.Lock()


# -- limits --------------------------------------------------------------------
def _limit(given: int | None, env: str, default: int, what: str) -> int:
    if given is not None:
        value, origin = given, what
    else:
        raw = os.environ.get(env, "").strip().replace("_", "")
        if not raw:
            return default
        try:
            value, origin = int(raw), env
        except ValueError:
            raise InvalidArgumentError(f"{env} must be a whole number (got {raw!r})", code="invalid_argument",
                                       name=env, value=raw) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{origin} must be a positive whole number (got {value!r})",
                                   code="invalid_argument", name=origin, value=value)
    return value


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: `max_pixels`, else $VULTUS_MAX_PIXELS, else MAX_PIXELS."""
    return _limit(max_pixels, MAX_PIXELS_ENV, MAX_PIXELS, "max_pixels")


def file_size_limit(max_bytes: int | None = None) -> int:
    """The file size cap in force: `max_bytes`, else $VULTUS_MAX_FILE_BYTES, else MAX_FILE_BYTES."""
    return _limit(max_bytes, MAX_FILE_BYTES_ENV, MAX_FILE_BYTES, "max_bytes")


# -- files -----------------------------------------------------------------------
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file"))


def file_kind(mode: int) -> str:
    """What a stat mode is, in words: 'a folder', 'a FIFO (named pipe)', ..."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _stat_error(name: str, exc: OSError) -> ImageError:
    if exc.errno == errno.ENOENT:
        if os.path.islink(name):
            return ImageError(f"{name}: broken symbolic link (its target does not exist)", code="file_not_found",
                              file=name)
        return ImageError(f"{name}: no such file", code="file_not_found", file=name)
    if exc.errno == errno.ELOOP:
        return ImageError(f"{name}: symbolic link loop", code="not_a_regular_file", file=name,
                          kind="a symbolic link loop")
    if exc.errno == errno.ENOTDIR:
        return ImageError(f"{name}: no such file (a part of the path is not a folder)", code="file_not_found",
                          file=name)
    return ImageError(f"{name}: cannot read ({exc.strerror or exc})", code="unreadable_file", file=name,
                      reason=exc.strerror or str(exc))


def _check_stat(name: str, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = file_kind(st.st_mode)
        raise ImageError(f"{name}: is {kind}, not an image file", code="not_a_regular_file", file=name, kind=kind)
    if st.st_size > limit:
        raise ImageError(f"{name}: file too large ({st.st_size:,} bytes; the limit is {limit:,})",
                         code="file_too_large", file=name, size=st.st_size, limit=limit)


def check_regular_file(path: str | Path, *, max_bytes: int | None = None) -> os.stat_result:
    """Stat `path` (following symbolic links) without opening it; raise ImageError
    unless it is a regular file of at most the size cap."""
    name = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _stat_error(name, exc) from exc
    _check_stat(name, st, file_size_limit(max_bytes))
    return st


def read_file_bytes(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (the cap in force by
    default), or ImageError. Never blocks on a FIFO, never reads a device."""
    name = str(path)
    limit = file_size_limit(max_bytes)
    check_regular_file(path, max_bytes=limit)
    # O_NONBLOCK: if a FIFO was swapped in after the stat, opening it must not wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _stat_error(name, exc) from exc
    try:
        fh = os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        raise _stat_error(name, exc) from exc
    with fh:
        try:
            _check_stat(name, os.fstat(fh.fileno()), limit)
            data = fh.read(limit + 1)  # one byte more than allowed tells a file that grew past the cap
        except OSError as exc:
            raise _stat_error(name, exc) from exc
    if len(data) > limit:
        raise ImageError(f"{name}: file too large (more than {limit:,} bytes; it grew while being read)",
                         code="file_too_large", file=name, size=len(data), limit=limit)
    if not data:
        raise ImageError(f"{name}: empty file", code="empty_file", file=name)
    return data


# -- decoding --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image as decoded: `pixels` (HxWx3 RGB uint8, upright) and the full
    image's upright size. With `max_side`, `pixels` may be smaller than the
    full image; `scale` (decoded / full, at most 1) maps coordinates back."""

    pixels: np.ndarray
    width: int
    height: int

    @property
    def scale(self) -> float:
        return self.pixels.shape[1] / self.width if self.width else 1.0


def _name(source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
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
    return np.asarray(img.convert("RGB"))


def readable_formats() -> list[str]:
    """Pillow formats this module opens (every one Pillow registers, but EPS)."""
    Image.init()
    return [f for f in Image.OPEN if f not in REFUSED_FORMATS]


def image_suffixes() -> frozenset[str]:
    """File name suffixes (lower case, with the dot) of the formats Pillow reads,
    from Pillow's registry: a plugin registered later (HEIF...) adds its own."""
    readable = set(readable_formats())
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in readable or _OPENED_VIA.get(fmt) in readable)


def _too_large(name: str, w: int, h: int, limit: int, full: tuple[int, int] | None = None) -> ImageError:
    at = f" at the least size it decodes to, of {full[0]}x{full[1]}" if full and full != (w, h) else ""
    return ImageError(f"{name}: image too large ({w}x{h} = {w * h:,} pixels{at}; the limit is {limit:,})",
                      code="image_too_large", file=name, width=w, height=h, pixels=w * h, limit=limit)


def decode_image(source, *, max_pixels: int | None = None, max_side: int | None = None,
                 max_bytes: int | None = None) -> DecodedImage:
    """Decode `source` (see load_image) and say how large the full image is.

    `max_side` asks for the image no smaller than that on its longer side and
    allows less than full resolution: a JPEG is then decoded at 1/2, 1/4 or 1/8
    of its size by the decoder itself (no full-size buffer), other formats are
    shrunk by a whole factor after decoding. `max_pixels` limits the pixels
    decoded (after that reduction), checked from the header before decoding."""
    if isinstance(source, np.ndarray):
        arr = _array_to_rgb(source)
        return DecodedImage(arr, arr.shape[1], arr.shape[0])
    limit = pixel_limit(max_pixels)
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise InvalidArgumentError(f"max_side must be a positive whole number (got {max_side!r})",
                                   name="max_side", value=max_side)
    if isinstance(source, Image.Image):
        name = _name(source)
        w, h = source.size
        if w * h > limit:
            raise _too_large(name, w, h, limit)
        arr = _to_rgb(ImageOps.exif_transpose(source) or source)
        return DecodedImage(arr, arr.shape[1], arr.shape[0])
    name = _name(source)
    if isinstance(source, str | Path):
        data = read_file_bytes(source, max_bytes=max_bytes)
    else:
        cap = file_size_limit(max_bytes)
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
        elif hasattr(source, "read"):  # an open file or upload stream
            data = source.read(cap + 1)
            if not isinstance(data, bytes):
                raise ImageError(f"{name}: stream returned text, not bytes (open the file in binary mode)",
                                 code="not_an_image", file=name)
        else:
            raise ImageError(f"{name}: not an image source (expected a path, bytes, PIL image or array)",
                             code="not_an_image", file=name)
        if len(data) > cap:
            raise ImageError(f"{name}: too large (more than {cap:,} bytes)", code="file_too_large", file=name,
                             size=len(data), limit=cap)
        if not data:
            raise ImageError(f"{name}: empty file", code="empty_file", file=name)
    return _decode(data, name, limit, max_side)


def _decode(data: bytes, name: str, limit: int, max_side: int | None) -> DecodedImage:
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # vultus's own limit, checked below, is the one in force.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=readable_formats())
        full_w, full_h = img.size
        if max_side and max(full_w, full_h) > max_side and img.format in ("JPEG", "MPO"):
            k = max_side / max(full_w, full_h)
            # The decoder picks the largest of 1/2, 1/4, 1/8 that stays at least this size.
            img.draft(img.mode, (max(1, math.ceil(full_w * k)), max(1, math.ceil(full_h * k))))
        w, h = img.size
        if w * h > limit:
            raise _too_large(name, w, h, limit, (full_w, full_h))
        img.load()
        if max_side and max(img.size) >= 2 * max_side:
            with contextlib.suppress(ValueError):  # a mode reduce() does not take: keep the full size
                img = img.reduce(max(img.size) // max_side)
        before = img.size
        img = ImageOps.exif_transpose(img) or img
        if img.size != before:  # rotated by a quarter turn: so is the full size
            full_w, full_h = full_h, full_w
        pixels = _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image Pillow can read", code="not_an_image", file=name) from exc
    except Image.DecompressionBombError as exc:
        pillow = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(f"{name}: image too large (more than {pillow:,} pixels, which Pillow refuses; the limit "
                         f"is {limit:,})", code="image_too_large", file=name, limit=min(limit, pillow)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})", code="corrupt_image", file=name,
                         reason=str(exc)) from exc
    return DecodedImage(pixels, full_w, full_h)


def load_image(source, *, max_pixels: int | None = None, max_side: int | None = None,
               max_bytes: int | None = None) -> np.ndarray:
    """Return an HxWx3 RGB uint8 array with EXIF orientation applied.

    `source` may be a path (a regular file; anything else is refused by its
    type), the encoded bytes of an image (or a binary stream), a PIL image, or an
    array (HxW greyscale, HxWx3 RGB or HxWx4 RGBA; uint8 or uint16).

    Limits (each defaults to its module setting, overridable by environment):
    `max_pixels` decoded pixels (MAX_PIXELS, $VULTUS_MAX_PIXELS), `max_bytes`
    read from a file or stream (MAX_FILE_BYTES, $VULTUS_MAX_FILE_BYTES).
    `max_side` allows a reduced decode no smaller than that on the longer side
    (see decode_image, which also tells the scale)."""
    return decode_image(source, max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes).pixels


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        raise ImageError("<ndarray>: empty array", code="empty_file", file="<ndarray>")
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
    raise ImageError(f"<ndarray>: unsupported array shape {arr.shape}", code="not_an_image", file="<ndarray>",
                     shape=list(arr.shape))


# -- folders ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SkippedFile:
    """An entry of a scanned folder that is not read, and why.

    code: not_a_regular_file (FIFO, device, socket, symbolic link loop, a folder
    named like an image), not_an_image_name (a regular file whose name Pillow
    does not register), file_not_found (a broken symbolic link), unreadable_file."""

    path: Path
    code: str
    reason: str
    #: The name says image (a Pillow suffix): the user probably meant it to be read.
    named_like_image: bool = False

    def message(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "code": self.code, "reason": self.reason,
                "named_like_image": self.named_like_image}


@dataclass(frozen=True, slots=True)
class ImageScan:
    """What a path holds: the images to read (sorted) and what was skipped."""

    root: Path
    images: list[Path]
    skipped: list[SkippedFile]


def _skip(path: Path, code: str, reason: str, suffixes: frozenset[str]) -> SkippedFile:
    return SkippedFile(path, code, reason, path.suffix.lower() in suffixes)


def _entry(path: Path, suffixes: frozenset[str]) -> tuple[Path | SkippedFile, os.stat_result | None]:
    """Classify one folder entry by its name and os.stat (following links)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        err = _stat_error(str(path), exc)
        reason = err.message.removeprefix(f"{path}: ")
        return _skip(path, err.code, reason, suffixes), None
    suffix = path.suffix.lower()
    if stat.S_ISDIR(st.st_mode):
        if suffix in suffixes:
            return _skip(path, "not_a_regular_file", "a folder named like an image (not searched)", suffixes), None
        return path, st
    if not stat.S_ISREG(st.st_mode):
        return _skip(path, "not_a_regular_file", f"is {file_kind(st.st_mode)}, not an image file", suffixes), None
    if suffix in suffixes:
        return path, st
    if suffix in {".eps", ".ps"}:
        return _skip(path, "not_an_image_name", "PostScript is not read (decoding it runs Ghostscript)",
                     suffixes), None
    what = f"'{suffix}'" if suffix else "no extension"
    return _skip(path, "not_an_image_name", f"not a file type Pillow reads ({what})", suffixes), None


def iter_scan(path: str | Path) -> Iterator[Path | SkippedFile]:
    """Walk `path` in sorted order, yielding each image file (a Path) and each
    entry skipped (a SkippedFile) as it is met; nothing is opened.

    A path naming a regular file yields it whatever its name (it is read by its
    content). A folder yields every regular file below it whose suffix Pillow
    registers, following symbolic links to folders once each (a link back up is
    skipped as a loop). Raises ImageError when `path` itself is missing or is
    neither a file nor a folder (a FIFO, a device...)."""
    root = Path(path)
    try:
        st = os.stat(root)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not os.path.islink(root):
            raise ImageError(f"{root}: no such file or folder", code="file_not_found", file=str(root)) from exc
        raise _stat_error(str(root), exc) from exc
    if stat.S_ISREG(st.st_mode):
        yield root
        return
    if not stat.S_ISDIR(st.st_mode):
        kind = file_kind(st.st_mode)
        raise ImageError(f"{root}: is {kind}, not an image file or a folder", code="not_a_regular_file",
                         file=str(root), kind=kind)
    suffixes = image_suffixes()
    seen = {(st.st_dev, st.st_ino)}
    # An explicit stack, not recursion: a folder tree of any depth is fine.
    stack: list[Iterator[Path | SkippedFile]] = [iter(_sorted_entries(root))]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        if isinstance(child, SkippedFile):
            yield child
            continue
        found, cst = _entry(child, suffixes)
        if cst is not None and stat.S_ISDIR(cst.st_mode):
            key = (cst.st_dev, cst.st_ino)
            if key in seen:
                yield _skip(child, "not_a_regular_file", "a symbolic link to a folder already searched (a loop)",
                            suffixes)
                continue
            seen.add(key)
            stack.append(iter(_sorted_entries(child)))
            continue
        yield found


def _sorted_entries(folder: Path) -> list[Path | SkippedFile]:
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it)
    except OSError as exc:
        return [SkippedFile(folder, "unreadable_file", f"cannot list this folder ({exc.strerror or exc})")]
    return [folder / n for n in names]


def scan_images(path: str | Path) -> ImageScan:
    """Every image under `path` (see iter_scan) and every entry skipped, with why."""
    images: list[Path] = []
    skipped: list[SkippedFile] = []
    for found in iter_scan(path):
        (skipped if isinstance(found, SkippedFile) else images).append(found)
    return ImageScan(Path(path), images, skipped)


def list_images(path: str | Path) -> list[Path]:
    """Image files under a folder (recursively, sorted), or the file itself.
    scan_images also says what it skipped."""
    return scan_images(path).images


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "DecodedImage",
    "ImageScan",
    "SkippedFile",
    "check_regular_file",
    "decode_image",
    "file_size_limit",
    "image_suffixes",
    "iter_scan",
    "list_images",
    "load_image",
    "pixel_limit",
    "read_file_bytes",
    "scan_images",
]
