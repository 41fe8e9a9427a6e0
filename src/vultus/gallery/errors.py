"""Errors the gallery raises; all are VultusErrors, so the CLI prints one line."""

from vultus.errors import VultusError


class GalleryError(VultusError):
    """The gallery cannot do what was asked (bad name, bad file, conflicting state)."""


class NotFoundError(GalleryError):
    """A collection, person or face that does not exist."""
