"""Groups predicted by vultus's attribute models, for data without demographic labels (LFW).

Predicted groups are guesses from appearance, with their own errors; every report that uses them says so
("predicted_" columns in a labels file mark them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vultus.errors import ModelError, VultusError
from vultus.evaluate.groups import LabelTable, age_band

if TYPE_CHECKING:
    from vultus.evaluate.embeddings import Progress

PREFIX = "predicted_"


def attribute_models():
    """(age model, gender model) from the registry, or None when this build cannot run them."""
    from vultus.models.cache import get_model

    try:
        return get_model("age", task="age"), get_model("gender", task="gender")
    except (ImportError, AttributeError, VultusError):
        return None


def predict_age_gender(engine, paths: list[Path], faces: list) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted age in years, predicted gender label) per image from the registry's age and gender models
    on the given faces ('' / NaN where there is no face), or None when this build has no attribute models."""
    from vultus.imageio import load_image

    models = attribute_models()
    if models is None:
        return None
    age_model, gender_model = models
    ages = np.full(len(paths), np.nan)
    genders = np.array([""] * len(paths), dtype=object)
    todo = [i for i, f in enumerate(faces) if f is not None]
    for s in range(0, len(todo), 256):
        idx = todo[s:s + 256]
        items = [(load_image(paths[i]), faces[i]) for i in idx]
        for i, a, g in zip(idx, age_model.predict(items), gender_model.predict(items), strict=True):
            ages[i] = a.years
            genders[i] = g.label
    return ages, genders


def majority(values: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Each photo gets its person's most frequent value, so all photos of a person share one group (ties go
    to the value first in sort order)."""
    out = np.array([""] * values.size, dtype=object)
    for p in np.unique(person):
        m = person == p
        vals = [v for v in values[m] if v != ""]
        if vals:
            uniq, counts = np.unique(np.array(vals, dtype=object).astype(str), return_counts=True)
            out[m] = uniq[np.argmax(counts)]
    return out


def predicted_labels(engine, paths: list[Path], person: np.ndarray | None = None, *, pick: str = "largest",
                     progress: Progress | None = None, workers: int | None = None) -> LabelTable:
    """predicted_gender and predicted_age_band per image (per person by majority when `person` is given)."""
    from vultus.evaluate.embeddings import embed_images

    if attribute_models() is None:  # say so before spending minutes on embeddings
        raise ModelError("this build of vultus cannot run the age and gender models (vultus.attributes); "
                         "predicted groups are not available")
    emb = embed_images(engine, paths, pick=pick, progress=progress, workers=workers)
    pred = predict_age_gender(engine, emb.paths, emb.faces)
    if pred is None:
        raise ModelError("this build of vultus cannot run the age and gender models (vultus.attributes); "
                         "predicted groups are not available")
    ages, genders = pred
    bands = np.array([age_band(a) if not math.isnan(a) else "" for a in ages], dtype=object)
    if person is not None:
        idx = emb.indices(paths)
        genders, bands = majority(genders[idx], person), majority(bands[idx], person)
        order = paths
    else:
        order = emb.paths
    labels = {Path(p): {PREFIX + "gender": str(g), PREFIX + "age_band": str(b)}
              for p, g, b in zip(order, genders, bands, strict=True)}
    return LabelTable(attributes=[PREFIX + "gender", PREFIX + "age_band"], labels=labels,
                      source=f"vultus age and gender models ({engine.detector_spec.name} faces)", predicted=True)
