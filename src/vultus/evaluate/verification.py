"""1:1 verification evaluation: labelled pairs in, accuracy, ROC/DET, EER and TAR at FMR out.

Comparisons that cannot be made (an image unreadable or without a face) are never dropped:
- in the 10-fold accuracy they count as wrong decisions;
- in every rate they count as rejections (ISO/IEC 19795-1's generalised rates): a genuine pair that failed
  is a false non-match, an impostor pair that failed a correct rejection.
They get the score -inf, which no finite threshold accepts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.groups import GroupAnalysis, LabelTable, verification_groups
from vultus.evaluate.lfw import Pair
from vultus.evaluate.metrics import (
    Roc,
    best_accuracy_threshold,
    bootstrap_ci,
    eer,
    kfold_accuracy,
    resolvable,
    roc,
    tar_at_fmr,
    threshold_at_fmr,
)
from vultus.evaluate.results import Estimate, _round, rate_label

FMR_TARGETS = (1e-2, 1e-3, 1e-4)
N_FOLDS = 10

_A = ("path_a", "file_x", "image_a", "img1", "a")
_B = ("path_b", "file_y", "image_b", "img2", "b")
_SAME = ("same", "decision", "label", "is_same", "match")
_TRUE = {"1", "true", "yes", "y", "same", "t", "match", "genuine"}
_FALSE = {"0", "false", "no", "n", "different", "f", "nonmatch", "non-match", "impostor"}


def read_pairs_csv(path, *, base: Path | None = None) -> list[Pair]:
    """Pairs from a CSV with columns path_a, path_b, same (and optionally fold).

    Also reads deepface's master.csv layout (file_x, file_y, Decision Yes/No). `same` accepts 1/0,
    true/false, yes/no, same/different. Relative paths are relative to the CSV's folder (or `base`).
    Folds, when absent, are assigned at random (seeded) with genuine and impostor pairs spread evenly."""
    path = Path(path)
    if not path.is_file():
        raise VultusError(f"{path}: pairs file not found")
    base = Path(base) if base is not None else path.parent
    try:
        rows = [r for r in csv.reader(path.read_text(encoding="utf-8-sig").splitlines()) if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise VultusError(f"{path}: not a UTF-8 text file; expected a CSV with path_a,path_b,same") from None
    if not rows:
        raise VultusError(f"{path}: empty pairs file; expected a header path_a,path_b,same")
    header = [h.strip().lower() for h in rows[0]]

    def col(names, what):
        for n in names:
            if n in header:
                return header.index(n)
        raise VultusError(f"{path}:1: no {what} column in the header {rows[0]}; expected path_a,path_b,same")

    ia, ib, isame = col(_A, "first-image"), col(_B, "second-image"), col(_SAME, "same/different")
    ifold = header.index("fold") if "fold" in header else None
    pairs: list[Pair] = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) < len(header):
            raise VultusError(f"{path}:{n}: {len(r)} fields where the header has {len(header)}")
        a, b, s = r[ia].strip(), r[ib].strip(), r[isame].strip().lower()
        if not a or not b:
            raise VultusError(f"{path}:{n}: empty image path")
        if s in _TRUE:
            same = True
        elif s in _FALSE:
            same = False
        else:
            raise VultusError(f"{path}:{n}: same must be 1/0, true/false or yes/no, got {r[isame]!r}")
        fold = -1
        if ifold is not None:
            try:
                fold = int(r[ifold])
            except ValueError:
                raise VultusError(f"{path}:{n}: fold must be an integer, got {r[ifold]!r}") from None
        pa, pb = Path(a), Path(b)
        pairs.append(Pair(pa if pa.is_absolute() else base / pa, pb if pb.is_absolute() else base / pb, same, fold))
    if not pairs:
        raise VultusError(f"{path}: no pairs below the header")
    if ifold is None:
        folds = assign_folds(np.array([p.same for p in pairs]))
        pairs = [Pair(p.path_a, p.path_b, p.same, int(f)) for p, f in zip(pairs, folds, strict=True)]
    return pairs


def assign_folds(same: np.ndarray, k: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Random folds (seeded) with each class spread round-robin, so every fold gets its share of both."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(same.size, np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(same == cls)
        rng.shuffle(idx)
        folds[idx] = np.arange(idx.size) % k
    return folds


@dataclass(frozen=True)
class OperatingRate:
    """TAR at a target FMR, the threshold that gives it on this data, and whether the data can say."""

    target_fmr: float
    tar: Estimate
    threshold: float
    threshold_ci: tuple[float, float] | None
    n_impostor: int
    resolvable: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"target_fmr": self.target_fmr, "tar": self.tar.to_dict(), "fnmr": _round(1 - self.tar.value),
                "threshold": _round(self.threshold),
                "threshold_ci": [_round(v) for v in self.threshold_ci] if self.threshold_ci else None,
                "n_impostor": self.n_impostor, "resolvable": self.resolvable, "note": self.note}


@dataclass(frozen=True)
class VerificationReport:
    dataset: str
    model: str
    detector: str
    n_pairs: int
    n_genuine: int
    n_impostor: int
    n_failed_pairs: int
    failed_images: dict[str, str]
    accuracy: Estimate | None
    accuracy_std: float | None
    per_fold: list[float]
    fold_thresholds: list[float]
    eer: Estimate
    eer_threshold: float
    auc: float
    rates: list[OperatingRate]
    groups: list[GroupAnalysis] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    scores: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    same: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    failed: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    group_labels: dict | None = field(default=None, repr=False)

    @property
    def roc(self) -> Roc:
        return roc(self.scores, self.same)

    def to_dict(self) -> dict:
        r = self.roc
        keep = _thin(r.fmr, r.tar)
        return {
            "kind": "verification",
            "dataset": self.dataset, "model": self.model, "detector": self.detector,
            "n_pairs": self.n_pairs, "n_genuine": self.n_genuine, "n_impostor": self.n_impostor,
            "n_failed_pairs": self.n_failed_pairs, "failed_images": self.failed_images,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None, "accuracy_std": _round(self.accuracy_std),
            "per_fold_accuracy": [_round(v) for v in self.per_fold],
            "fold_thresholds": [_round(v) for v in self.fold_thresholds],
            "eer": self.eer.to_dict(), "eer_threshold": _round(self.eer_threshold), "auc": _round(self.auc),
            "tar_at_fmr": [x.to_dict() for x in self.rates],
            "groups": [g.to_dict() for g in self.groups],
            "roc": {"fmr": [_round(v) for v in r.fmr[keep]], "tar": [_round(v) for v in r.tar[keep]],
                    "threshold": [_round(v) for v in r.thresholds[keep]]},
            "notes": self.notes, "timing_s": {k: _round(v, 3) for k, v in self.timing.items()},
        }


def _thin(fmr: np.ndarray, tar: np.ndarray, max_points: int = 400) -> np.ndarray:
    """Indices of ROC points worth keeping in a JSON file: every corner when the curve is small,
    else points spread evenly in log(FMR) plus the ends."""
    n = fmr.size
    if n <= max_points:
        return np.arange(n)
    grid = np.concatenate([[0.0], np.logspace(-6, 0, max_points - 2)])
    idx = np.unique(np.clip(np.searchsorted(fmr, grid, side="right") - 1, 0, n - 1))
    return np.unique(np.concatenate([[0, n - 1], idx]))


def score_pairs(embedded, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, failed) for pairs over EmbeddedImages; failed pairs score -inf."""
    ia = embedded.indices([p.path_a for p in pairs])
    ib = embedded.indices([p.path_b for p in pairs])
    va, vb = embedded.vectors[ia], embedded.vectors[ib]
    scores = np.einsum("ij,ij->i", va.astype(np.float64), vb.astype(np.float64))
    failed = ~(np.isfinite(va).all(axis=1) & np.isfinite(vb).all(axis=1))
    scores[failed] = -np.inf
    return scores, failed


def evaluate_verification(scores, same, folds=None, failed=None, *, dataset: str = "", model: str = "",
                          detector: str = "", targets=FMR_TARGETS, n_boot: int = 1000, seed: int = 0,
                          labels_a: dict[str, np.ndarray] | None = None,
                          labels_b: dict[str, np.ndarray] | None = None,
                          extra_thresholds: list[tuple[str, float, float | None]] | None = None,
                          failed_images: dict[str, str] | None = None) -> VerificationReport:
    """Every verification metric with its interval.

    labels_a / labels_b: per attribute, the group of each pair's first / second image ('' unknown).
    extra_thresholds: (name, threshold, fmr) operating points to add to the per-group analysis, e.g. the
    shipped calibration's threshold."""
    scores = np.asarray(scores, np.float64).copy()
    same = np.asarray(same, bool)
    failed = np.zeros(scores.shape, bool) if failed is None else np.asarray(failed, bool)
    scores[failed] = -np.inf
    n_gen, n_imp = int(same.sum()), int((~same).sum())
    if n_gen == 0 or n_imp == 0:
        raise VultusError(f"{dataset or 'the pairs'}: need both genuine and impostor pairs "
                          f"(found {n_gen} genuine, {n_imp} impostor)")
    notes: list[str] = []
    if failed.any():
        notes.append(f"{int(failed.sum())} of {scores.size} pairs could not be compared (an image unreadable or "
                     "without a face): they count as wrong in the accuracy and as rejections in every rate")
    boot = f"bootstrap over pairs, {n_boot} resamples, 95%"

    # 10-fold accuracy (LFW protocol)
    accuracy = acc_std = None
    per_fold: list[float] = []
    fold_t: list[float] = []
    if folds is None:
        k = min(N_FOLDS, n_gen, n_imp)
        folds = assign_folds(same, k) if k >= 2 else None
        if folds is not None and k < N_FOLDS:
            notes.append(f"only {k} folds: too few pairs of one class for 10")
    if folds is not None:
        folds = np.asarray(folds)
        acc = kfold_accuracy(scores, same, folds, failed=failed)
        correct = np.zeros(scores.size, bool)
        for fid, t in zip(np.unique(folds), acc.thresholds, strict=True):
            m = folds == fid
            correct[m] = (scores[m] >= t) == same[m]
        correct &= ~failed
        if correct.all() or not correct.any():
            # a bootstrap of an error-free sample is [1, 1]: say how large the error could still be instead
            from vultus.evaluate.metrics import wilson_interval

            lo, hi = wilson_interval(int(correct.sum()), correct.size)
            accuracy = Estimate(acc.mean, lo, hi, "Wilson 95% (no errors observed, where a bootstrap collapses)")
        else:
            lo, hi = bootstrap_ci(np.mean, correct, n=n_boot, seed=seed)
            accuracy = Estimate(acc.mean, lo, hi, boot + " (decisions at the fitted fold thresholds)")
        acc_std, per_fold, fold_t = acc.std, acc.per_fold.tolist(), acc.thresholds.tolist()
    else:
        notes.append("accuracy not measured: fewer than 2 pairs of one class")

    e, e_t = eer(scores, same)
    e_lo, e_hi = bootstrap_ci(lambda s, y: eer(s, y)[0], scores, same, n=n_boot, seed=seed)
    auc = _generalised_auc(roc(scores, same))

    rates = []
    imp_scores = scores[~same]
    for target in targets:
        ra = tar_at_fmr(scores, same, target)
        lo, hi = bootstrap_ci(lambda s, y, t=target: tar_at_fmr(s, y, t).tar, scores, same, n=n_boot, seed=seed)
        t_lo, t_hi = bootstrap_ci(lambda s, t=target: threshold_at_fmr(s, t), imp_scores, n=n_boot, seed=seed)
        rates.append(OperatingRate(target, Estimate(ra.tar, lo, hi, boot), ra.threshold, (t_lo, t_hi),
                                   ra.n_negatives, ra.resolvable, _note(ra.n_negatives, target)))

    groups: list[GroupAnalysis] = []
    if labels_a:
        thresholds = [(f"FMR {rate_label(x.target_fmr)} on all pairs", x.threshold, x.target_fmr)
                      for x in rates if x.resolvable]
        ok = ~failed
        thresholds.append(("best accuracy on all pairs", best_accuracy_threshold(scores[ok], same[ok]), None))
        thresholds += list(extra_thresholds or [])
        for attr in labels_a:
            for name, t, fmr in thresholds:
                groups.append(verification_groups(scores, same, failed, labels_a[attr], labels_b[attr], attr, t,
                                                  name, fmr))
    return VerificationReport(
        dataset=dataset, model=model, detector=detector, n_pairs=int(scores.size), n_genuine=n_gen,
        n_impostor=n_imp, n_failed_pairs=int(failed.sum()), failed_images=dict(failed_images or {}),
        accuracy=accuracy, accuracy_std=acc_std, per_fold=per_fold, fold_thresholds=fold_t,
        eer=Estimate(e, e_lo, e_hi, boot), eer_threshold=e_t, auc=auc, rates=rates, groups=groups, notes=notes,
        scores=scores, same=same, failed=failed)


def _generalised_auc(r: Roc) -> float:
    """Area under the ROC where failed comparisons (score -inf) are never accepted: the curve stops at the
    lowest finite threshold and runs flat to FMR 1 instead of jumping to the (1, 1) corner."""
    finite = np.isfinite(r.thresholds)
    finite[0] = True  # the (0, 0) start at +inf
    fmr, tar = r.fmr[finite], r.tar[finite]
    return float(np.sum(np.diff(fmr) * (tar[1:] + tar[:-1]) / 2.0) + (1.0 - fmr[-1]) * tar[-1])


def _note(n_impostor: int, target: float) -> str:
    if resolvable(n_impostor, target):
        return ""
    return (f"too few impostor pairs for FMR {target:g}: {n_impostor} (need at least {int(round(1 / target))}); "
            "the threshold is just above the highest impostor score and the TAR is not a measurement at this FMR")


def pair_labels(table: LabelTable, pairs: list[Pair]) -> tuple[dict, dict]:
    a = {attr: table.column([p.path_a for p in pairs], attr) for attr in table.attributes}
    b = {attr: table.column([p.path_b for p in pairs], attr) for attr in table.attributes}
    return a, b
