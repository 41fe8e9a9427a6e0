"""`vultus bulk enroll|embed|analyze SOURCE`: large jobs on Ray (the `vultus[ray]` extra)."""

from __future__ import annotations

import argparse
import logging
import sys

from vultus.cli.common import add_json_option, print_json, progress
from vultus.textsafe import safe_text

# Problem lines printed; --json lists them all.
MAX_PROBLEM_LINES = 20


def add_commands(sub) -> None:
    p = sub.add_parser("bulk", help="large jobs on a Ray cluster or a local Ray (enroll | embed | analyze)",
                       description="Enroll into a gallery, or embed / analyze into Parquet, on Ray Data: a pool of "
                                   "actors with one CPU and one model thread each. Resumable: run the same command "
                                   "again after a crash and only what is missing is computed.")
    bsub = p.add_subparsers(dest="bulk_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])

    def action(name: str, help_text: str, func, source_help: str) -> argparse.ArgumentParser:
        a = bsub.add_parser(name, help=help_text, description=help_text)
        a.add_argument("source", metavar="SOURCE", help=source_help)
        a.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="the Ray cluster (auto, HOST:6379, ray://HOST:10001); default: start a local Ray")
        a.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
        a.add_argument("--workers", type=int, default=None, help="actors, one CPU each (default: every CPU)")
        a.add_argument("--allow-outside", action="store_true",
                       help="a CSV or Parquet list may name images outside its own folder (refused by default)")
        a.add_argument("--detector", default=None, help="detector (default: the collection's, or yunet)")
        add_json_option(a)
        a.set_defaults(func=func)
        return a

    a = action("enroll", "enroll a folder (one sub-folder per person), a CSV (path,person) or a Parquet list "
                         "(path, person columns) into a gallery", cmd_enroll,
               "a folder of per-person folders, a .csv or a .parquet")
    a.add_argument("--gallery", metavar="LOCATION", default=None,
                   help="gallery file or database URL (default: $VULTUS_GALLERY or gallery.db in the user data dir)")
    a.add_argument("--collection", "-c", default="default", help="collection name (default: default)")
    a.add_argument("--embedder", default=None,
                   help="embedder for a new collection; an existing collection refuses any other")
    a.add_argument("--no-crops", action="store_true", help="do not keep aligned crops (privacy)")
    a.add_argument("--pick", choices=("one", "largest", "central"), default="one",
                   help="which face of a photo is the person (as `gallery enroll`)")
    for flag, what in (("--min-quality", "least face quality score in [0, 1] (0.5)"),
                       ("--min-face-px", "smallest face size, square root of the box area, in pixels (40)"),
                       ("--min-sharpness", "least Laplacian variance of the aligned face (10)"),
                       ("--max-yaw", "largest head turn in degrees (55)"),
                       ("--min-score", "least detector score (0.6)")):
        a.add_argument(flag, type=float, default=None, help=f"gate: {what}, as `gallery enroll`")

    for name, what in (("embed", "every face's embedding"), ("analyze", "every face's attributes")):
        a = action(name, f"{what} for a folder of images, a CSV or a Parquet list (a path column), into a folder of "
                         "Parquet parts", cmd_embed if name == "embed" else cmd_analyze,
                   "a folder of images, a .csv or a .parquet")
        a.add_argument("--out", required=True, metavar="FOLDER", help="output folder of Parquet parts")
        a.add_argument("--embedder", default="sface", help="embedder (default sface)")
        if name == "analyze":
            a.add_argument("--only", metavar="LIST", default=None,
                           help="comma-separated subset of age,gender,emotion,pose,quality,liveness (default: all)")
            a.add_argument("--fast-quality", action="store_true",
                           help="skip the embedding-stability part of quality")


def _quiet_ray() -> None:
    # Ray Data logs every dataset's plan at INFO on stderr; the progress line says what matters.
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _line(kind: str, text: str) -> None:
    print(f"vultus: {kind}: {safe_text(text)}", file=sys.stderr)


def _ray_options(args) -> dict:
    return {"address": args.ray, "num_cpus": args.num_cpus, "workers": args.workers}


def cmd_enroll(args) -> int:
    from vultus.bulk import bulk_enroll, read_source
    from vultus.bulk.runtime import ray_modules
    from vultus.cli.gallery import _gate
    from vultus.gallery import EnrollOptions, Gallery

    ray_modules()  # a missing extra fails before anything is read
    _quiet_ray()
    source = read_source(args.source, people=True, allow_outside=args.allow_outside)
    if not args.json:
        for entry in source.skipped[:MAX_PROBLEM_LINES]:
            _line("skipped", entry.message())
    options = EnrollOptions(gate=_gate(args), keep_crops=not args.no_crops, pick=args.pick)
    with Gallery(args.gallery, create=True) as g:
        bar = progress(total=len(source.items), desc="bulk enroll", unit="img")
        try:
            report = bulk_enroll(source.items, g, args.collection, embedder=args.embedder, detector=args.detector,
                                 options=options, progress=bar.update, **_ray_options(args))
        finally:
            bar.close()
    if args.json:
        print_json(report.to_dict() | {"skipped": [e.to_dict() for e in source.skipped]})
    else:
        for o in report.problems[:MAX_PROBLEM_LINES]:
            _line(o.status, f"{o.path} ({o.person}): {o.reason}")
        if len(report.problems) > MAX_PROBLEM_LINES:
            _line("refused", f"{len(report.problems) - MAX_PROBLEM_LINES} more images (--json lists them all)")
        for w in report.warnings[:MAX_PROBLEM_LINES]:
            _line("warning", w.message())
        d = report.to_dict()
        print(safe_text(f"{d['enrolled']} faces enrolled into {report.collection!r} ({report.gallery}); "
                        f"{d['duplicates']} already there, {d['refused']} refused, {d['errors']} unreadable; "
                        f"{report.workers} workers, {report.seconds:.1f} s"))
    bad = report.count("refused") + report.count("error") + sum(e.named_like_image for e in source.skipped)
    return 2 if bad else 0


def _output_job(args, kind: str) -> int:
    from vultus.bulk import bulk_analyze, bulk_embed, read_source
    from vultus.bulk.runtime import ray_modules

    ray_modules()
    _quiet_ray()
    source = read_source(args.source, people=False, allow_outside=args.allow_outside)
    bar = progress(total=len(source.items), desc=f"bulk {kind}", unit="img")
    common = {"detector": args.detector or "yunet", "embedder": args.embedder, "progress": bar.update}
    try:
        if kind == "embed":
            report = bulk_embed(source.items, args.out, **common, **_ray_options(args))
        else:
            actions = None if not args.only else [a.strip() for a in args.only.split(",") if a.strip()]
            report = bulk_analyze(source.items, args.out, actions=actions, stability=not args.fast_quality,
                                  **common, **_ray_options(args))
    finally:
        bar.close()
    if args.json:
        print_json(report.to_dict() | {"skipped_entries": [e.to_dict() for e in source.skipped]})
    else:
        for p in report.problems[:MAX_PROBLEM_LINES]:
            _line("error", f"{p['path']}: {p['message']}")
        print(safe_text(f"{report.faces} faces from {report.computed} images written to {report.out} "
                        f"({len(report.parts)} parts); {report.skipped} already there, {report.duplicates} "
                        f"duplicates, {report.no_face} without a face, {report.errors} unreadable; "
                        f"{report.workers} workers, {report.seconds:.1f} s"))
    return 2 if report.errors else 0


def cmd_embed(args) -> int:
    return _output_job(args, "embed")


def cmd_analyze(args) -> int:
    return _output_job(args, "analyze")
