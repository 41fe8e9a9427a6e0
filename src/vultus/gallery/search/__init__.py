"""Vector indexes behind one interface (search/base.py): a new kind is one
module plus one entry in INDEX_KINDS."""

from __future__ import annotations

import importlib

from vultus.gallery.errors import GalleryError
from vultus.gallery.search.base import IndexFileError, VectorIndex

INDEX_KINDS: dict[str, str] = {
    "hnsw": "vultus.gallery.search.hnsw:HnswIndex",
    "exact": "vultus.gallery.search.exact:ExactIndex",
}


def index_class(kind: str) -> type[VectorIndex]:
    if kind not in INDEX_KINDS:
        raise GalleryError(f"unknown index kind {kind!r}; known: {', '.join(sorted(INDEX_KINDS))}")
    module_name, _, cls_name = INDEX_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def make_index(kind: str, dim: int, **options) -> VectorIndex:
    return index_class(kind)(dim, **options)


__all__ = ["INDEX_KINDS", "IndexFileError", "VectorIndex", "index_class", "make_index"]
