"""vultus: offline-first face analysis.

    from vultus import Engine
    Engine().verify("a.jpg", "b.jpg")
"""

import logging

from vultus.engine import Engine
from vultus.errors import ImageError, ManyFacesError, ModelError, NoFaceError, VultusError
from vultus.imageio import load_image
from vultus.types import Box, Embedding, Face, ImageResult, OperatingPoint, Verification

__version__ = "0.1.0"

# The library logs to the "vultus" logger (index rebuilds, model loads, enrollment gate refusals) and
# stays silent unless the application configures logging: the rule for libraries.
logging.getLogger("vultus").addHandler(logging.NullHandler())

__all__ = [
    "Box",
    "Embedding",
    "Engine",
    "Face",
    "ImageError",
    "ImageResult",
    "ManyFacesError",
    "ModelError",
    "NoFaceError",
    "OperatingPoint",
    "Verification",
    "VultusError",
    "load_image",
]
