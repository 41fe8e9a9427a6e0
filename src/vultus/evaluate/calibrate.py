"""Calibration on a user's own data: the threshold that gives a target false-match rate there.

Two designs:
- *pairs*: a CSV of labelled pairs; the threshold rests on its impostor pairs and its interval is a
  bootstrap over pairs.
- *people*: a folder with one sub-folder per person; every pair of photos of different people is an
  impostor comparison and every pair of photos of one person a genuine one. The comparisons share
  photos and people, so pairs are not independent: the interval comes from a bootstrap over *people*
  (each resample draws people with replacement and weighs every comparison by how often both of its
  people were drawn), which is the honest spread for "another set of people like these".

The threshold is the smallest one whose measured FMR is at most the target (metrics.threshold_at_fmr),
and `resolvable` says whether there are enough impostor comparisons (at least 1/target) for it to mean
anything. Failed photos (no face) are reported; they take part in no comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.metrics import bootstrap_ci, resolvable, tar_at_fmr, threshold_at_fmr
from vultus.evaluate.results import Estimate, _round, rate_label

_COUNT_EPS = 1e-9


@dataclass(frozen=True)
class CalibrationPoint:
    target_fmr: float
    threshold: float
    threshold_ci: tuple[float, float] | None
    achieved_fmr: float  # the FMR the threshold gives on this data (<= target)
    tar: Estimate  # genuine comparisons accepted at the threshold
    n_impostor: int
    n_genuine: int
    resolvable: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"target_fmr": self.target_fmr, "threshold": _round(self.threshold),
                "threshold_ci": [_round(v) for v in self.threshold_ci] if self.threshold_ci else None,
                "achieved_fmr": _round(self.achieved_fmr, 9), "tar": self.tar.to_dict(),
                "n_impostor": self.n_impostor, "n_genuine": self.n_genuine, "resolvable": self.resolvable,
                "note": self.note}


@dataclass(frozen=True)
class CalibrationReport:
    source: str
    model: str
    detector: str
    design: str  # "pairs" or "people"
    n_images: int
    n_failed_images: int
    n_people: int | None
    n_genuine: int
    n_impostor: int
    points: list[CalibrationPoint]
    ci_method: str
    notes: list[str] = field(default_factory=list)
    failed_images: dict[str, str] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    # scores for the histogram: all genuine, and the impostor scores (all, or a sample plus the upper tail)
    genuine_scores: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    impostor_scores: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def to_dict(self) -> dict:
        return {"kind": "calibration", "source": self.source, "model": self.model, "detector": self.detector,
                "design": self.design, "n_images": self.n_images, "n_failed_images": self.n_failed_images,
                "n_people": self.n_people, "n_genuine": self.n_genuine, "n_impostor": self.n_impostor,
                "points": [p.to_dict() for p in self.points], "ci_method": self.ci_method, "notes": self.notes,
                "failed_images": self.failed_images, "timing_s": {k: _round(v, 3) for k, v in self.timing.items()}}


def _note(n_imp: int, target: float) -> str:
    if resolvable(n_imp, target):
        return ""
    return (f"only {n_imp} impostor comparisons: an FMR of {target:g} needs at least {int(round(1 / target))}; "
            "the threshold is just above the highest impostor score and guarantees nothing at this rate")


def calibrate_pairs(scores: np.ndarray, same: np.ndarray, failed: np.ndarray, targets, *, n_boot: int = 1000,
                    seed: int = 0) -> tuple[list[CalibrationPoint], str]:
    """Threshold per target FMR from labelled pairs; failed pairs are left out of the fit (and reported)."""
    ok = ~np.asarray(failed, bool)
    s, y = np.asarray(scores, np.float64)[ok], np.asarray(same, bool)[ok]
    n_gen, n_imp = int(y.sum()), int((~y).sum())
    if n_imp == 0:
        raise VultusError("no impostor pairs could be compared: a false-match rate cannot be calibrated")
    points = []
    imp = s[~y]
    for target in targets:
        t = threshold_at_fmr(imp, target)
        achieved = float(np.mean(imp >= t))
        t_ci = bootstrap_ci(lambda x, f=target: threshold_at_fmr(x, f), imp, n=n_boot, seed=seed)
        if n_gen:
            tar = float(np.mean(s[y] >= t))
            lo, hi = bootstrap_ci(lambda a, b, f=target: tar_at_fmr(a, b, f).tar, s, y, n=n_boot, seed=seed)
            tar_e = Estimate(tar, lo, hi, f"bootstrap over pairs, {n_boot} resamples, 95%")
        else:
            tar_e = Estimate(float("nan"))
        points.append(CalibrationPoint(float(target), t, t_ci, achieved, tar_e, n_imp, n_gen,
                                       resolvable(n_imp, target), _note(n_imp, target)))
    return points, f"bootstrap over pairs, {n_boot} resamples, 95%"


# -- all pairs of a folder of people -------------------------------------------------------------------------


@dataclass(frozen=True)
class AllPairs:
    """Every comparison among photos of people: genuine scores in full, impostor scores as an exact upper
    tail (enough for the smallest threshold asked for, with room for the bootstrap) plus a random sample
    (for the histogram)."""

    genuine: np.ndarray
    genuine_person: np.ndarray  # person index of each genuine comparison
    tail: np.ndarray  # the highest impostor scores, descending
    tail_a: np.ndarray  # person index of each tail comparison's two photos
    tail_b: np.ndarray
    n_impostor: int
    sample: np.ndarray  # uniform sample of impostor scores
    photos_per_person: np.ndarray  # usable photos per person


def all_pairs(vectors: np.ndarray, person: np.ndarray, tail_size: int, *, block: int = 2048,
              sample_size: int = 200_000, seed: int = 0) -> AllPairs:
    """Score every pair of usable photos (rows of `vectors` with a person index each), in blocks."""
    rng = np.random.default_rng(seed)
    v = vectors.astype(np.float32)
    n = v.shape[0]
    counts = np.bincount(person, minlength=int(person.max()) + 1 if n else 0)
    n_imp = int((counts.sum() ** 2 - np.sum(counts.astype(np.int64) ** 2)) // 2)
    tail_size = max(1, min(tail_size, n_imp))
    keep_rate = min(1.0, sample_size / max(1, n_imp))
    gen, gen_p = [], []
    tail_s = np.zeros(0, np.float32)
    tail_a = tail_b = np.zeros(0, np.int64)
    sample = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = v[start:stop] @ v[start:].T  # rows start..stop against columns start..n: upper triangle only
        r, c = np.triu_indices(stop - start, k=1, m=n - start)
        s = sims[r, c]
        pa, pb = person[start + r], person[start + c]
        same = pa == pb
        gen.append(s[same])
        gen_p.append(pa[same])
        imp_s, imp_a, imp_b = s[~same], pa[~same], pb[~same]
        if keep_rate < 1.0:
            sample.append(imp_s[rng.random(imp_s.size) < keep_rate])
        else:
            sample.append(imp_s)
        if imp_s.size > tail_size:
            top = np.argpartition(-imp_s, tail_size - 1)[:tail_size]
            imp_s, imp_a, imp_b = imp_s[top], imp_a[top], imp_b[top]
        tail_s = np.concatenate([tail_s, imp_s])
        tail_a, tail_b = np.concatenate([tail_a, imp_a]), np.concatenate([tail_b, imp_b])
        if tail_s.size > tail_size:
            top = np.argpartition(-tail_s, tail_size - 1)[:tail_size]
            tail_s, tail_a, tail_b = tail_s[top], tail_a[top], tail_b[top]
    order = np.argsort(-tail_s, kind="stable")
    return AllPairs(genuine=np.concatenate(gen) if gen else np.zeros(0, np.float32),
                    genuine_person=np.concatenate(gen_p) if gen_p else np.zeros(0, np.int64),
                    tail=tail_s[order].astype(np.float64), tail_a=tail_a[order], tail_b=tail_b[order],
                    n_impostor=n_imp, sample=np.concatenate(sample) if sample else np.zeros(0, np.float32),
                    photos_per_person=counts)


def _weighted_threshold(tail: np.ndarray, w_pair: np.ndarray, total: float, target: float) -> float | None:
    """Smallest threshold whose weighted share of impostor comparisons at or above it is <= target, or None
    when the tail is too short to tell."""
    allowed = target * total
    cum = np.cumsum(w_pair)
    # comparisons tied with the first score past the allowance are rejected together (as in threshold_at_fmr)
    k = int(np.searchsorted(cum, allowed + _COUNT_EPS * max(1.0, total), side="right"))
    if k >= tail.size:
        return None
    return float(np.nextafter(tail[k], np.inf))


def calibrate_people(pairs: AllPairs, targets, *, n_boot: int = 1000, seed: int = 0) -> tuple[list[CalibrationPoint],
                                                                                            str, list[str]]:
    """Thresholds from all pairs of a folder of people, with a bootstrap over people."""
    notes: list[str] = []
    n_imp, n_gen = pairs.n_impostor, int(pairs.genuine.size)
    if n_imp == 0:
        raise VultusError("no impostor comparisons: calibration needs photos of at least two people")
    counts = pairs.photos_per_person.astype(np.float64)
    n_people = int(np.sum(counts > 0))
    people = np.flatnonzero(counts > 0)
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_boot, counts.size))
    for b in range(n_boot):
        drawn = rng.choice(people, size=people.size, replace=True)
        weights[b] = np.bincount(drawn, minlength=counts.size)
    points = []
    short = 0
    for target in targets:
        k = int(math.floor(target * n_imp + _COUNT_EPS))
        if k >= pairs.tail.size:
            raise VultusError(f"internal: impostor tail of {pairs.tail.size} too short for FMR {target:g}")
        t = float(np.nextafter(pairs.tail[k], np.inf))
        achieved = float(np.sum(pairs.tail >= t) / n_imp)
        tar = float(np.mean(pairs.genuine >= t)) if n_gen else float("nan")
        ts, tars = [], []
        for w in weights:
            wc = w * counts
            total = (wc.sum() ** 2 - np.sum(wc ** 2)) / 2.0
            if total <= 0:
                continue
            tb = _weighted_threshold(pairs.tail, w[pairs.tail_a] * w[pairs.tail_b], total, target)
            if tb is None:
                short += 1
                continue
            ts.append(tb)
            if n_gen:
                wg = w[pairs.genuine_person]
                if wg.sum() > 0:
                    tars.append(float(np.sum(wg * (pairs.genuine >= tb)) / wg.sum()))
        t_ci = (float(np.quantile(ts, 0.025)), float(np.quantile(ts, 0.975))) if len(ts) >= n_boot // 2 else None
        tar_ci = (float(np.quantile(tars, 0.025)), float(np.quantile(tars, 0.975))) if len(tars) >= n_boot // 2 \
            else (None, None)
        points.append(CalibrationPoint(float(target), t, t_ci, achieved,
                                       Estimate(tar, tar_ci[0], tar_ci[1], f"bootstrap over people, {n_boot} "
                                                "resamples, 95%"), n_imp, n_gen, resolvable(n_imp, target),
                                       _note(n_imp, target)))
    if short:
        notes.append(f"{short} bootstrap resamples fell beyond the stored impostor tail and were skipped")
    if n_people < 30:
        notes.append(f"only {n_people} people: the interval from a bootstrap over so few people is rough")
    return points, f"bootstrap over people ({n_people}), {n_boot} resamples, 95%", notes


def tail_size_for(targets, n_impostor: int) -> int:
    """Impostor scores to keep: three times what the largest target allows (bootstrap resamples can need
    more than the data's own count) plus a margin."""
    return int(3 * max(targets) * n_impostor) + 1000


# -- output --------------------------------------------------------------------------------------------------


def calibration_sections(rep: CalibrationReport) -> list[str]:
    from vultus.evaluate import plots
    from vultus.evaluate.report import _draw, figure, table, warnings_html

    rows = []
    for p in rep.points:
        ci = f"[{p.threshold_ci[0]:.4f}, {p.threshold_ci[1]:.4f}]" if p.threshold_ci else "n/a"
        tar = "" if math.isnan(p.tar.value) else (f"{100 * p.tar.value:.2f}%" + (
            f" [{100 * p.tar.low:.2f}, {100 * p.tar.high:.2f}]" if p.tar.low is not None else ""))
        rows.append((rate_label(p.target_fmr), f"{p.threshold:.4f}", ci, f"{p.achieved_fmr:.2e}", tar, p.n_impostor,
                     p.n_genuine, "yes" if p.resolvable else "NOT RESOLVABLE", p.note))
    out = [f"<h2>Thresholds</h2><p>{rep.n_images} photos ({rep.n_failed_images} failed), "
           f"{rep.n_genuine} genuine and {rep.n_impostor} impostor comparisons; design: {rep.design}. "
           f"Intervals: {rep.ci_method}.</p>"
           + table(["target FMR", "threshold", "95% CI", "measured FMR", "TAR [95% CI]", "impostor", "genuine",
                    "resolvable", "note"], rows)]
    png = _draw(plots.histogram_png, rep.genuine_scores, rep.impostor_scores,
                [(f"FMR {rate_label(p.target_fmr)}", p.threshold) for p in rep.points])
    out.append(figure(png, "similarity of genuine and impostor comparisons"
                      + (" (impostors: a uniform sample)" if rep.design == "people" else "")))
    if rep.notes:
        out.append("<h2>Notes</h2>" + warnings_html(rep.notes))
    if rep.failed_images:
        out.append("<h2>Images that failed</h2>" + table(["image", "why"], list(rep.failed_images.items())[:100],
                                                          numeric_from=9))
    return out


def _gallery_class():
    try:
        from vultus.gallery import Gallery
    except ImportError:
        raise VultusError("this build of vultus has no gallery (vultus.gallery.Gallery) to store a threshold "
                          "on") from None
    return Gallery


def check_collection(collection: str, *, model: str, detector: str, gallery_path=None) -> None:
    """Fail before measuring anything when the threshold could not be stored on `collection`."""
    with _gallery_class()(gallery_path) as gallery:
        coll = gallery.collection(collection)
        if coll.contract.name != model:
            raise VultusError(f"collection {collection!r} holds {coll.contract.name} embeddings; calibrate with "
                              f"--embedder {coll.contract.name}")
        if coll.detector != detector:
            raise VultusError(f"collection {collection!r} uses the {coll.detector} detector; calibrate with "
                              f"--detector {coll.detector}")


def store_on_collection(rep: CalibrationReport, collection: str, *, gallery_path=None) -> dict:
    """Pin the calibrated threshold (the first target FMR) on a gallery collection, so that identification
    in that collection uses it. Refuses a threshold the data cannot support, or one measured with another
    embedder or detector than the collection's."""
    point = rep.points[0]
    if not point.resolvable:
        raise VultusError(f"not storing: {point.note}")
    check_collection(collection, model=rep.model, detector=rep.detector, gallery_path=gallery_path)
    with _gallery_class()(gallery_path) as gallery:
        source = (f"vultus calibrate {rep.source}: {point.n_impostor} impostor comparisons, 95% CI "
                  + (f"[{point.threshold_ci[0]:.4f}, {point.threshold_ci[1]:.4f}]" if point.threshold_ci else "n/a"))
        gallery.set_threshold(collection, point.threshold, point.target_fmr, source)
        where = gallery.location
    return {"collection": collection, "threshold": point.threshold, "fmr": point.target_fmr, "gallery": where,
            "source": source}
