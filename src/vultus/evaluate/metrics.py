"""Verification metrics: ROC, TAR at a false-match rate, EER, k-fold accuracy, bootstrap intervals.

Pure numpy. Conventions everywhere in this module:

- `scores`: similarity of each comparison; higher means more alike.
- `same`: bool per comparison, True for a genuine (mated) pair, False for an impostor pair.
- A pair is *accepted* (declared the same person) when its score is >= the threshold.
- FMR (false-match rate) = share of impostor scores accepted; TAR (true-accept rate) = share of genuine
  scores accepted; FNMR = 1 - TAR.

Degenerate inputs (no scores, no genuine or no impostor pairs where a rate needs them, NaN scores,
mismatched lengths) raise ValueError with a sentence saying what is wrong, never a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Floating-point slack when turning a rate into a count (0.29 * 100 is 28.999999999999996).
_COUNT_EPS = 1e-9


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError(f"{name} is empty: need at least one comparison")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains NaN; drop or resolve failed comparisons before computing a metric")
    return s


def _as_labels(scores, same) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    y = np.asarray(same)
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("same must be booleans (or 0/1)")
        y = y.astype(bool)
    y = y.ravel()
    if y.shape != s.shape:
        raise ValueError(f"scores has {s.size} entries but same has {y.size}")
    return s, y


def _split(scores, same) -> tuple[np.ndarray, np.ndarray]:
    """(genuine scores, impostor scores); both must be non-empty."""
    s, y = _as_labels(scores, same)
    genuine, impostor = s[y], s[~y]
    if genuine.size == 0:
        raise ValueError("no genuine (same-person) pairs: a true-accept rate cannot be measured")
    if impostor.size == 0:
        raise ValueError("no impostor (different-person) pairs: a false-match rate cannot be measured")
    return genuine, impostor


def _check_rate(target_fmr: float) -> float:
    t = float(target_fmr)
    if not (0.0 < t < 1.0):
        raise ValueError(f"target false-match rate must be between 0 and 1 (exclusive), got {target_fmr!r}")
    return t


def _accepted_share(sorted_asc: np.ndarray, threshold: float) -> float:
    """Share of an ascending array that is >= threshold."""
    n = sorted_asc.size
    return (n - int(np.searchsorted(sorted_asc, threshold, side="left"))) / n


# -- ROC -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roc:
    """The ROC as a step curve: at thresholds[i], fmr[i] and tar[i] are the accepted shares.

    thresholds are descending and start at +inf (nothing accepted: fmr 0, tar 0); the last one is the
    lowest score, where everything is accepted (fmr 1, tar 1). Tied scores share one point.
    """

    fmr: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tar

    def auc(self) -> float:
        """Area under the ROC (trapezoids, so ties count half, as in the Mann-Whitney statistic)."""
        return float(np.sum(np.diff(self.fmr) * (self.tar[1:] + self.tar[:-1]) / 2.0))


def roc(scores, same) -> Roc:
    genuine, impostor = _split(scores, same)
    thresholds = np.unique(np.concatenate([genuine, impostor]))[::-1]
    g, i = np.sort(genuine), np.sort(impostor)
    # count accepted (>= t) = n - index of the first element >= t
    tar = (g.size - np.searchsorted(g, thresholds, side="left")) / g.size
    fmr = (i.size - np.searchsorted(i, thresholds, side="left")) / i.size
    return Roc(fmr=np.concatenate([[0.0], fmr]), tar=np.concatenate([[0.0], tar]),
               thresholds=np.concatenate([[np.inf], thresholds]))


# -- operating points ------------------------------------------------------------------------------------------


def threshold_at_fmr(impostor_scores, target_fmr: float) -> float:
    """The smallest threshold whose FMR (share of impostor scores >= threshold) is <= target_fmr.

    With n impostor scores at most k = floor(target * n) of them may be accepted, so the threshold sits
    just above the (k+1)-th highest impostor score (the next float up: nothing smaller qualifies). Ties at
    that score are all rejected, so the FMR actually reached can be below the target; it is never above.
    """
    s = np.sort(_as_scores(impostor_scores, "impostor_scores"))[::-1]
    target = _check_rate(target_fmr)
    k = int(math.floor(target * s.size + _COUNT_EPS))
    if k >= s.size:  # cannot happen for target < 1, kept for clarity
        return float("-inf")
    return float(np.nextafter(s[k], np.inf))


@dataclass(frozen=True)
class RateAt:
    """TAR at a target FMR. `resolvable` is False when there are fewer than 1/target impostor pairs:
    then not even one false match is allowed and the rate says nothing about that FMR."""

    target_fmr: float
    tar: float
    threshold: float
    n_negatives: int
    resolvable: bool

    @property
    def note(self) -> str:
        if self.resolvable:
            return ""
        need = math.ceil(1.0 / self.target_fmr - _COUNT_EPS)
        return (f"too few impostor pairs for FMR {self.target_fmr:g}: {self.n_negatives} "
                f"(need at least {need})")


def resolvable(n_negatives: int, target_fmr: float) -> bool:
    """Whether n impostor comparisons can measure a false-match rate as small as target_fmr."""
    return n_negatives * target_fmr >= 1.0 - _COUNT_EPS


def tar_at_fmr(scores, same, target_fmr: float) -> RateAt:
    genuine, impostor = _split(scores, same)
    t = threshold_at_fmr(impostor, target_fmr)
    tar = _accepted_share(np.sort(genuine), t)
    return RateAt(target_fmr=float(target_fmr), tar=float(tar), threshold=t, n_negatives=int(impostor.size),
                  resolvable=resolvable(impostor.size, target_fmr))


def eer(scores, same) -> tuple[float, float]:
    """(equal error rate, threshold where FMR = FNMR).

    Walks the ROC from the strictest threshold down to the first point where FMR >= FNMR and interpolates
    linearly between that point and the one before, in both the rates and the threshold.
    """
    r = roc(scores, same)
    fnmr = 1.0 - r.tar
    diff = fnmr - r.fmr  # starts at 1 (threshold +inf), ends at -1 (everything accepted)
    j = int(np.argmax(diff <= 0))
    if diff[j] == 0 or j == 0:
        return float(r.fmr[j]), float(r.thresholds[j])
    i = j - 1
    a = diff[i] / (diff[i] - diff[j])
    rate = r.fmr[i] + a * (r.fmr[j] - r.fmr[i])
    t_hi = r.thresholds[i] if np.isfinite(r.thresholds[i]) else r.thresholds[j]
    threshold = t_hi + a * (r.thresholds[j] - t_hi)
    return float(rate), float(threshold)


# -- LFW-style accuracy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KFoldAccuracy:
    mean: float
    std: float
    per_fold: np.ndarray
    thresholds: np.ndarray


def best_accuracy_threshold(scores, same) -> float:
    """The threshold that maximises accuracy on these pairs.

    Candidates are the midpoints between consecutive distinct scores plus one below the lowest and one
    above the highest, so no score sits exactly on a candidate. Among equally accurate candidates the
    median one is taken (the middle of the best plateau when it is one run)."""
    s, y = _as_labels(scores, same)
    u = np.unique(s)
    candidates = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1.0]])
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # correct(t) = #genuine with s >= t + #impostor with s < t
    below = np.searchsorted(s_sorted, candidates, side="left")  # pairs with s < t
    genuine_below = np.concatenate([[0], np.cumsum(y_sorted)])[below]
    impostor_below = below - genuine_below
    correct = (y.sum() - genuine_below) + impostor_below
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[(best.size - 1) // 2]])


def kfold_accuracy(scores, same, folds, *, failed=None) -> KFoldAccuracy:
    """Accuracy with the LFW protocol: for each fold, the threshold is fitted (best accuracy) on the
    other folds and the accuracy is measured on this one.

    `failed` (optional bool per pair) marks comparisons that could not be made (no face found in one of
    the images). They take no part in fitting thresholds and count as wrong decisions in the fold they
    belong to, so a pipeline cannot look better by failing on hard images.
    """
    raw = np.asarray(scores, dtype=np.float64).ravel()
    bad = np.zeros(raw.shape, bool) if failed is None else np.asarray(failed, dtype=bool).ravel()
    if bad.shape != raw.shape:
        raise ValueError(f"scores has {raw.size} entries but failed has {bad.size}")
    # a failed comparison has no score (often NaN); its placeholder never reaches a threshold fit
    s, y = _as_labels(np.where(bad, 0.0, raw), same)
    f = np.asarray(folds).ravel()
    if f.shape != s.shape:
        raise ValueError(f"scores has {s.size} entries but folds has {f.size}")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError("k-fold accuracy needs at least 2 folds")
    per_fold, thresholds = [], []
    for k in fold_ids:
        test = f == k
        train = ~test & ~bad
        if not train.any():
            raise ValueError(f"fold {k}: no usable training pairs in the other folds")
        t = best_accuracy_threshold(s[train], y[train])
        decided = test & ~bad
        correct = int(np.sum((s[decided] >= t) == y[decided]))
        per_fold.append(correct / int(test.sum()))
        thresholds.append(t)
    acc = np.asarray(per_fold)
    return KFoldAccuracy(mean=float(acc.mean()), std=float(acc.std()), per_fold=acc,
                         thresholds=np.asarray(thresholds))


# -- score fusion ----------------------------------------------------------------------------------------------


def newton_logistic(design: np.ndarray, target: np.ndarray, penalty: np.ndarray, *,
                    iterations: int = 100) -> np.ndarray:
    """Coefficients of a logistic regression of `target` (0/1) on the columns of `design`, with the
    quadratic penalty coef @ penalty @ coef / 2, by Newton's method (deterministic)."""
    coef = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ coef, -30, 30)))
        gradient = design.T @ (p - target) + penalty @ coef
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        coef -= step
        if np.abs(step).max() < 1e-10:
            break
    return coef


def logistic_fusion_weights(score_columns, same, *, iterations: int = 100) -> np.ndarray:
    """Weights for a linear fusion of several scores, fitted by linear logistic regression.

    `score_columns` is (comparisons, systems). Logistic regression of `same` on the scores (Newton's
    method, as the FoCal/BOSARIS tools fuse speaker-recognition systems) uses every comparison, not
    only those near one threshold, so the weights are far steadier on small sets than picking the
    weight with the best accuracy. Returned: the coefficients scaled to sum to 1 (the offset is
    dropped; thresholds are fitted on the fused score afterwards)."""
    x = np.asarray(score_columns, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("score_columns must be (comparisons, systems) with at least two systems")
    s, y = _as_labels(x[:, 0], same)
    _split(s, y)  # both classes present
    if np.isnan(x).any():
        raise ValueError("score_columns contains NaN")
    design = np.column_stack([x, np.ones(len(x))])
    # A tiny ridge keeps Newton's step defined when the classes separate.
    coef = newton_logistic(design, y.astype(np.float64), 1e-6 * np.eye(design.shape[1]), iterations=iterations)
    weights = coef[:-1]
    if weights.sum() <= 0:
        raise ValueError("the fitted weights do not sum to a positive number: these scores do not separate "
                         "genuine from impostor comparisons")
    return weights / weights.sum()


# -- uncertainty -----------------------------------------------------------------------------------------------


def bootstrap_ci(statistic: Callable[..., float], *arrays, n: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of statistic(*arrays), resampling the rows of all arrays together.

    Resamples on which the statistic cannot be computed (it raises ValueError, e.g. a resample without
    impostor pairs) or is NaN are skipped; if fewer than half succeed a ValueError says so. Rows are
    treated as independent; comparisons that share a person are not, so the interval is somewhat too
    narrow for pair lists built from few people.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    cols = [np.asarray(a) for a in arrays]
    m = len(cols[0])
    if m == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if any(len(c) != m for c in cols):
        raise ValueError("bootstrap_ci: all arrays must have the same length")
    if not (0.0 < level < 1.0):
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    if n < 1:
        raise ValueError("bootstrap_ci needs n >= 1 resamples")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, m, size=m)
        try:
            v = float(statistic(*(c[idx] for c in cols)))
        except ValueError:
            continue
        if not math.isnan(v):
            values.append(v)
    if len(values) < max(1, n // 2):
        raise ValueError(f"the statistic could be computed on only {len(values)} of {n} bootstrap resamples")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Used for a rate counted at a fixed threshold (a group's FMR or FNMR): unlike the percentile bootstrap,
    it does not collapse to [0, 0] when no error was observed, which is exactly when a reader most needs
    to see how large the rate could still be (with 0 errors in n the upper end is about 3.8/n)."""
    if n <= 0:
        raise ValueError("a proportion of zero trials has no interval")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), got {successes}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def det_points(fmr: np.ndarray, fnmr: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The (FMR, FNMR) points of a curve that a DET plot on probit axes can show: rates are clipped to
    [floor, 1 - floor] so 0 and 1 stay on the axes instead of running off to infinity."""
    lo, hi = floor, 1.0 - floor
    return np.clip(fmr, lo, hi), np.clip(fnmr, lo, hi)
