"""What a bulk job reads: a folder, a CSV or a Parquet list of image paths.

Enroll takes its people from the source as `vultus gallery enroll` does: a
folder has one sub-folder per person, a CSV has `path,person` rows (the same
reader), a Parquet file has `path` and `person` columns. Embed and analyze take
any folder of images, a CSV whose first column is the path (a `path,person`
CSV works too; the person is ignored) or a Parquet file with a `path` column.
Relative paths in a list are taken from the list's folder, and a path that
resolves outside that folder is refused unless `allow_outside`, as for a CSV
given to `gallery enroll`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from vultus.bulk.errors import BulkError
from vultus.gallery.api import MAX_CSV_BYTES, scan_enroll_csv, scan_enroll_folder
from vultus.gallery.names import check_name
from vultus.gallery.types import EnrollItem
from vultus.imageio import SkippedFile, check_regular_file, read_file_bytes, scan_images

KINDS = ("folder", "csv", "parquet")


@dataclass(frozen=True, slots=True)
class BulkSource:
    """The images of a source in order (person "" when the job needs none), and the
    folder entries skipped with why."""

    kind: str
    items: list[EnrollItem]
    skipped: list[SkippedFile] = field(default_factory=list)


def read_source(source: str | Path, *, people: bool, allow_outside: bool = False) -> BulkSource:
    """The source's items; `people`: each image must name its person (enroll)."""
    src = Path(source)
    if not os.path.lexists(src):
        raise BulkError(f"{src}: no such file or folder", code="file_not_found", file=str(src))
    if src.is_dir():
        if people:
            found = scan_enroll_folder(src)
            return BulkSource("folder", found.items, found.skipped)
        scan = scan_images(src)
        if not scan.images:
            raise BulkError(f"{src}: no images found", code="no_images", file=str(src), skipped=len(scan.skipped))
        return BulkSource("folder", [EnrollItem(p, "") for p in scan.images], scan.skipped)
    check_regular_file(src)  # a FIFO, a device, a symbolic link loop: refused before it is opened
    suffix = src.suffix.lower()
    if suffix == ".csv":
        if people:
            return BulkSource("csv", scan_enroll_csv(src, allow_outside=allow_outside).items)
        return BulkSource("csv", _csv_paths(src, allow_outside))
    if suffix in (".parquet", ".pq"):
        return BulkSource("parquet", _parquet_items(src, people, allow_outside))
    raise BulkError(f"{src}: not a folder, a .csv or a .parquet list of images", code="bad_source", file=str(src))


def _inside(listing: Path, value: str, where: str, allow_outside: bool) -> Path:
    p = Path(value.strip())
    image = p if p.is_absolute() else listing.parent / p
    base = Path(os.path.realpath(listing.parent))
    if not allow_outside and not Path(os.path.realpath(image)).is_relative_to(base):
        raise BulkError(f"{listing}, {where}: {image} is outside the list's folder ({base})", code="path_outside",
                        file=str(listing), path=str(image), folder=str(base))
    return image


def _csv_paths(path: Path, allow_outside: bool) -> list[EnrollItem]:
    try:
        text = read_file_bytes(path, max_bytes=MAX_CSV_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BulkError(f"{path}: not a UTF-8 text file", code="bad_csv", file=str(path)) from exc
    items: list[EnrollItem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    first = True
    for row in reader:
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if first and row[0].strip().lower() == "path":
            first = False
            continue
        first = False
        items.append(EnrollItem(_inside(path, row[0], f"line {reader.line_num}", allow_outside), ""))
    if not items:
        raise BulkError(f"{path}: no rows (expected an image path per line)", code="bad_csv", file=str(path))
    return items


def _parquet_items(path: Path, people: bool, allow_outside: bool) -> list[EnrollItem]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...: the file is not Parquet
        raise BulkError(f"{path}: not a readable Parquet file ({exc})", code="bad_parquet", file=str(path)) from exc
    need = ["path", "person"] if people else ["path"]
    missing = [c for c in need if c not in schema.names]
    if missing:
        raise BulkError(f"{path}: no {' and no '.join(repr(c) for c in missing)} column (columns: "
                        f"{', '.join(schema.names) or 'none'})", code="bad_parquet", file=str(path), missing=missing)
    table = pq.read_table(path, columns=need)
    paths = table.column("path").to_pylist()
    persons = table.column("person").to_pylist() if people else [""] * len(paths)
    items = []
    for row, (value, person) in enumerate(zip(paths, persons, strict=True)):
        if not isinstance(value, str) or not value.strip():
            raise BulkError(f"{path}, row {row}: no image path", code="bad_parquet", file=str(path), row=row)
        if people:
            if not isinstance(person, str):
                raise BulkError(f"{path}, row {row}: no person", code="bad_parquet", file=str(path), row=row)
            person = check_name(person, "person")
        items.append(EnrollItem(_inside(path, value, f"row {row}", allow_outside), person))
    if not items:
        raise BulkError(f"{path}: no rows", code="bad_parquet", file=str(path))
    return items
