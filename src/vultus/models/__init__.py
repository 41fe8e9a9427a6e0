"""Model registry and loaders. Nothing here loads weights at import time."""

from vultus.models.registry import (
    InputContract,
    ModelFile,
    ModelSpec,
    cache_dir,
    check,
    download,
    get_spec,
    register,
    registry,
    resolve_file,
)

__all__ = [
    "InputContract",
    "ModelFile",
    "ModelSpec",
    "cache_dir",
    "check",
    "download",
    "get_spec",
    "register",
    "registry",
    "resolve_file",
]
