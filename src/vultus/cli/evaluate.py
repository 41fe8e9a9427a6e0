"""Evaluation commands: evaluate lfw|pairs|identify, calibrate, model-card."""

from __future__ import annotations

import sys
from pathlib import Path

from vultus.cli.common import (
    add_engine_options,
    add_json_option,
    engine_from_args,
    print_json,
    print_table,
    progress_callback,
)


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_commands(sub) -> None:
    p = sub.add_parser("evaluate", help="measure accuracy and error rates on labelled data; write HTML+JSON reports")
    esub = p.add_subparsers(dest="evaluate_command", metavar="PROTOCOL")
    p.set_defaults(func=lambda args: _usage(p))

    q = esub.add_parser("lfw", help="LFW View 2: 10-fold accuracy, ROC/DET, EER, TAR at FMR")
    q.add_argument("root", metavar="DIR", help="the LFW folder holding pairs.txt and images/")
    _common(q, pick="center")
    q.set_defaults(func=cmd_evaluate_lfw)

    q = esub.add_parser("pairs", help="a CSV of labelled pairs (path_a,path_b,same[,fold])")
    q.add_argument("file", metavar="FILE", help="CSV with columns path_a, path_b, same (1/0, yes/no, true/false)")
    _common(q, pick="largest")
    q.set_defaults(func=cmd_evaluate_pairs)

    q = esub.add_parser("identify", help="open-set 1:N on a folder of people (one sub-folder per person)")
    q.add_argument("root", metavar="DIR", help="folder with one sub-folder of photos per person")
    q.add_argument("--enrol", type=int, default=1, metavar="N",
                   help="images enrolled per person in the gallery (default 1); the rest are mated probes")
    q.add_argument("--holdout", type=float, default=0.2, metavar="FRACTION",
                   help="share of people with enough photos kept out of the gallery as non-mated probes "
                        "(default 0.2; people with a single photo are always non-mated probes)")
    q.add_argument("--seed", type=int, default=0, help="seed for the gallery/probe split (default 0)")
    _common(q, pick="largest")
    q.set_defaults(func=cmd_evaluate_identify)

    q = esub.add_parser("labels", help="write a labels CSV for per-group reports: from UTKFace file names or "
                        "predicted by the age and gender models")
    q.add_argument("source", metavar="DIR", help="a folder of photos (or of people, one sub-folder each)")
    q.add_argument("--from", dest="origin", choices=("utkface", "predicted"), required=True,
                   help="utkface: gender, race and age band from '<age>_<gender>_<race>_*.jpg' names; predicted: "
                        "gender and age band guessed by vultus's attribute models (per person, by majority, when "
                        "DIR holds one sub-folder per person)")
    q.add_argument("--out", required=True, metavar="FILE.csv", help="where to write the labels")
    add_engine_options(q)
    q.add_argument("--pick", choices=("center", "largest"), default="largest",
                   help="which face to use when an image shows several (default largest)")
    q.set_defaults(func=cmd_evaluate_labels)

    p = sub.add_parser("calibrate", help="the threshold that gives a target false-match rate on your own data")
    p.add_argument("source", metavar="PAIRS.csv|DIR",
                   help="a pairs CSV (path_a,path_b,same) or a folder with one sub-folder per person")
    p.add_argument("--fmr", type=float, action="append", metavar="RATE",
                   help="target false-match rate (repeatable; default 1e-3)")
    add_engine_options(p)
    p.add_argument("--pick", choices=("center", "largest"), default="largest",
                   help="which face to use when an image shows several (default largest)")
    p.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N",
                   help="bootstrap resamples (default 1000)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--report", metavar="FILE.html", help="also write an HTML report (and its .json twin)")
    p.add_argument("--collection", metavar="NAME",
                   help="store the threshold (first --fmr) on this gallery collection; identification in it then "
                        "uses it")
    p.add_argument("--gallery", metavar="PATH", help="the gallery database (default: $VULTUS_GALLERY or the user's "
                   "data folder)")
    add_json_option(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("model-card", help="write a model card with numbers measured on the shared data")
    p.add_argument("name", nargs="+", metavar="NAME", help="registry model name(s), or 'all'")
    p.add_argument("--out", default="docs/model-cards", metavar="DIR", help="where to write NAME.md (and .json)")
    p.add_argument("--data", metavar="DIR", help="the shared data folder (default: $VULTUS_DATA or ../shared/data)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: all cores)")
    p.add_argument("--quick", action="store_true", help="measure on small subsets (for smoke tests; numbers "
                   "are marked as such)")
    p.set_defaults(func=cmd_model_card)


def _usage(parser) -> int:
    parser.print_help()
    return 1


def _common(q, *, pick: str) -> None:
    add_engine_options(q)
    q.add_argument("--labels", metavar="CSV",
                   help="group labels: CSV with a 'path' column and one column per attribute (paths absolute "
                        "or relative to the CSV); every rate is also reported per group")
    q.add_argument("--pick", choices=("center", "largest"), default=pick,
                   help=f"which face to use when an image shows several (default {pick})")
    q.add_argument("--report", metavar="FILE.html",
                   help="where to write the HTML report; the JSON goes next to it (default: "
                        "vultus-<protocol>-<embedder>.html in the current folder)")
    q.add_argument("--no-report", action="store_true", help="write no report files")
    q.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default 1000)")
    q.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    add_json_option(q)


def _engine(args):
    return engine_from_args(args)


def _labels(args):
    if not getattr(args, "labels", None):
        return None
    from vultus.evaluate.groups import read_labels

    return read_labels(args.labels)


def _write(args, rep, protocol: str, title: str) -> tuple[Path, Path] | None:
    if getattr(args, "no_report", False):
        return None
    from vultus.evaluate.report import write_report

    target = args.report or f"vultus-{protocol}-{rep.model}.html"
    return write_report(rep, target, title=title)


def _print_verification(rep, written) -> None:
    from vultus.evaluate.report import est_pct, pct
    from vultus.evaluate.results import rate_label

    print(f"{rep.dataset}: {rep.model} with {rep.detector}, {rep.n_pairs} pairs "
          f"({rep.n_genuine} genuine, {rep.n_impostor} impostor), {rep.n_failed_pairs} could not be compared")
    rows = []
    if rep.accuracy is not None:
        rows.append(("accuracy (10-fold)", f"{est_pct(rep.accuracy)} ± {100 * rep.accuracy_std:.2f}", ""))
    rows.append(("EER", est_pct(rep.eer), f"threshold {rep.eer_threshold:.4f}"))
    for r in rep.rates:
        note = f"threshold {r.threshold:.4f}" + ("" if r.resolvable else
                                                  f"; NOT RESOLVABLE: {r.n_impostor} impostor pairs < "
                                                  f"{int(round(1 / r.target_fmr))}")
        rows.append((f"TAR @ FMR {rate_label(r.target_fmr)}", est_pct(r.tar), note))
    print_table(["metric", "value [95% CI]", "note"], rows)
    for g in rep.groups:
        if g.threshold_name.startswith("best accuracy"):
            continue
        print(f"\n{g.attribute} at {g.threshold_name} (threshold {g.threshold:.4f}): "
              f"FMR worst/best {_ratio(g.fmr_ratio)}, FNMR worst/best {_ratio(g.fnmr_ratio)}")
        print_table(["group", "genuine", "impostor", "FMR", "FNMR", "warning"],
                    [(x.group, x.n_genuine, x.n_impostor, "" if x.fmr is None else f"{x.fmr.value:.2e}",
                      "" if x.fnmr is None else pct(x.fnmr.value), "; ".join(x.warnings)[:80]) for x in g.groups])
    _print_written(written)


def _ratio(r) -> str:
    return "n/a" if r is None else f"{r:.2f}"


def _print_written(written) -> None:
    if written:
        print(f"\nreport: {written[0]}\nnumbers: {written[1]}")


def _verification_options(args) -> dict:
    return {"labels": _labels(args), "pick": args.pick, "use_cache": not args.no_cache,
            "n_boot": args.bootstrap, "progress": progress_callback("embed"), "workers": args.threads}


def cmd_evaluate_lfw(args) -> int:
    from vultus.evaluate.run import evaluate_lfw

    rep, _ = evaluate_lfw(_engine(args), args.root, **_verification_options(args))
    return _report_verification(args, rep, "lfw", f"LFW View 2 verification: {rep.model}")


def cmd_evaluate_pairs(args) -> int:
    from vultus.evaluate.run import evaluate_pairs_file

    rep, _ = evaluate_pairs_file(_engine(args), args.file, **_verification_options(args))
    return _report_verification(args, rep, "pairs", f"Verification on {Path(args.file).name}: {rep.model}")


def _report_verification(args, rep, kind: str, title: str) -> int:
    """Write the HTML/JSON report and print the figures (JSON or a table)."""
    written = _write(args, rep, kind, title)
    if args.json:
        print_json(rep.to_dict() | ({"report": str(written[0])} if written else {}))
    else:
        _print_verification(rep, written)
    return 0


def cmd_evaluate_identify(args) -> int:
    from vultus.evaluate.run import evaluate_identify

    rep = evaluate_identify(_engine(args), args.root, labels=_labels(args), pick=args.pick,
                            use_cache=not args.no_cache, n_boot=args.bootstrap, enrol=args.enrol,
                            holdout=args.holdout, seed=args.seed, workers=args.threads,
                            progress=progress_callback("embed"))
    written = _write(args, rep, "identify", f"Open-set identification on {Path(args.root).name}: {rep.model}")
    if args.json:
        print_json(rep.to_dict() | ({"report": str(written[0])} if written else {}))
    else:
        print_identification(rep)
        _print_written(written)
    return 0


def cmd_evaluate_labels(args) -> int:
    from collections import Counter

    from vultus.evaluate.groups import utkface_labels, write_labels
    from vultus.imageio import list_images

    src = Path(args.source)
    if not src.is_dir():
        from vultus.errors import VultusError

        raise VultusError(f"{src}: no such folder")
    if args.origin == "utkface":
        table = utkface_labels(list_images(src))
    else:
        import numpy as np

        from vultus.evaluate.predicted import predicted_labels

        subdirs = [d for d in sorted(src.iterdir()) if d.is_dir()]
        if subdirs:
            from vultus.evaluate.identification import read_people

            people = read_people(src)
            names = sorted(people)
            paths = [p for n in names for p in people[n]]
            person = np.array([i for i, n in enumerate(names) for _ in people[n]])
        else:
            paths, person = list_images(src), None
        table = predicted_labels(_engine(args), paths, person, pick=args.pick, workers=args.threads,
                                 progress=progress_callback("embed"))
    out = write_labels(table, args.out)
    print(f"{len(table.labels)} images labelled ({table.source}) in {out}")
    for attr in table.attributes:
        counts = Counter(row[attr] for row in table.labels.values())
        print(f"  {attr}: " + ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_calibrate(args) -> int:
    from vultus.evaluate.calibrate import store_on_collection
    from vultus.evaluate.run import calibrate_source

    targets = args.fmr or [1e-3]
    if args.collection:
        from vultus.evaluate.calibrate import check_collection

        check_collection(args.collection, model=args.embedder, detector=args.detector, gallery_path=args.gallery)
    rep = calibrate_source(_engine(args), args.source, targets=targets, pick=args.pick, use_cache=not args.no_cache,
                           n_boot=args.bootstrap, workers=args.threads, progress=progress_callback("embed"))
    written = None
    if args.report:
        from vultus.evaluate.report import write_report

        written = write_report(rep, args.report, title=f"Calibration on {Path(args.source).name}: {rep.model}")
    if not args.json:  # print before storing, so a refused store still leaves the measurement on screen
        print_calibration(rep)
        _print_written(written)
    stored = store_on_collection(rep, args.collection, gallery_path=args.gallery) if args.collection else None
    if args.json:
        print_json(rep.to_dict() | ({"stored_on": stored} if stored else {})
                   | ({"report": str(written[0])} if written else {}))
    elif stored:
        print(f"\nthreshold {stored['threshold']:.4f} (FMR {stored['fmr']:g}) stored on collection "
              f"{stored['collection']!r} in {stored['gallery']}")
    return 0


def cmd_model_card(args) -> int:
    from vultus.evaluate.model_card import write_model_cards

    paths = write_model_cards(args.name, out=Path(args.out), data=Path(args.data) if args.data else None,
                              threads=args.threads, quick=args.quick)
    for p in paths:
        print(p)
    if not paths:
        print("vultus: error: no model card written", file=sys.stderr)
        return 2
    return 0


# -- tables for people (the library returns reports; printing them is the CLI's job) --------------------
def print_calibration(rep) -> None:
    import math

    from vultus.evaluate.results import rate_label

    design = "all pairs of photos of the people in the folder" if rep.design == "people" else "the listed pairs"
    print(f"{rep.source}: {rep.model} with {rep.detector}, {design}: {rep.n_genuine} genuine and "
          f"{rep.n_impostor} impostor comparisons ({rep.n_images} photos, {rep.n_failed_images} failed)")
    rows = []
    for p in rep.points:
        ci = f"[{p.threshold_ci[0]:.4f}, {p.threshold_ci[1]:.4f}]" if p.threshold_ci else ""
        tar = "" if math.isnan(p.tar.value) else f"{100 * p.tar.value:.2f}%"
        rows.append((rate_label(p.target_fmr), f"{p.threshold:.4f}", ci, f"{p.achieved_fmr:.2e}", tar, p.n_impostor,
                     "yes" if p.resolvable else "NO"))
    print_table(["target FMR", "threshold", "95% CI", "measured FMR", "TAR", "impostor comparisons", "resolvable"],
                rows)
    print(f"interval: {rep.ci_method}")
    for p in rep.points:
        if p.note:
            print(f"warning: {p.note}")
    for n in rep.notes:
        print(f"note: {n}")


def print_identification(rep) -> None:
    from vultus.evaluate.report import est_pct
    from vultus.evaluate.results import rate_label

    print(f"{rep.dataset}: {rep.model} with {rep.detector}; {rep.n_enrolled} people enrolled "
          f"({rep.n_gallery_images} photos, {rep.n_gallery_failed} failed), {rep.n_mated} mated and "
          f"{rep.n_nonmated} non-mated probes ({rep.n_probe_failed} failed)")
    rows = [("rank-1 identification rate", est_pct(rep.rank1), "")]
    rows += [(f"rank-{k}", f"{100 * v:.2f}%", "") for k, v in zip(rep.cmc_ranks, rep.cmc, strict=True) if k in (5, 10)]
    for r in rep.rates:
        note = f"threshold {r.threshold:.4f}" + ("" if r.resolvable else f"; NOT RESOLVABLE: {r.note}")
        rows.append((f"FNIR @ FPIR {rate_label(r.target_fpir)}", est_pct(r.fnir), note))
    print_table(["metric", "value [95% CI]", "note"], rows)
    for g in rep.groups:
        print(f"\n{g.attribute} at {g.threshold_name} (threshold {g.threshold:.4f}): FNIR worst/best "
              f"{'n/a' if g.fnir_ratio is None else f'{g.fnir_ratio:.2f}'}, FPIR worst/best "
              f"{'n/a' if g.fpir_ratio is None else f'{g.fpir_ratio:.2f}'}")
        print_table(["group", "mated", "non-mated", "rank-1", "FNIR", "FPIR", "warning"],
                    [(x.group, x.n_mated, x.n_nonmated, "" if x.rank1 is None else f"{100 * x.rank1.value:.2f}%",
                      "" if x.fnir is None else f"{100 * x.fnir.value:.2f}%",
                      "" if x.fpir is None else f"{x.fpir.value:.2e}", "; ".join(x.warnings)[:80]) for x in g.groups])
    for n in rep.notes:
        print(f"note: {n}")
