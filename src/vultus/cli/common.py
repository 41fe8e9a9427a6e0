"""Helpers shared by the command modules: engine options, output, tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.batching import DEFAULT_CHUNK_SIZE
from vultus.types import ImageResult


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


#: Seconds between progress lines when stderr is not a terminal (a log file, a CI job, a pipe).
PROGRESS_SECONDS = float(os.environ.get("VULTUS_PROGRESS_SECONDS", "5"))

#: Images decoded and processed together: one batched model call per chunk (the library's default).
CHUNK_SIZE = DEFAULT_CHUNK_SIZE

_UNIT_WORDS = {"img": "images", "face": "faces", "it": "items"}


class Progress:
    """Progress of a long job on stderr: a tqdm bar on a terminal; elsewhere a line
    every PROGRESS_SECONDS ("vultus: detect: 1,200/5,000 images, 38 img/s") so a
    log shows the job is alive, and nothing for jobs shorter than that."""

    def __init__(self, iterable=None, *, total: int | None = None, desc: str | None = None, unit: str = "it"):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit, self.n = desc or "progress", unit, 0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        self.start = self.last = time.monotonic()
        self.lines = 0

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.n / max(now - self.start, 1e-9)
        done = f"{self.n:,}/{self.total:,}" if self.total is not None else f"{self.n:,}"
        print(f"vultus: {self.desc}: {done} {_UNIT_WORDS.get(self.unit, self.unit)}, {rate:.0f} {self.unit}/s",
              file=sys.stderr, flush=True)
        self.lines += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and self.last != -1.0:
            self._line(time.monotonic())  # a log that showed the job running also shows where it ended
        self.last = -1.0  # closed: no more lines


def progress(iterable=None, *, total=None, desc=None, unit="it") -> Progress:
    """A Progress over `iterable` (or updated by hand when iterable is None)."""
    return Progress(iterable, total=total, desc=desc, unit=unit)


def progress_callback(desc: str, unit: str = "img"):
    """A `progress(done, total)` callback for the library (vultus.evaluate ...) drawing a Progress."""
    state: dict[str, Progress] = {}

    def report(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None or done < bar.n:  # a new phase (a fused embedder's next component) starts over
            if bar is not None:
                bar.close()
            bar = state["bar"] = Progress(total=total, desc=desc, unit=unit)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


@dataclass
class ChunkItem:
    """One image of a chunk: its path, its decoded pixels (None when unreadable; released with the
    chunk) and its outcome (a value, or the error it met)."""

    path: Path
    image: np.ndarray | None
    result: ImageResult


def in_chunks(paths: Sequence[Path], work, *, desc: str, chunk_size: int | None = None
              ) -> Iterator[list[ChunkItem]]:
    """Decode `paths` a chunk at a time (each image once), run `work(arrays)` (an Engine batch method:
    one ImageResult per array) once per chunk on the readable ones, and yield the chunk's outcomes.
    Only one chunk's images are alive at a time, so memory stays flat however many paths there are."""
    from vultus.batching import chunked

    bar = progress(total=len(paths), desc=desc, unit="img")
    start = 0
    try:
        for chunk in chunked(paths, chunk_size or CHUNK_SIZE):
            items = _run_chunk(chunk, start, work)
            yield items
            # The caller's loop variable still points at this list while the next chunk decodes: empty it,
            # so that at most one chunk of decoded images is alive at any time.
            items.clear()
            start += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()


def _run_chunk(chunk: list, start: int, work) -> list[ChunkItem]:
    from vultus.batching import decode_batch

    decoded = decode_batch(chunk, start=start)
    readable = [d for d in decoded if d.ok]
    outcomes = iter(work([d.value for d in readable]) if readable else [])
    out = []
    for path, d in zip(chunk, decoded, strict=True):
        if d.ok:
            r = next(outcomes)
            result = ImageResult(d.index, d.source, r.value, r.error, width=d.width, height=d.height)
            out.append(ChunkItem(Path(path), d.value, result))
        else:
            out.append(ChunkItem(Path(path), None, d))
    return out


def annotation_target(target: str | None, n_images: int) -> tuple[Path, bool] | None:
    """Where annotated copies go, checked before any work: (path, is_folder). Several images, or an
    existing folder, mean a folder of copies; one image, a file whose suffix Pillow can write."""
    if not target:
        return None
    from PIL import Image

    from vultus.outputs import check_writable

    out = Path(target)
    folder = n_images > 1 or out.is_dir()
    common = [".jpg", ".jpeg", ".png", ".webp"]  # named first in the message
    writable = common + sorted(ext for ext, fmt in Image.registered_extensions().items()
                               if fmt in Image.SAVE and ext not in common)
    check_writable(out, folder=folder, suffixes=None if folder else writable)
    return out, folder


def save_annotation(target: tuple[Path, bool], path: Path, picture, suffix: str) -> None:
    """Save one annotated copy: into the folder as <stem><suffix>.jpg, or as the target file."""
    out, folder = target
    dest = out / (path.stem + suffix + ".jpg") if folder else out
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        picture.save(dest)
    except OSError as exc:  # the disk filled up or the folder went away since the check
        from vultus.errors import OutputError

        raise OutputError(f"{dest}: cannot write ({exc.strerror or exc})", code="output_not_writable",
                          file=dest) from exc


def run_images(paths: Sequence[Path], work, *, desc: str, as_json: bool, headers: Sequence[str], rows,
               entry=None, annotate=None, chunk_size: int | None = None) -> int:
    """The loop of every command over many images: `work` once per chunk (see in_chunks); per image, a
    failure is reported on stderr (and as an error object in JSON); a success gets its annotated copy
    written when `annotate` = (annotation_target(...), draw(item) -> PIL image, file suffix), then goes
    out as `entry(item)` (a JSON array element; default: image, width, height and each face's to_dict())
    or as `rows(item)` (table rows). Output streams as each chunk finishes. Returns how many failed."""
    entry = entry or _faces_entry
    failures = 0
    out = JsonArray() if as_json else TableStream(headers)
    try:
        for chunk in in_chunks(paths, work, desc=desc, chunk_size=chunk_size):
            table: list = []
            for item in chunk:
                if not item.result.ok:  # one bad image does not stop the others
                    failures += 1
                    report_failure(item.result)
                    if as_json:
                        out.add(error_entry(item.result))
                    continue
                if annotate:
                    target, draw, suffix = annotate
                    save_annotation(target, item.path, draw(item), suffix)
                if as_json:
                    out.add(entry(item))
                else:
                    table.extend(rows(item))
            if as_json:
                out.flush()
            else:
                out.add(table)
    finally:
        out.close()
    return failures


def _faces_entry(item: ChunkItem) -> dict:
    r = item.result
    return {"image": str(item.path), "width": r.width, "height": r.height, "faces": [f.to_dict() for f in r.value]}


def report_failure(result: ImageResult) -> None:
    """One line on stderr for an image that failed (the CLI's error line, hints included)."""
    from vultus.cli.errors import error_line

    print(error_line(result.error), file=sys.stderr, flush=True)


def error_entry(result: ImageResult) -> dict:
    """The --json entry of an image that failed: its name and the error as data."""
    return {"image": result.source, "error": result.error_dict()}


class JsonArray:
    """A JSON array written to stdout one element at a time, so output streams as chunks finish
    (the whole output is still one valid JSON document)."""

    def __init__(self, file=None):
        self.file = file or sys.stdout
        self.count = 0
        self.file.write("[")

    def add(self, obj) -> None:
        text = json.dumps(obj, indent=2, default=_default).replace("\n", "\n  ")
        self.file.write(("," if self.count else "") + "\n  " + text)
        self.count += 1

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.write("\n]\n" if self.count else "]\n")
        self.file.flush()


class TableStream:
    """A table printed a chunk of rows at a time: the header and column widths come from the first
    chunk (later, wider cells push their row out rather than hold every row back)."""

    def __init__(self, headers: Sequence[str], file=None):
        self.headers = [str(h) for h in headers]
        self.file = file or sys.stdout
        self.widths: list[int] | None = None

    def add(self, rows: Sequence[Sequence]) -> None:
        from vultus.textsafe import safe_text

        cells = [[safe_text(_cell(c)) for c in r] for r in rows]
        if self.widths is None:
            if not cells:
                return
            self._header(cells)
        for r in cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, self.widths, strict=True)).rstrip(), file=self.file)
        self.file.flush()

    def _header(self, cells) -> None:
        self.widths = [max(len(r[i]) for r in [self.headers, *cells]) for i in range(len(self.headers))]
        print("  ".join(h.ljust(w) for h, w in zip(self.headers, self.widths, strict=True)).rstrip(), file=self.file)
        print("  ".join("-" * w for w in self.widths), file=self.file)

    def close(self) -> None:
        if self.widths is None:
            self._header([])
        self.file.flush()


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
