"""Self-contained HTML reports (figures embedded as base64 PNGs, no scripts, no network) and the same
numbers as JSON."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import platform
import sys
from pathlib import Path

import numpy as np

from vultus.evaluate import plots
from vultus.evaluate.results import rate_label

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1050px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.28em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#555;font-size:.9em}
.warn{background:#fff6dd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}figcaption{font-size:.85em;color:#555}
code{background:#f5f5f5;padding:0 .25em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def table(headers, rows, numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            numeric = isinstance(c, int | float) or (isinstance(c, str) and c[:1].isdigit())
            cls = ' class="num"' if i >= numeric_from and numeric else ""
            cells.append(f"<td{cls}>{_e('' if c is None else c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(png: bytes | None, caption: str) -> str:
    if png is None:
        return f'<div class="warn">figure not drawn: {_e(caption)} (matplotlib is not installed: ' \
               "pip install 'vultus[report]')</div>"
    data = base64.b64encode(png).decode()
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def warnings_html(items) -> str:
    return "".join(f'<div class="warn">{_e(w)}</div>' for w in items)


def _draw(fn, *args, **kwargs) -> bytes | None:
    if not plots.have_matplotlib():
        return None
    return fn(*args, **kwargs)


def environment() -> dict:
    from vultus import __version__

    return {"vultus": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor() or "",
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}


def page(title: str, subtitle: str, sections: list[str], env: dict) -> str:
    meta = " · ".join(f"{k}: {_e(v)}" for k, v in env.items() if v)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1><p>{_e(subtitle)}</p>"
            f"<p class='meta'>{meta}</p>{''.join(sections)}</body></html>")


def pct(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}%"


def est_pct(e, digits: int = 2) -> str:
    if e is None:
        return ""
    ci = f" [{100 * e.low:.{digits}f}, {100 * e.high:.{digits}f}]" if e.low is not None else ""
    return f"{100 * e.value:.{digits}f}%{ci}"


def rate_sci(x: float | None) -> str:
    return "" if x is None else (f"{x:.2e}" if 0 < x < 0.01 else f"{x:.4f}")


def est_rate(e) -> str:
    if e is None:
        return ""
    ci = f" [{rate_sci(e.low)}, {rate_sci(e.high)}]" if e.low is not None else ""
    return rate_sci(e.value) + ci


# -- verification --------------------------------------------------------------------------------------------


GLOSSARY_VERIFICATION = """
<h2>How to read this report</h2>
<ul>
<li><b>Genuine pair</b>: two photos of the same person; <b>impostor pair</b>: two photos of different people.
A pair is accepted as the same person when its similarity is at or above the threshold.</li>
<li><b>FMR</b> (false-match rate): share of impostor pairs accepted. <b>TAR</b> (true-accept rate): share of
genuine pairs accepted; <b>FNMR</b> = 1 - TAR. <b>TAR @ FMR 1e-3</b> is the TAR at the threshold that accepts
1 in 1000 impostor pairs on this data.</li>
<li>A rate of 1e-4 needs at least 10,000 impostor pairs to be measured at all; rows marked <i>not
resolvable</i> have fewer, and their TAR is not a measurement at that FMR.</li>
<li><b>Accuracy</b> follows the LFW protocol: for each of 10 folds the threshold that maximises accuracy on the
other nine is applied to it; the mean and standard deviation over the folds are reported.</li>
<li><b>EER</b>: the error rate where FMR equals FNMR. <b>ROC</b>: TAR against FMR over all thresholds;
<b>DET</b>: FNMR against FMR on normal-deviate axes (straighter, easier to read at low rates).</li>
<li>Intervals in [brackets] are 95% confidence intervals: percentile bootstrap over pairs for the overall
rates, Wilson score intervals for per-group rates at a fixed threshold (a bootstrap collapses to [0, 0]
when a group shows no error). Pairs that share a person are not independent, so the intervals are
somewhat optimistic.</li>
<li>Pairs that could not be compared (no face found) are not dropped: they count as wrong decisions in the
accuracy, as false non-matches when genuine and as correct rejections when impostor.</li>
<li>Per-group rates use the threshold chosen on all pairs (what a deployment would use). A pair belongs to a
group when both images do. The ratio worst/best group is NIST FRVT's measure of demographic differentials;
groups too small to measure a rate are marked and left out of the ratio.</li>
</ul>
"""


def verification_sections(rep) -> list[str]:
    out = []
    acc = "" if rep.accuracy is None else (f"{est_pct(rep.accuracy)} (± {100 * rep.accuracy_std:.2f} std over "
                                           f"{len(rep.per_fold)} folds)")
    rows = [("pairs", f"{rep.n_pairs} ({rep.n_genuine} genuine, {rep.n_impostor} impostor)"),
            ("pairs that could not be compared", f"{rep.n_failed_pairs}"),
            ("accuracy (10-fold)", acc or "not measured"),
            ("EER", f"{est_pct(rep.eer)} at similarity {rep.eer_threshold:.4f}"),
            ("ROC AUC", f"{rep.auc:.5f}")]
    out.append("<h2>Summary</h2>" + table(["", "value"], rows, numeric_from=9))
    rate_rows = []
    for r in rep.rates:
        t_ci = f" [{r.threshold_ci[0]:.4f}, {r.threshold_ci[1]:.4f}]" if r.threshold_ci else ""
        rate_rows.append((rate_label(r.target_fmr), est_pct(r.tar), pct(1 - r.tar.value), f"{r.threshold:.4f}{t_ci}",
                          r.n_impostor, "yes" if r.resolvable else "NOT RESOLVABLE", r.note))
    out.append("<h2>TAR at FMR</h2>" + table(
        ["target FMR", "TAR [95% CI]", "FNMR", "threshold [95% CI]", "impostor pairs", "resolvable", "note"],
        rate_rows))
    curve = rep.roc
    marks = [(r.target_fmr, r.tar.value) for r in rep.rates if r.resolvable]
    figs = [figure(_draw(plots.roc_png, [(rep.model, curve.fmr, curve.tar)], marks), "ROC (log FMR)"),
            figure(_draw(plots.det_png, [(rep.model, curve.fmr, 1 - curve.tar)]), "DET (probit axes)")]
    lines = [(f"FMR {rate_label(r.target_fmr)}", r.threshold) for r in rep.rates if r.resolvable]
    figs.append(figure(_draw(plots.histogram_png, rep.scores[rep.same], rep.scores[~rep.same], lines),
                       "similarity of genuine and impostor pairs"))
    out.append("<h2>Curves</h2><div class='figs'>" + "".join(figs) + "</div>")
    if rep.per_fold:
        out.append("<h3>Per fold</h3>" + table(
            ["fold", "accuracy", "threshold (fitted on the other folds)"],
            [(i + 1, pct(a), f"{t:.4f}") for i, (a, t) in enumerate(zip(rep.per_fold, rep.fold_thresholds,
                                                                         strict=True))]))
    if rep.groups:
        out.append("<h2>Per group</h2>" + groups_html(rep.groups))
    out.append("<h2>Notes</h2>" + warnings_html(rep.notes) if rep.notes else "")
    if rep.failed_images:
        items = list(rep.failed_images.items())
        rows = [(p, why) for p, why in items[:100]]
        more = f"<p>and {len(items) - 100} more (all are in the JSON file)</p>" if len(items) > 100 else ""
        out.append("<h2>Images that failed</h2>" + table(["image", "why"], rows, numeric_from=9) + more)
    out.append(GLOSSARY_VERIFICATION)
    return out


def groups_html(analyses) -> str:
    parts = []
    for ga in analyses:
        rows = []
        for g in ga.groups:
            rows.append((g.group, g.n_genuine, g.n_impostor, est_rate(g.fmr), est_pct(g.fnmr),
                         est_pct(g.accuracy), "; ".join(g.warnings)))
        ratio = (f"worst/best FMR ratio: {_fmt_ratio(ga.fmr_ratio)} · worst/best FNMR ratio: "
                 f"{_fmt_ratio(ga.fnmr_ratio)}")
        counts = f"{ga.n_cross_group} pairs across groups and {ga.n_unlabelled} unlabelled pairs are left out."
        parts.append(f"<h3>{_e(ga.attribute)} at threshold {ga.threshold:.4f} ({_e(ga.threshold_name)})</h3>"
                     f"<p>{_e(ratio)}. {_e(counts)}</p>"
                     + table(["group", "genuine", "impostor", "FMR [95% CI]", "FNMR [95% CI]", "accuracy",
                              "warnings"], rows) + warnings_html(ga.notes))
        names = [g.group for g in ga.groups]
        if names:
            series_vals = [[g.fmr.value if g.fmr else None for g in ga.groups],
                           [g.fnmr.value if g.fnmr else None for g in ga.groups]]
            lows = [[g.fmr.low if g.fmr else None for g in ga.groups],
                    [g.fnmr.low if g.fnmr else None for g in ga.groups]]
            highs = [[g.fmr.high if g.fmr else None for g in ga.groups],
                     [g.fnmr.high if g.fnmr else None for g in ga.groups]]
            parts.append(figure(_draw(plots.group_bars_png, f"{ga.attribute}, {ga.threshold_name}", names, series_vals,
                                      lows, highs, ["FMR", "FNMR"]),
                                f"FMR and FNMR per {ga.attribute} group (whiskers: 95% Wilson intervals)"))
    return "".join(parts)


def _fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}"


# -- writing -------------------------------------------------------------------------------------------------


def write_report(rep, html_path, *, title: str, subtitle: str = "", extra: dict | None = None) -> tuple[Path, Path]:
    """Write the HTML report and its JSON twin (same name, .json). Returns both paths."""
    html_path = Path(html_path)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_suffix(".html")
    json_path = html_path.with_suffix(".json")
    env = environment()
    data = rep.to_dict() | {"environment": env} | (extra or {})
    kind = data.get("kind")
    if kind == "verification":
        sections = verification_sections(rep)
    elif kind == "identification":
        from vultus.evaluate.identification import identification_sections

        sections = identification_sections(rep)
    elif kind == "calibration":
        from vultus.evaluate.calibrate import calibration_sections

        sections = calibration_sections(rep)
    else:
        raise ValueError(f"no HTML layout for a report of kind {kind!r}")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page(title, subtitle or f"{rep.model} with {rep.detector}", sections, env))
    json_path.write_text(json.dumps(data, indent=1, default=_json_default))
    return html_path, json_path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
