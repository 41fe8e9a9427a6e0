"""Reading uploaded images within the limits, before any model sees them.

Every upload is read into memory only up to its byte limit; its header is
read for the pixel count before anything is decoded (a 30 KB PNG can declare
40,000 x 40,000 pixels and cost gigabytes to decode); the service never
reads a server-side path or fetches a URL named in a request. `BodyLimit`
caps the whole request body, counted as it arrives.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from vultus.errors import ImageError
from vultus.imageio import load_image
from vultus.service.errors import ServiceError, error_body

# Content types accepted for an image part: any image/*, or none said.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True, slots=True)
class Upload:
    name: str  # the client's file name, reduced to a safe base name (for messages and listings)
    data: bytes
    index: int  # position in the request


def safe_name(filename: str | None, index: int) -> str:
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")[:100]
    return base or f"image-{index}"


def image_header_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the image's header alone, without decoding its pixels.

    The one place the pixel limit looks at an image; once vultus.imageio.load_image
    takes a pixel limit of its own, this can defer to it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError as exc:  # Pillow's own hard stop, at twice its warning size
        raise ImageError(f"{name}: image too large ({exc})", code="image_too_large", image=name) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image (no format Pillow reads)", code="not_an_image", image=name) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image header ({exc})", code="corrupt_image",
                         image=name) from exc


def check_image(data: bytes, name: str, max_pixels: int) -> int:
    """The image's pixel count, from its header; ImageError if empty, unreadable or too large."""
    if not data:
        raise ImageError(f"{name}: empty file", code="empty_file", image=name)
    w, h = image_header_size(data, name)
    if w * h > max_pixels:
        raise ImageError(f"{name}: image too large ({w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,})",
                         code="image_too_large", image=name, width=w, height=h, limit=max_pixels)
    return w * h


def decode(upload: Upload) -> np.ndarray:
    """RGB array of a checked upload; corrupt data raises ImageError(corrupt_image)."""
    try:
        return load_image(upload.data)
    except ImageError as exc:
        why = exc.message.split(": ", 1)[-1]
        code = exc.code if exc.code not in ("bad_image", "error") else "corrupt_image"
        raise ImageError(f"{upload.name}: {why}", code=code, image=upload.name, index=upload.index) from exc


async def read_uploads(files: list[UploadFile], settings, field: str = "images") -> list[Upload]:
    """Checked uploads, within `settings`' limits: images per request, bytes per image,
    pixels per image and per request (what decoding the request will cost in memory)."""
    max_images, max_bytes = settings.max_images, settings.max_image_bytes
    max_pixels, budget = settings.max_pixels, settings.max_request_pixels
    if not files:
        raise ServiceError(f"no image uploaded (multipart field {field!r})", code="invalid_request", field=field)
    if len(files) > max_images:
        raise ServiceError(f"{len(files)} images in one request; the limit is {max_images}",
                           code="too_many_images", limit=max_images, value=len(files))
    out = []
    total = 0
    for i, f in enumerate(files):
        name = safe_name(f.filename, i)
        ctype = (f.content_type or "").split(";")[0].strip().lower()
        if ctype not in GENERIC_TYPES and not ctype.startswith("image/"):
            raise ServiceError(f"{name}: content type {ctype!r} is not an image", code="unsupported_media_type",
                               image=name, index=i, content_type=ctype)
        data = await f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ImageError(f"{name}: upload larger than {max_bytes:,} bytes", code="file_too_large",
                             image=name, index=i, limit=max_bytes)
        try:
            total += check_image(data, name, max_pixels)
        except ImageError as exc:
            exc.data.setdefault("index", i)
            raise
        if total > budget:
            raise ServiceError(f"the images of this request hold more than {budget:,} pixels together; send fewer",
                               code="too_many_pixels", limit=budget, index=i)
        out.append(Upload(name=name, data=data, index=i))
    return out


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body, by Content-Length and
    as counted while it arrives (chunked uploads have no length). Past the limit
    the body is cut off and the answer is a 413 in the service's error format."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                return await self._refuse(send)
        state = {"received": 0, "over": False, "answered": False}

        async def limited_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["over"]:
                # Whatever the app made of the cut-off body, the answer is 413.
                if message["type"] == "http.response.start" and not state["answered"]:
                    state["answered"] = True
                    await self._refuse(send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["answered"]:
            await self._refuse(send)

    async def _refuse(self, send):
        import json

        body = json.dumps(error_body("payload_too_large", f"request body larger than {self.max_bytes:,} bytes",
                                     {"limit": self.max_bytes})).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
