"""Decision thresholds measured on data, never typed into code.

calibration.json (written by `python bench/lfw.py --write-calibration`) holds,
per embedder, thresholds at a ladder of false-match rates measured on LFW:
every pair of images of different people (millions of impostor pairs, so
rates down to 1e-5 rest on hundreds of comparisons) and every pair of the same
person. A threshold for a rate between two rungs is interpolated in log(FMR).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

from vultus.errors import ModelError
from vultus.types import OperatingPoint

DEFAULT_FMR = 1e-3


@lru_cache(maxsize=1)
def load_calibration() -> dict:
    try:
        text = resources.files("vultus.models").joinpath("calibration.json").read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text)


def calibration_for(embedder: str) -> dict:
    cal = load_calibration().get(embedder)
    if not cal:
        raise ModelError(f"no calibration for embedder {embedder!r} (the project's bench/lfw.py measures one)",
                         code="no_calibration", embedder=embedder)
    return cal


def operating_point(embedder: str, target_fmr: float | None = None) -> OperatingPoint:
    """The threshold whose measured false-match rate is `target_fmr` (default 1e-3)."""
    cal = calibration_for(embedder)
    target = float(target_fmr if target_fmr is not None else cal.get("default_fmr", DEFAULT_FMR))
    points = sorted(cal["points"], key=lambda p: p["fmr"])  # small fmr = high threshold first
    lowest, highest = points[0]["fmr"], points[-1]["fmr"]
    if not (lowest <= target <= highest):
        raise ModelError(
            f"target false-match rate {target:g} is outside what the {embedder} calibration measured "
            f"({lowest:g} to {highest:g}); calibrate on more data with `vultus calibrate`"
        )
    for lo, hi in zip(points, points[1:], strict=False):
        if lo["fmr"] <= target <= hi["fmr"]:
            if hi["fmr"] == lo["fmr"]:
                t = lo["threshold"]
            else:
                k = (math.log(target) - math.log(lo["fmr"])) / (math.log(hi["fmr"]) - math.log(lo["fmr"]))
                t = lo["threshold"] + k * (hi["threshold"] - lo["threshold"])
            return OperatingPoint(threshold=float(t), fmr=target, source=cal.get("source", "LFW"))
    p = points[0]
    return OperatingPoint(threshold=float(p["threshold"]), fmr=p["fmr"], source=cal.get("source", "LFW"))
