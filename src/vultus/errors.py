"""Every error vultus raises on purpose derives from VultusError.

The CLI and the REST service turn these into one clear line and a non-zero exit
(or a 4xx answer); anything else is a bug and keeps its traceback.
"""


class VultusError(Exception):
    """Base class for errors a user can act on."""


class ImageError(VultusError):
    """The input is missing, not an image, truncated, or too large."""


class NoFaceError(VultusError):
    """An image that must show a face shows none."""


class ManyFacesError(VultusError):
    """An image that must show exactly one face shows several."""


class ModelError(VultusError):
    """A model is unknown, its carrier package is missing, or its file fails its checksum."""


class ModelMismatchError(VultusError):
    """Embeddings from different models were compared or mixed."""
