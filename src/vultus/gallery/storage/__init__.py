"""Gallery storage backends behind one interface (storage/base.py).

A new backend is one module with a GalleryStore subclass plus one entry in
BACKENDS; `open_store` picks it from the location's scheme ("sqlite:///x.db",
or a plain path for the embedded default; "postgresql://user@host:5432/db" for
the shared one).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from vultus.gallery.errors import GalleryError
from vultus.gallery.storage.base import GalleryStore

BACKENDS: dict[str, str] = {
    "sqlite": "vultus.gallery.storage.sqlite:SQLiteStore",
    "postgresql": "vultus.gallery.storage.postgres:PostgresStore",
    "postgres": "vultus.gallery.storage.postgres:PostgresStore",
}
# Backends that take the whole URL (a database's connection string), not the part after "://".
URL_BACKENDS = frozenset({"postgresql", "postgres"})


def open_store(location: str | Path, **options) -> GalleryStore:
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep or len(scheme) < 2:  # a plain path (a Windows drive letter is not a scheme)
        scheme, rest = "sqlite", text
    if scheme not in BACKENDS:
        raise GalleryError(f"unknown gallery backend {scheme!r} in {text!r}; known: {', '.join(sorted(BACKENDS))}")
    module_name, _, cls_name = BACKENDS[scheme].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(text if scheme in URL_BACKENDS else rest, **options)


__all__ = ["BACKENDS", "URL_BACKENDS", "GalleryStore", "open_store"]
