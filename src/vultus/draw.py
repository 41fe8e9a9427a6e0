"""Drawing faces on images for people to look at."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from vultus.types import Face

_COLOURS = [(0, 200, 255), (255, 80, 80), (80, 220, 80), (255, 200, 0), (200, 100, 255)]


def annotate(image: np.ndarray, faces: Sequence[Face], labels: Sequence[str] | None = None) -> Image.Image:
    """A PIL copy of `image` with each face's box, landmarks and optional label."""
    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(image.shape[:2]) / 400))
    for i, face in enumerate(faces):
        colour = _COLOURS[i % len(_COLOURS)]
        draw.rectangle(face.box.as_tuple(), outline=colour, width=width)
        r = width + 1
        for x, y in face.landmarks:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        if face.landmarks68 is not None:
            for x, y in face.landmarks68:
                draw.point((x, y), fill=(255, 255, 255))
        text = labels[i] if labels else f"{i}: {face.score:.2f}"
        draw.text((face.box.x1 + 2, max(0, face.box.y1 - 12)), text, fill=colour)
    return img
