"""Errors the gallery raises; all are VultusErrors with a code and data.

Codes: gallery_error (generic), not_found, conflict (already exists, would
clash), invalid_name, gallery_damaged (the file is corrupt: say how to
recover), read_only (reads keep working), disk_full, busy (locked by another
process for longer than the timeout), not_a_gallery.
"""

from vultus.errors import VultusError


class GalleryError(VultusError):
    """The gallery cannot do what was asked (bad name, bad file, conflicting state)."""

    code = "gallery_error"


class NotFoundError(GalleryError):
    """A collection, person or face that does not exist (data: kind, name or id)."""

    code = "not_found"


class ConflictError(GalleryError):
    """The request clashes with what is stored (a name already taken, a model already pinned)."""

    code = "conflict"


class GalleryDamagedError(GalleryError):
    """The gallery file is corrupt; writes are refused (data: path)."""

    code = "gallery_damaged"


class ReadOnlyError(GalleryError):
    """The gallery cannot be written (read-only file, folder or mount); reads keep working."""

    code = "read_only"


class DiskFullError(GalleryError):
    """The disk filled up; what was committed before is kept."""

    code = "disk_full"
