"""Every error vultus raises on purpose derives from VultusError: errors are data.

Each error carries a stable machine-readable ``code`` (a class default, or a
more specific one given where it is raised) and the facts behind its message in
``data`` (file, person, collection, counts, limits). The message is for people
and never names a command-line flag or an HTTP field: the CLI adds flag hints
(``vultus.cli.errors``) and the service builds its JSON answer from ``code`` and
``data`` (``vultus.service``). Each front end maps codes to its exit or HTTP
status in one table.

    raise ImageError(f"{name}: no such file", code="file_not_found", file=name)

Anything that is not a VultusError is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any


class VultusError(Exception):
    """Base class for errors a user can act on."""

    #: Stable machine-readable kind; subclasses set their default, raise sites may refine it.
    code: str = "error"

    def __init__(self, message: str = "", *, code: str | None = None, **data: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data: dict[str, Any] = data

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message", "details"}`` with JSON-safe details."""
        return {"code": self.code, "message": self.message, "details": {k: _jsonable(v) for k, v in self.data.items()}}

    def __reduce__(self):
        # Errors cross process boundaries (enroll workers); keep code and data when pickled.
        return (_rebuild, (type(self), self.message, self.code, self.data))


def _rebuild(cls, message, code, data):
    err = cls.__new__(cls)
    VultusError.__init__(err, message, code=code, **data)
    return err


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, PurePath):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        try:
            return v.item()
        except (TypeError, ValueError):
            pass
    return str(v)


class InvalidArgumentError(VultusError):
    """A value passed to the library is out of range or of the wrong form."""

    code = "invalid_argument"


class ImageError(VultusError):
    """The input is missing, not a regular file, not an image, truncated, or too large.

    Codes: file_not_found, not_a_regular_file, file_too_large, empty_file,
    not_an_image, corrupt_image, image_too_large (pixels), unreadable_file, bad_image."""

    code = "bad_image"


class NoFaceError(VultusError):
    """An image that must show a face shows none."""

    code = "no_face"


class ManyFacesError(VultusError):
    """An image that must show exactly one face shows several (data: faces)."""

    code = "many_faces"


class ModelError(VultusError):
    """A model is unknown, its carrier package is missing, or its file fails its checksum."""

    code = "model_error"


class ModelMismatchError(VultusError):
    """Embeddings from different models were compared or mixed."""

    code = "model_mismatch"


class OutputError(VultusError):
    """An output path (a report, an annotated image, a gallery file) cannot be written."""

    code = "output_not_writable"


class LimitError(VultusError):
    """A request exceeds a configured limit (data: limit, value)."""

    code = "limit_exceeded"


class MissingDependencyError(VultusError):
    """A feature needs an optional package that is not installed (data: package, extra)."""

    code = "missing_dependency"


__all__ = [
    "ImageError",
    "InvalidArgumentError",
    "LimitError",
    "ManyFacesError",
    "MissingDependencyError",
    "ModelError",
    "ModelMismatchError",
    "NoFaceError",
    "OutputError",
    "VultusError",
]
