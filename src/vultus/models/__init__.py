"""Model registry and loaders. Nothing here loads weights at import time.

`vultus.models.registry` is the module; `registry.registry()` lists the entries.
"""

from vultus.models.registry import (
    InputContract,
    ModelFile,
    ModelSpec,
    cache_dir,
    check,
    download,
    get_spec,
    register,
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
    "resolve_file",
]
