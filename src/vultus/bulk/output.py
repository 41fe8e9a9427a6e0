"""Parquet output of `bulk embed` and `bulk analyze`: a folder of part files.

The driver writes a part every `flush_every` images, to a hidden temporary name
renamed into place once complete, so a crash leaves whole parts and loses at
most the images since the last one. A resumed job reads the sha256 column of
every part and skips those images. The folder reads as one table with
pyarrow.dataset, pandas.read_parquet or ray.data.read_parquet.

One row per face (status "ok"), one row with face -1 for an image with no face
(status "no_face"), one row for an image that could not be read (status
"error", with error_code and error).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vultus.bulk.errors import BulkError

PART_PREFIX = "part-"


def _schemas():
    import pyarrow as pa

    common = [("path", pa.string()), ("sha256", pa.string()), ("status", pa.string()),
              ("error_code", pa.string()), ("error", pa.string()), ("face", pa.int32()),
              ("box", pa.list_(pa.float32(), 4)), ("score", pa.float32()), ("landmarks", pa.list_(pa.float32(), 10))]
    embed = common + [("model", pa.string()), ("embedding", pa.list_(pa.float32()))]
    analyze = common + [("age", pa.float32()), ("gender", pa.string()), ("emotion", pa.string()),
                        ("quality", pa.float32()), ("yaw", pa.float32()), ("pitch", pa.float32()),
                        ("roll", pa.float32()), ("live", pa.bool_()), ("attributes", pa.string())]
    return {"embed": pa.schema(embed), "analyze": pa.schema(analyze)}


def prepare(out: str | Path) -> Path:
    """The output folder, created if need be; refused when it holds anything but part files."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise BulkError(f"{folder}: not a folder (the output is a folder of Parquet parts)", code="bad_output",
                        file=str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BulkError(f"{folder}: cannot create the output folder ({exc.strerror})", code="bad_output",
                        file=str(folder)) from exc
    if not os.access(folder, os.W_OK):
        raise BulkError(f"{folder}: the output folder is not writable", code="read_only", file=str(folder))
    strangers = [p.name for p in folder.iterdir() if not p.name.startswith((PART_PREFIX, "."))]
    if strangers:
        raise BulkError(f"{folder}: holds files that are not this job's parts (e.g. {strangers[0]}); give an "
                        "empty folder or the folder of an earlier run", code="bad_output", file=str(folder))
    return folder


def parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(f"{PART_PREFIX}*.parquet") if p.is_file())


def done_sha256s(folder: Path, kind: str) -> set[str]:
    """The sha256 of every image the folder's parts hold a row for (a resumed job skips them)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in parts(folder):
        try:
            schema = pq.read_schema(part)
            if schema.names != _schemas()[kind].names:
                raise BulkError(f"{part}: a part of another kind of job (its columns differ from `bulk {kind}`'s)",
                                code="bad_parquet", file=str(part))
            column = pq.read_table(part, columns=["sha256"]).column("sha256").to_pylist()
        except BulkError:
            raise
        except Exception as exc:
            raise BulkError(f"{part}: not a readable Parquet part ({exc}); move it away to resume",
                            code="bad_parquet", file=str(part)) from exc
        done.update(s for s in column if s)
    return done


class PartWriter:
    """Rows collected in memory and written as one part every `flush_every` images."""

    def __init__(self, folder: Path, kind: str, flush_every: int):
        self.folder, self.kind, self.flush_every = folder, kind, max(1, int(flush_every))
        self.schema = _schemas()[kind]
        self.rows: list[dict] = []
        self.images = 0
        self.written: list[Path] = []
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        self.images += 1
        if self.images >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = self.schema.names
        table = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in self.rows], schema=self.schema)
        final = self.folder / f"{PART_PREFIX}{self._stamp}-{len(self.written):05d}.parquet"
        tmp = self.folder / f".{final.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # a part is either whole or absent
        self.written.append(final)
        self.rows, self.images = [], 0
