"""The gallery: enroll the people you know, then ask who is in a photo.

SQLite (the source of truth) plus a derived usearch HNSW index per collection
and embedder; see docs/gallery.md.
"""

from vultus.gallery.api import DEFAULT_COLLECTION, Gallery, csv_items, default_gallery_path, folder_items
from vultus.gallery.errors import GalleryError, NotFoundError
from vultus.gallery.gate import GateMeasures, GateThresholds
from vultus.gallery.inference import EnrollOptions
from vultus.gallery.names import MAX_NAME_LENGTH, check_name
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
    ForgetProof,
    ForgetReport,
    Identification,
    ImageIdentification,
    IndexReport,
    Lookalike,
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
    "ForgetProof",
    "ForgetReport",
    "Gallery",
    "GalleryError",
    "GateMeasures",
    "GateThresholds",
    "Identification",
    "ImageIdentification",
    "IndexReport",
    "Lookalike",
    "Match",
    "NotFoundError",
    "Person",
    "ReembedReport",
    "MAX_NAME_LENGTH",
    "check_name",
    "csv_items",
    "default_gallery_path",
    "folder_items",
]
