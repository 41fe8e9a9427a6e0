"""vultus's liveness score: a logistic fusion of the MiniFASNet pair's outputs and image cues.

Features per face: each network's log-odds of `live`, and the CUES of
vultus.liveness.cues. They are standardised with the training subjects' mean
and spread and combined by a logistic regression (L2-penalised, fitted by
Newton's method: deterministic, no seed to vary) trained by bench/liveness.py
on the training subjects of the shared NUAA data only. The weights are the
JSON file `liveness-fusion-v1.json` shipped in vultus.models.weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from vultus.evaluate.metrics import newton_logistic
from vultus.liveness.cues import CUES, face_cues
from vultus.liveness.passive import LIVE_CLASS, NETWORKS, authors_box, to_bgr
from vultus.models.cache import get_model
from vultus.models.registry import ModelSpec
from vultus.types import Face

FEATURES = tuple(f"logit_{name.removesuffix('.onnx')}" for name, _ in NETWORKS) + CUES


def network_logits(probs: np.ndarray) -> np.ndarray:
    """(N, networks) log-odds of `live` from (networks, N, 3) probabilities."""
    p = np.clip(probs[:, :, LIVE_CLASS].astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).T


def feature_matrix(probs: np.ndarray, cues: np.ndarray) -> np.ndarray:
    return np.column_stack([network_logits(probs), cues])


def fit_logistic(x: np.ndarray, y: np.ndarray, *, ridge: float = 1.0, iterations: int = 100) -> dict:
    """Standardisation and L2-penalised logistic regression weights of `y` (1 = live) on `x`."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.column_stack([(x - mean) / std, np.ones(len(x))])
    penalty = ridge * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0  # the offset is not shrunk
    coef = newton_logistic(z, y, penalty, iterations=iterations)
    return {"features": list(FEATURES), "mean": mean.tolist(), "std": std.tolist(),
            "coef": coef[:-1].tolist(), "intercept": float(coef[-1]), "ridge": ridge}


def apply_logistic(weights: dict, x: np.ndarray) -> np.ndarray:
    z = (x - np.array(weights["mean"])) / np.array(weights["std"])
    return 1.0 / (1.0 + np.exp(-np.clip(z @ np.array(weights["coef"]) + weights["intercept"], -30, 30)))


class FusionScorer:
    """The registry model `vultus-liveness`: runs minifasnet, computes the cues, fuses."""

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, **_options):
        self.spec = spec
        self.name = spec.name
        self.pair = get_model("minifasnet", task="liveness", threads=threads)
        self.weights = json.loads(spec.path().read_text())

    def cues(self, items: Sequence[tuple[np.ndarray, Face]], wide_patches: np.ndarray) -> np.ndarray:
        bgr_of: dict[int, np.ndarray] = {}
        rows = []
        for (img, face), wide in zip(items, wide_patches, strict=True):
            bgr = bgr_of.get(id(img))
            if bgr is None:
                bgr = bgr_of[id(img)] = to_bgr(img)
            rows.append(face_cues(bgr, authors_box(face.box), wide))
        return np.array(rows).reshape(len(items), len(CUES))

    def scores_and_parts(self, items: Sequence[tuple[np.ndarray, Face]]) -> tuple[np.ndarray, np.ndarray]:
        """(N,) fused live scores and the (networks, N, 3) network probabilities behind them."""
        patches = self.pair.patches(items)
        probs = self.pair.probabilities_of_patches(patches)
        cues = self.cues(items, patches[-1])
        return apply_logistic(self.weights, feature_matrix(probs, cues)), probs

    def live_scores(self, items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        return self.scores_and_parts(items)[0]
