"""Is the calibration right for these photos? The collection's own impostor pairs.

A collection's stated rates come from the embedder's calibration, measured on
LFW's photos. On other photos they can be far off: on LFW photos turned grey and
shrunk to 40 pixels, SFace's threshold for a false-match rate of 1e-3 gave 4e-3
(bench/results/identify.md). The collection's enrolled people give impostor pairs
for free: every pair of faces of two different enrolled people is a comparison
that must not match. Pairs of faces of one person are never used. The count
assumes that two names are two people: the same person enrolled under two names
makes their pairs look like impostors that match, so the measured rate reads too
high (the check errs towards warning, the refit towards a stricter threshold).

Check (`vultus gallery stats`). The share of impostor pairs at or above a
threshold is the measured false-match rate there, with a Wilson 95% interval.
It is measured at the collection's own threshold when the calibration expects at
least CHECK_MIN_EXPECTED pairs above it, otherwise at the calibration's lowest rung
where it does (a rate of f can only be checked with about 10/f pairs). The stated
rates are called likely optimistic when the interval's lower end is above the
stated rate and the measured rate is at least WARN_RATIO times it. The interval
treats pairs as independent; they share faces and people, so it is somewhat too
narrow, which is one reason the warning also asks for a factor of 1.5.

Refit (`vultus gallery calibrate`). The per-comparison FMR curve is measured on
the same pairs: rungs at the rates where 10, 20, 40... pairs (MIN_RUNG_PAIRS and
its doublings, up to a rate of TOP_RATE) lie above the threshold, so the lowest
rung is the lowest rate they measure (10 / pairs). Below that rung the curve
takes the shape of the embedder's shipped calibration, anchored at the lowest
measured rung (see fit); a decision there says `extrapolated`.

How many pairs a target per-comparison rate f needs: at least 3 / f
(RULE_OF_THREE: with 3/f pairs and none above a threshold, its rate is below f
with 95% confidence, the least that says anything about f); the lowest measured
rung, 10 / pairs, is then within a factor 10/3 of f, so the stretch that follows
the shipped curve's shape is short. With 10 / f pairs or more the threshold at f
is measured directly (10 pairs above it; the rate's 95% interval is about 0.5x
to 1.8x). With an FPIR target p and n enrolled faces, f is about p / n while one
face per person gives n^2 / 2 pairs: 3 / f pairs need about 6 / p faces (600 for
FPIR 1%, 6,000 for 0.1%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vultus.gallery import decision as decide
from vultus.gallery.types import OwnCalibration

MIN_RUNG_PAIRS = 10  # impostor pairs above a rung's threshold for it to count as measured
RULE_OF_THREE = 3.0  # pairs needed for a target rate f: RULE_OF_THREE / f
CHECK_MIN_EXPECTED = 10  # the check measures where the calibration expects this many pairs above
WARN_RATIO = 1.5  # measured / stated at which (with the interval above the stated rate) stats warns
TOP_RATE = 1e-2  # no rate above this is fitted (beyond 40 pairs): enough scores are kept for it
# The check also uses calibration rungs up to this rate (counted exactly in the scan), so that a gallery of
# 40 people (780 pairs) can still be checked at 3e-2, the only rate its pairs can measure.
CHECK_TOP_RATE = 1e-1
STATS_MAX_FACES = 4000  # stats scores every impostor pair among at most this many faces (8M pairs)
CALIBRATE_MAX_FACES = 20000  # calibrate: 200M pairs
BLOCK = 1024
SAMPLE_SEED = 0


@dataclass(frozen=True, slots=True)
class ImpostorScores:
    """The highest impostor scores of a collection's faces (descending), and how many pairs there were."""

    pairs: int
    people: int
    faces: int
    sampled: bool  # a random sample of the people (all of their faces) rather than all of them
    tail: np.ndarray  # the highest scores, descending: at least TOP_RATE * pairs of them (or all)
    counts: dict | None = None  # {threshold: pairs at or above it}, counted in the scan for thresholds asked for

    def count_at(self, threshold: float) -> int:
        """Impostor pairs scoring at or above `threshold`: exact for the thresholds counted in the scan, and
        for any threshold at or above the lowest kept score (every rate up to TOP_RATE)."""
        if self.counts and float(threshold) in self.counts:
            return self.counts[float(threshold)]
        return int(np.searchsorted(-self.tail, -threshold, side="right"))

    def describe(self) -> str:
        how = f"a random sample of {self.people} people" if self.sampled else f"{self.people} people"
        return f"{self.pairs:,} impostor pairs among {self.faces:,} faces of {how}"


def sample_people(people: list[tuple[int, int]], max_faces: int, seed: int = SAMPLE_SEED) -> tuple[list[int], bool]:
    """(person ids, sampled): every person when their faces number at most `max_faces`, else people
    in a seeded random order until the next would pass it (the same sample on every call)."""
    if sum(n for _, n in people) <= max_faces:
        return [p for p, _ in people], False
    order = np.random.default_rng(seed).permutation(len(people))
    keep, total = [], 0
    for i in order:
        pid, n = people[int(i)]
        if total + n > max_faces and keep:
            break
        keep.append(pid)
        total += n
    return sorted(keep), True


def impostor_scores(vectors: np.ndarray, person_ids: np.ndarray, *, max_faces: int = STATS_MAX_FACES,
                    seed: int = SAMPLE_SEED, thresholds=()) -> ImpostorScores:
    """Score every pair of faces of different people (pairs within a person are skipped); above
    `max_faces` faces, every pair among the faces of a random sample of people. The pairs at or above
    each of `thresholds` are counted exactly whatever the rate (ImpostorScores.counts)."""
    vectors = np.asarray(vectors, np.float32)
    person_ids = np.asarray(person_ids, np.int64)
    people = np.unique(person_ids)
    sampled = False
    if len(person_ids) > max_faces:
        sampled = True
        order = np.random.default_rng(seed).permutation(people)
        counts = dict(zip(*np.unique(person_ids, return_counts=True), strict=True))
        keep, total = [], 0
        for p in order:
            if total + counts[p] > max_faces and keep:
                break
            keep.append(p)
            total += counts[p]
        rows = np.isin(person_ids, keep)
        vectors, person_ids, people = vectors[rows], person_ids[rows], np.array(sorted(keep))
    n = len(person_ids)
    _, per_person = np.unique(person_ids, return_counts=True)
    pairs = n * (n - 1) // 2 - int((per_person.astype(np.int64) * (per_person - 1) // 2).sum())
    keep_n = max(1000, int(math.ceil(TOP_RATE * pairs)) + 1)
    tail = np.zeros(0, np.float32)
    floor = -np.inf
    ts = sorted({float(t) for t in thresholds})
    counts = dict.fromkeys(ts, 0)
    for s in range(0, n, BLOCK):
        e = min(n, s + BLOCK)
        sims = vectors[s:e] @ vectors[s:].T  # rows s..e against columns s..n: the upper triangle
        upper = np.arange(s, n)[None, :] > np.arange(s, e)[:, None]
        other = person_ids[s:e, None] != person_ids[None, s:]
        if ts:  # only the pairs at or above the lowest threshold matter (about 10% at the 1e-1 rung)
            above = np.sort(sims[upper & other & (sims >= ts[0])].astype(np.float64))
            for t in ts:
                counts[t] += int(above.size - np.searchsorted(above, t, side="left"))
        vals = sims[upper & other & (sims >= floor)]
        if vals.size:
            tail = np.concatenate([tail, vals])
            if tail.size > keep_n:
                tail = np.partition(tail, tail.size - keep_n)[tail.size - keep_n:]
                floor = float(tail.min())
    return ImpostorScores(pairs=pairs, people=len(people), faces=n, sampled=sampled,
                          tail=np.sort(tail)[::-1].astype(np.float64), counts=counts or None)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of k successes in n trials (not [0, 0] when k is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class CheckPoint:
    """The calibration's rate at one threshold against the collection's own impostor pairs."""

    threshold: float
    stated_fmr: float
    pairs_above: int
    measured_fmr: float
    low: float  # Wilson 95% interval of the measured rate
    high: float
    at_decision: bool  # this is the collection's own threshold (else a calibration rung)

    @property
    def ratio(self) -> float:
        return self.measured_fmr / self.stated_fmr if self.stated_fmr else float("nan")

    def to_dict(self) -> dict:
        return {"threshold": round(self.threshold, 4), "stated_false_match_rate": self.stated_fmr,
                "pairs_above": self.pairs_above, "measured_false_match_rate": self.measured_fmr,
                "interval_95": [self.low, self.high], "measured_over_stated": round(self.ratio, 3),
                "at_decision_threshold": self.at_decision}


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """How the collection's own impostor pairs compare with the rates its decision states."""

    pairs: int
    people: int
    faces: int
    sampled: bool
    source: str  # the calibration checked (its source line)
    points: tuple[CheckPoint, ...]  # every checkable threshold, the decision's first when checkable
    verdict: CheckPoint | None  # the point the verdict rests on; None: too few pairs to check anything
    optimistic: bool  # the stated rates are likely optimistic (see the module's docstring)
    conservative: bool  # the measured rate is clearly below the stated one
    message: str
    measured_fpir: float | None = None  # FPIR implied by the measured rate, when checked at the decision

    def to_dict(self) -> dict:
        return {"impostor_pairs": self.pairs, "people": self.people, "faces": self.faces, "sampled": self.sampled,
                "calibration": self.source, "optimistic": self.optimistic, "conservative": self.conservative,
                "message": self.message, "verdict": self.verdict.to_dict() if self.verdict else None,
                "points": [p.to_dict() for p in self.points],
                "implied_false_positive_identification_rate": self.measured_fpir}


def _point(scores: ImpostorScores, threshold: float, stated: float, at_decision: bool) -> CheckPoint:
    k = scores.count_at(threshold)
    lo, hi = wilson(k, scores.pairs)
    return CheckPoint(float(threshold), float(stated), k, k / scores.pairs if scores.pairs else 0.0, lo, hi,
                      at_decision)


def check(scores: ImpostorScores, calibration_points: list[dict], decision, source: str) -> CalibrationCheck:
    """Compare the collection's impostor scores with the calibration at the decision's threshold and at
    the calibration's rungs (those the pairs can measure)."""
    n = scores.pairs
    points = []
    counted = set(scores.counts or ())

    def measurable(threshold: float, rate: float) -> bool:
        return rate * n >= CHECK_MIN_EXPECTED and (rate <= TOP_RATE or float(threshold) in counted)

    if decision is not None and measurable(decision.threshold, decision.fmr):
        points.append(_point(scores, decision.threshold, decision.fmr, True))
    for rung in sorted(calibration_points, key=lambda p: -p["fmr"]):
        if rung["fmr"] <= CHECK_TOP_RATE and measurable(rung["threshold"], rung["fmr"]):
            points.append(_point(scores, rung["threshold"], rung["fmr"], False))
    base = dict(pairs=n, people=scores.people, faces=scores.faces, sampled=scores.sampled, source=source)
    if not points:
        lowest = min((p["fmr"] for p in calibration_points), default=decision.fmr if decision else TOP_RATE)
        need = int(math.ceil(CHECK_MIN_EXPECTED / max(min(TOP_RATE, decision.fmr if decision else TOP_RATE),
                                                       lowest)))
        return CalibrationCheck(points=(), verdict=None, optimistic=False, conservative=False,
                                message=(f"too few impostor pairs to check the calibration: {scores.describe()}; "
                                         f"a false-match rate of {CHECK_TOP_RATE:g} needs about "
                                         f"{int(CHECK_MIN_EXPECTED / CHECK_TOP_RATE):,} and this decision's rate "
                                         f"about {need:,} (enroll more people)"), **base)
    at = [p for p in points if p.at_decision]
    verdict = at[0] if at else min(points, key=lambda p: p.stated_fmr)
    optimistic = verdict.low > verdict.stated_fmr and verdict.ratio >= WARN_RATIO
    conservative = verdict.high < verdict.stated_fmr and verdict.ratio <= 1 / WARN_RATIO
    where = ("at this collection's threshold" if verdict.at_decision
             else f"at the calibration's rung for {verdict.stated_fmr:.2g} (threshold {verdict.threshold:.4f}; "
                  f"the decision's own rate, {decision.fmr:.2g}, is too rare to measure on these pairs)"
             if decision is not None else f"at the calibration's rung for {verdict.stated_fmr:.2g}")
    measured = (f"{verdict.pairs_above:,} of {n:,} impostor pairs reach it: a false-match rate of "
                f"{verdict.measured_fmr:.2g} (95% interval {verdict.low:.2g} to {verdict.high:.2g}) where "
                f"{source} states {verdict.stated_fmr:.2g}, {verdict.ratio:.2f}x")
    implied = None
    if verdict.at_decision and decision is not None and decision.comparisons:
        implied = decide.fpir_for_fmr(verdict.measured_fmr, decision.comparisons)
    if optimistic:
        fpir = (f"; a face of someone never enrolled may be named as somebody about {100 * implied:.2g}% of the "
                f"time, not the stated {100 * decision.expected_fpir:.2g}%" if implied is not None else
                "; the stated identification rate is then likely optimistic by a similar factor")
        message = (f"the stated rates are likely optimistic for these photos: {where}, {measured}{fpir}. "
                   "`vultus gallery calibrate` refits the threshold from this collection's own pairs")
    elif conservative:
        message = f"the stated rates are likely conservative for these photos: {where}, {measured}"
    else:
        message = f"the calibration agrees with these photos: {where}, {measured}"
    return CalibrationCheck(points=tuple(points), verdict=verdict, optimistic=optimistic, conservative=conservative,
                            message=message, measured_fpir=implied, **base)


def pairs_needed(target_fmr: float) -> int:
    """Impostor pairs calibrate needs to refit at a per-comparison rate (RULE_OF_THREE / rate)."""
    return int(math.ceil(RULE_OF_THREE / target_fmr))


def faces_needed(target_fpir: float | None, target_fmr: float | None, aggregation: str = "max") -> int:
    """About how many faces, one per person, give enough pairs for the target."""
    n = 2
    while n < 10_000_000:
        rate = target_fmr if target_fpir is None else decide.fmr_for_fpir(target_fpir, n)
        if n * (n - 1) // 2 >= pairs_needed(rate):
            return n
        n = int(n * 1.05) + 1
    return n


def fit(scores: ImpostorScores, measured_at: str, reference: list[dict] | None = None,
        reference_source: str = "") -> OwnCalibration:
    """The per-comparison FMR curve measured on the collection's impostor pairs: rungs at the rates with
    MIN_RUNG_PAIRS, twice, four times... as many pairs above their threshold, up to TOP_RATE (and at
    least three rungs when there are 4 x MIN_RUNG_PAIRS pairs or more), so the lowest rung is the
    lowest rate the pairs measure.

    Below that rung, with a `reference` calibration (the embedder's), the curve follows the reference's
    shape anchored at the lowest measured rung: the threshold at a rarer rate f is the lowest rung's plus
    how much the reference's threshold rises from that rung's rate to f. The shipped curve rests on
    millions of pairs; a slope fitted through rungs of 10 to 40 pairs is noise (on LFW it put FPIR 1%
    targets at 1.9% with 1,000 people; bench/results/identify.md). Without a reference,
    decision.threshold_for_fmr extends the measured rungs as an exponential."""
    n = scores.pairs
    top = max(TOP_RATE * n, 4 * MIN_RUNG_PAIRS)
    rungs: list[tuple[float, float]] = []
    k = MIN_RUNG_PAIRS
    while k <= top and k < len(scores.tail) and k < n:
        t = float(np.nextafter(scores.tail[k], np.inf))  # k pairs above, the (k+1)-th not: rate k / n
        if not rungs or t < rungs[-1][1]:  # tied scores give no lower threshold: skip the rung
            rungs.append((k / n, t))
        k *= 2
    measured_to = rungs[0][0] if rungs else 1.0  # the first rung (10 pairs above) is the rarest rate
    tail = ""
    if rungs and reference:
        f_low, t_low = rungs[0]
        base = decide.threshold_for_fmr(reference, f_low).threshold
        for p in sorted(reference, key=lambda p: -p["fmr"]):
            if p["fmr"] < f_low / 1.5:  # a rung well below the lowest measured one
                rise = decide.threshold_for_fmr(reference, p["fmr"]).threshold - base
                rungs.append((float(p["fmr"]), min(1.0, t_low + max(0.0, rise))))
        tail = reference_source
    return OwnCalibration(points=tuple(sorted(rungs, reverse=True)), pairs=n, people=scores.people,
                          faces=scores.faces, sampled=scores.sampled, measured_at=measured_at,
                          measured_to=measured_to, tail=tail)
