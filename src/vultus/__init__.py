"""vultus: offline-first face analysis.

    from vultus import Engine
    Engine().verify("a.jpg", "b.jpg")
"""

from vultus.engine import Engine
from vultus.errors import ImageError, ManyFacesError, ModelError, NoFaceError, VultusError
from vultus.imageio import load_image
from vultus.types import Box, Embedding, Face, OperatingPoint, Verification

__version__ = "0.1.0"

__all__ = [
    "Box",
    "Embedding",
    "Engine",
    "Face",
    "ImageError",
    "ManyFacesError",
    "ModelError",
    "NoFaceError",
    "OperatingPoint",
    "Verification",
    "VultusError",
    "load_image",
]
