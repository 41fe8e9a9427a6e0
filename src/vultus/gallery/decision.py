"""How a collection's threshold is chosen: by a false-positive identification rate
(FPIR, the default) or by a false-match rate per comparison (FMR).

FMR is what the embedder's calibration measures: the chance that ONE comparison
of two different people reaches the threshold. FPIR is what a user of an
identification system meets: the chance that a face of someone who was never
enrolled is named as SOMEBODY in the collection. A stranger is compared with
every enrolled face (best-face aggregation) or every enrolled person (mean
aggregation), so at a fixed threshold FPIR grows with the collection.

The model. With n comparisons per search and a per-comparison rate FMR(t),

    FPIR(t, n) = 1 - (1 - FMR(t)) ** n

which treats a stranger's comparisons as independent. They are not quite (a
stranger who looks like many people is a "lamb"), and at large FPIR the formula
overstates it (66% measured where it said 79% on LFW at FMR 1e-3 with 1,559
faces); at a 1% target it was within a factor of 1.2 of measurement on LFW with
100 to 1,559 people enrolled, also with a calibration that never saw them; at
0.1% within 1.5 up to 1,000 people and 2.2 (6 strangers) with 1,559
(bench/results/identify.md). A target FPIR p is
therefore met by the threshold whose FMR is 1 - (1 - p) ** (1 / n) (about p / n),
read off the embedder's calibration, and re-derived at every decision from the
collection's size at that moment: it rises as people are enrolled and falls as
they are forgotten.

Below the calibration's lowest measured rate (LFW's 29.6 million impostor pairs
measure SFace down to 1e-6, about 30 pairs; the other embedders' shipped ladders
stop at 1e-5) the impostor score tail is extended as an exponential: log(FMR)
fitted as a straight line in the threshold through the lowest three rungs. The
decision says when its rate is extrapolated. LFW's far tail is heavier than an
exponential fitted at 1e-5 (at 1e-6 the measured threshold is 0.545 where the
fit from 1e-4..1e-5 said 0.516, partly people filed under two names), which is
why SFace's ladder now goes to 1e-6: with the fit at 1e-5, FPIR 0.1% targets on
1,000+ faces were measured 2.5 to 3.3 times too high (bench/results/identify.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vultus.models.calibration import calibration_for

DEFAULT_FPIR = 0.01
TAIL_RUNGS = 3  # the lowest measured rungs the exponential tail is fitted through
TARGETS = ("fpir", "fmr")


@dataclass(frozen=True, slots=True)
class RatePoint:
    """A threshold and the per-comparison false-match rate it gives."""

    threshold: float
    fmr: float
    extrapolated: bool  # below the calibration's lowest measured rate


def fmr_for_fpir(fpir: float, comparisons: int) -> float:
    """The per-comparison FMR at which `comparisons` independent chances give `fpir`."""
    n = max(1, int(comparisons))
    return -math.expm1(math.log1p(-fpir) / n)


def fpir_for_fmr(fmr: float, comparisons: int) -> float:
    """The chance that at least one of `comparisons` comparisons reaches a threshold of rate `fmr`."""
    n = max(0, int(comparisons))
    return -math.expm1(n * math.log1p(-fmr)) if n else 0.0


def comparisons(aggregation: str, faces: int, people: int) -> int:
    """The chances a stranger has to match: one per enrolled face with best-face
    ("max") aggregation, about one per person with the mean."""
    return faces if aggregation == "max" else people


def tail_fit(points: list[dict]) -> tuple[float, float]:
    """(a, b) of log(FMR) = a + b * threshold through the lowest measured rungs."""
    low = sorted(points, key=lambda p: p["fmr"])[:TAIL_RUNGS]
    ts = [float(p["threshold"]) for p in low]
    ys = [math.log(float(p["fmr"])) for p in low]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    b = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var
    return my - b * mt, b


def threshold_for_fmr(points: list[dict], fmr: float) -> RatePoint:
    """The threshold at per-comparison rate `fmr` on a calibration ladder
    (`points`: dicts with fmr and threshold): interpolated in log(FMR) between
    rungs, extended along the exponential tail below the lowest, and held at the
    highest rung above it (the rate stated is then that rung's, not `fmr`)."""
    pts = sorted(points, key=lambda p: p["fmr"])
    lowest, highest = pts[0], pts[-1]
    if fmr >= highest["fmr"]:
        return RatePoint(float(highest["threshold"]), float(highest["fmr"]), False)
    if fmr < lowest["fmr"]:
        a, b = tail_fit(pts)
        return RatePoint(min(1.0, (math.log(fmr) - a) / b), fmr, True)
    for lo, hi in zip(pts, pts[1:], strict=False):
        if lo["fmr"] <= fmr <= hi["fmr"]:
            if hi["fmr"] == lo["fmr"]:
                return RatePoint(float(lo["threshold"]), fmr, False)
            k = (math.log(fmr) - math.log(lo["fmr"])) / (math.log(hi["fmr"]) - math.log(lo["fmr"]))
            return RatePoint(float(lo["threshold"] + k * (hi["threshold"] - lo["threshold"])), fmr, False)
    raise AssertionError("unreachable: fmr lies between the lowest and the highest rung")


def fpir_point(points: list[dict], fpir: float, comparisons_: int) -> RatePoint:
    """The threshold that gives `fpir` with this many comparisons per search."""
    return threshold_for_fmr(points, fmr_for_fpir(fpir, comparisons_))


def embedder_fpir_point(embedder: str, fpir: float, comparisons_: int) -> tuple[RatePoint, str]:
    """As fpir_point, on the embedder's shipped calibration; also its source."""
    cal = calibration_for(embedder)
    return fpir_point(cal["points"], fpir, comparisons_), cal.get("source", "LFW")
