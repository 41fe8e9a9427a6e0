"""The gallery: enroll the people you know, then ask who is in a photo.

SQLite (the source of truth) plus a derived usearch HNSW index per collection
and embedder; see docs/gallery.md.
"""

from vultus.gallery.api import DEFAULT_COLLECTION, Gallery, csv_items, default_gallery_path, folder_items
from vultus.gallery.errors import GalleryError, NotFoundError
from vultus.gallery.gate import GateMeasures, GateThresholds
from vultus.gallery.inference import EnrollOptions
from vultus.gallery.types import (
    Collection,
    CollectionStats,
    Decision,
    EmbedderContract,
    EnrollItem,
    EnrollOutcome,
    EnrollReport,
    EnrollWarning,
    FaceRecord,
    ForgetReport,
    Identification,
    ImageIdentification,
    IndexReport,
    Match,
    Person,
    ReembedReport,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "Collection",
    "CollectionStats",
    "Decision",
    "EmbedderContract",
    "EnrollItem",
    "EnrollOptions",
    "EnrollOutcome",
    "EnrollReport",
    "EnrollWarning",
    "FaceRecord",
    "ForgetReport",
    "Gallery",
    "GalleryError",
    "GateMeasures",
    "GateThresholds",
    "Identification",
    "ImageIdentification",
    "IndexReport",
    "Match",
    "NotFoundError",
    "Person",
    "ReembedReport",
    "csv_items",
    "default_gallery_path",
    "folder_items",
]
