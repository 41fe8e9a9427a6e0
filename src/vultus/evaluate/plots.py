"""Figures for the reports, drawn with matplotlib's Agg backend into PNG bytes (no display, no network)."""

from __future__ import annotations

import io

import numpy as np

from vultus.errors import VultusError

# Probit-axis ticks for DET plots, as in NIST reports.
DET_TICKS = [1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise VultusError("the report's figures need matplotlib: pip install 'vultus[report]'") from exc
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _tick_label(v: float) -> str:
    return f"{100 * v:g}%"


def roc_png(curves: list[tuple[str, np.ndarray, np.ndarray]], marks: list[tuple[float, float]] = (),
            xlabel: str = "false-match rate (FMR)", ylabel: str = "true-accept rate (TAR)") -> bytes:
    """ROC with a log FMR axis. curves: (label, fmr, tar)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    floor = 1.0
    for label, fmr, tar in curves:
        pos = fmr > 0
        if pos.any():
            floor = min(floor, float(fmr[pos].min()))
        ax.step(np.maximum(fmr, 1e-7), tar, where="post", label=label)
    for x, y in marks:
        ax.plot([x], [y], "o", color="black", markersize=4)
        ax.annotate(f"{100 * y:.2f}% @ {x:g}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(max(1e-6, floor / 2), 1.0)
    lo = min(float(np.min(t[f >= floor])) for _, f, t in curves) if curves else 0.0
    ax.set_ylim(max(0.0, lo - 0.02), 1.0005)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def det_png(curves: list[tuple[str, np.ndarray, np.ndarray]], xlabel: str = "false-match rate (FMR)",
            ylabel: str = "false-non-match rate (FNMR)") -> bytes:
    """DET: both error rates on normal-deviate (probit) axes. curves: (label, false-positive, false-negative)."""
    from scipy.stats import norm

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    lo_rate = 1.0
    for _, fp, fn in curves:
        pos = np.concatenate([fp[fp > 0], fn[fn > 0]])
        if pos.size:
            lo_rate = min(lo_rate, float(pos.min()))
    floor = max(1e-6, lo_rate / 2)
    for label, fp, fn in curves:
        x, y = np.clip(fp, floor, 1 - floor), np.clip(fn, floor, 1 - floor)
        ax.plot(norm.ppf(x), norm.ppf(y), label=label, drawstyle="steps-post")
    ticks = [t for t in DET_TICKS if t >= floor]
    ax.set_xticks(norm.ppf(ticks), [_tick_label(t) for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [_tick_label(t) for t in ticks])
    ax.set_xlim(norm.ppf(floor), norm.ppf(0.5))
    ax.set_ylim(norm.ppf(floor), norm.ppf(0.5))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def histogram_png(genuine: np.ndarray, impostor: np.ndarray, lines: list[tuple[str, float]] = (),
                  labels: tuple[str, str] = ("genuine (same person)", "impostor (different people)")) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    g, i = genuine[np.isfinite(genuine)], impostor[np.isfinite(impostor)]
    both = np.concatenate([g, i]) if g.size + i.size else np.zeros(1)
    bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 60)
    ax.hist(i, bins=bins, alpha=0.6, density=True, label=f"{labels[1]}, n={i.size}")
    ax.hist(g, bins=bins, alpha=0.6, density=True, label=f"{labels[0]}, n={g.size}")
    for k, (name, t) in enumerate(lines):
        ax.axvline(t, color=f"C{k + 2}", linestyle="--", linewidth=1, label=f"{name}: {t:.3f}")
    ax.set_xlabel("similarity")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return _png(fig)


def group_bars_png(title: str, groups: list[str], values: list[list[float | None]],
                   lows: list[list[float | None]], highs: list[list[float | None]], series: list[str]) -> bytes:
    """Grouped bars with interval whiskers: one series per rate (e.g. FMR, FNMR), one bar group per group."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.9 * len(groups)), 3.4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, name in enumerate(series):
        v = np.array([np.nan if a is None else a for a in values[k]], float)
        lo = np.array([np.nan if a is None else a for a in lows[k]], float)
        hi = np.array([np.nan if a is None else a for a in highs[k]], float)
        # rounding can put a Wilson bound a hair past the estimate; whiskers must not be negative
        err = np.clip(np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]), 0.0, None)
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(v), width, yerr=err, capsize=3, label=name)
    ax.set_xticks(x, groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    ax.set_ylabel("rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def cmc_png(ranks: np.ndarray, rates: np.ndarray) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.plot(ranks, rates, marker="o", markersize=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (mate at or above rank)")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)
