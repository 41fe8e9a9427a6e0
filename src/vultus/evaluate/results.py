"""Small typed values shared by the evaluation results."""

from __future__ import annotations

import math
from dataclasses import dataclass


def _round(x: float | None, digits: int = 6) -> float | None:
    if x is None:
        return None
    if math.isinf(x) or math.isnan(x):
        return None
    return round(float(x), digits)


@dataclass(frozen=True)
class Estimate:
    """A measured value with its confidence interval (None where none could be computed) and how the
    interval was obtained."""

    value: float
    low: float | None = None
    high: float | None = None
    method: str = ""

    def to_dict(self) -> dict:
        return {"value": _round(self.value), "ci_low": _round(self.low), "ci_high": _round(self.high),
                "ci_method": self.method}

    def fmt(self, percent: bool = False, digits: int = 4) -> str:
        if percent:
            v = f"{100 * self.value:.2f}%"
            ci = f" [{100 * self.low:.2f}, {100 * self.high:.2f}]" if self.low is not None else ""
        else:
            v = f"{self.value:.{digits}g}"
            ci = f" [{self.low:.{digits}g}, {self.high:.{digits}g}]" if self.low is not None else ""
        return v + ci


def rate_label(rate: float) -> str:
    """1e-3 -> '1e-03' style labels that sort and read the same everywhere."""
    return f"{rate:.0e}"
