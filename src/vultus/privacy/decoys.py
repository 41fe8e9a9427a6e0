"""The decoy identities a cloak pulls faces toward by default (registry entry `cloak-decoys`).

Fawkes ships photos of celebrities to pull faces toward; vultus ships no one's face or embedding. Its decoys are
synthetic identities made by train/cloak_decoys.py: drawn from a joint Gaussian fitted to the sface and dlib-resnet
vectors of LFW development images, kept only where no image of that data matches them at FMR 1e-3, and spread
apart so that every face has one far from it. Each decoy is one unit vector per embedder of the search.
"""

from __future__ import annotations

import json

import numpy as np

from vultus.models.registry import ModelSpec


class DecoySet:
    """The shipped decoys, loaded from the registry entry's JSON (checked by sha256 like every weight file)."""

    def __init__(self, spec: ModelSpec, **_options):
        self.spec = spec
        self.name = spec.name
        doc = json.loads(spec.path().read_text())
        self._vectors = {n: np.asarray(rows, np.float32) for n, rows in doc["embedders"].items()}
        sizes = {len(v) for v in self._vectors.values()}
        if len(sizes) != 1:
            raise ValueError(f"{spec.name}: the embedders hold different numbers of decoys")
        self.count = sizes.pop()

    def vectors(self, embedders) -> list[dict[str, np.ndarray]]:
        """Per decoy, its unit vector for each of `embedders` (the shape cloak's `decoys` takes)."""
        missing = [n for n in embedders if n not in self._vectors]
        if missing:
            raise ValueError(f"{self.name} has no decoys for {', '.join(missing)}")
        return [{n: self._vectors[n][i] for n in embedders} for i in range(self.count)]


def shipped_decoys(embedders) -> list[dict[str, np.ndarray]]:
    """The shipped decoys' vectors for `embedders`, from the process's model cache."""
    from vultus.models.cache import get_model

    return get_model("cloak-decoys", task="decoy").vectors(embedders)
