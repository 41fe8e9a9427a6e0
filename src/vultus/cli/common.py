"""Helpers shared by the command modules: engine options, output, tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def add_engine_options(p: argparse.ArgumentParser, *, embedder: bool = True) -> None:
    p.add_argument("--detector", default="yunet", help="detector model (see `vultus models`; default yunet)")
    if embedder:
        p.add_argument("--embedder", default="sface", help="embedder model (sface, dlib-resnet, fused)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per model (default: 1)")


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def engine_from_args(args):
    from vultus.engine import Engine

    return Engine(detector=args.detector, embedder=getattr(args, "embedder", "sface"), threads=args.threads)


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def _default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def print_table(headers: Sequence[str], rows: Sequence[Sequence], file=None) -> None:
    """Aligned columns for people. Every cell is escaped (`safe_text`): names and
    file names come from users and files, and a control character in one could
    clear the screen, retitle the window or forge a row."""
    from vultus.textsafe import safe_text

    file = file or sys.stdout
    cells = [[safe_text(h) for h in headers]] + [[safe_text(_cell(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for k, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)


def _cell(c) -> str:
    if isinstance(c, float):
        return f"{c:.4g}" if abs(c) < 1e4 else f"{c:.0f}"
    return str(c)


def progress(iterable=None, *, total=None, desc=None, unit="it"):
    """A tqdm bar on stderr that hides itself when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(),
                leave=False)


def per_image(paths, desc: str, work):
    """Run `work(image_array)` on each path, reporting unreadable or bad images on
    stderr and carrying on. Returns ([(path, image, result)], number of failures)."""
    from vultus.errors import VultusError
    from vultus.imageio import load_image

    results, failures = [], 0
    for path in progress(paths, desc=desc, unit="img"):
        try:
            img = load_image(path)
            results.append((path, img, work(img)))
        except VultusError as exc:
            from vultus.cli.errors import error_line

            print(error_line(exc), file=sys.stderr)  # escaped: the message may hold a hostile file name
            failures += 1
    return results, failures


def image_paths(paths) -> list:
    """The images the command-line arguments name: files as given, folders
    scanned for every file Pillow reads. Entries skipped in a folder (other
    file types, FIFOs, loops, folders named like images) are said on stderr."""
    from vultus.errors import VultusError
    from vultus.imageio import scan_images
    from vultus.textsafe import safe_text

    out = []
    for p in paths:
        scan = scan_images(p)
        for entry in scan.skipped:
            print(f"vultus: skipped: {safe_text(entry.message())}", file=sys.stderr)
        if not scan.images:
            raise VultusError(f"{p}: no images in this folder", code="no_images", file=str(p),
                              skipped=len(scan.skipped))
        out.extend(scan.images)
    return out
