"""Batches of images with one outcome per image, and streams cut into chunks.

Every batch method decodes its inputs here, once each: an image that cannot be
read becomes an ``ImageResult`` carrying its error, and the models run on the
rest in one call. Streams cut an iterable of inputs into chunks and process one
chunk at a time, so only one chunk's decoded images are alive at once however
long the stream is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import PurePath
from typing import Any, TypeVar

import numpy as np

from vultus.errors import InvalidArgumentError, VultusError
from vultus.imageio import decode_image
from vultus.types import ImageResult

T = TypeVar("T")

#: Images per chunk of a stream: enough to fill a batched model call (YuNet and the embedders gain
#: little beyond this), few enough that a chunk of large photos stays bounded: every decoded image of
#: a chunk is alive at once, and a 12 MP photo is 36 MB decoded.
DEFAULT_CHUNK_SIZE = 16


def source_label(image: Any, index: int) -> str:
    """How an input is named to people: its path, or its position for in-memory images."""
    if isinstance(image, str):
        return image
    if isinstance(image, PurePath) or hasattr(image, "__fspath__"):
        return str(image)
    return f"<image {index}>"


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items, pulled from `items` lazily (a bad size raises here)."""
    if not isinstance(size, int) or size < 1:
        raise InvalidArgumentError(f"chunk size must be a whole number of at least 1 (got {size!r})",
                                   code="bad_chunk_size", value=size)
    it = iter(items)

    def chunks():
        while chunk := list(islice(it, size)):
            yield chunk

    return chunks()


def decode_batch(images: Sequence, *, start: int = 0, max_side: int | None = None
                 ) -> list[ImageResult[np.ndarray]]:
    """Each input decoded to an RGB uint8 array, or the ImageError it met (positions from `start`).

    With `max_side` (detection) a large file may be decoded smaller, no smaller than
    `max_side` on its longer side (vultus.imageio.decode_image); the result's width and
    height are always the full image's, so `value.shape[1] / width` is the scale."""
    out: list[ImageResult[np.ndarray]] = []
    for k, image in enumerate(images):
        label = source_label(image, start + k)
        try:
            decoded = decode_image(image, max_side=max_side)
        except VultusError as exc:
            out.append(ImageResult(start + k, label, error=exc))
            continue
        out.append(ImageResult(start + k, label, decoded.pixels, width=decoded.width, height=decoded.height))
    return out


def failed(result: ImageResult, error: VultusError) -> ImageResult:
    """A result for the same image carrying `error` instead of a value."""
    return ImageResult(result.index, result.source, error=error, width=result.width, height=result.height)


def with_value(result: ImageResult, value: T) -> ImageResult[T]:
    """A result for the same image (index, source, size) carrying `value`."""
    return ImageResult(result.index, result.source, value, width=result.width, height=result.height)
