"""Score-level fusion of SFace (averaged with the mirror image: sface-flip) and
the dlib ResNet as one embedder.

With component similarities s1 and s2, the fused score is w1*s1 + w2*s2
(w1 + w2 = 1). Writing the fused vector as [sqrt(w1)*v1, sqrt(w2)*v2] makes
its dot product exactly that score and keeps it unit length, so the gallery
and its ANN index treat a fused vector like any other embedding. The weights
are fitted on LFW by logistic regression on the two cosines (bench/lfw.py;
the 10-fold figure it reports fits them on the other nine folds each time)
and stored in calibration.json.
"""

from __future__ import annotations

import numpy as np

from vultus.embed.base import Embedder
from vultus.models.cache import get_model
from vultus.models.calibration import load_calibration
from vultus.models.registry import get_spec
from vultus.models.runtime import Lazy


def fusion_weights() -> dict[str, float]:
    components = get_spec("fused").components
    weights = load_calibration().get("fused", {}).get("weights", {})
    if set(weights) != set(components):  # no fitted weights for these components: equal shares
        return {name: 1.0 / len(components) for name in components}
    return weights


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Fused vectors from per-component unit vectors: [sqrt(w1) * v1, sqrt(w2) * v2, ...]."""
    return np.concatenate([np.sqrt(weights[name]) * vecs for name, vecs in parts.items()], axis=1).astype(np.float32)


class FusedEmbedder(Embedder):
    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        # The components come from the model cache: an Engine running sface-flip alone shares them.
        self.components = [Lazy(lambda n=n: get_model(n, task="embed", threads=self.threads))
                           for n in spec.components]
        self.weights = fusion_weights()

    def embed(self, items) -> np.ndarray:
        embedders = [comp.get() for comp in self.components]
        return combine({e.name: e.embed(items) for e in embedders}, self.weights)

    def _embed(self, items):  # pragma: no cover - embed() is overridden
        raise NotImplementedError
