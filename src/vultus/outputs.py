"""Check that an output path can be written before the work that fills it starts.

A job over a thousand photos should not find out at the end that its output
goes to a read-only folder, a path under /proc, or a file with the wrong
suffix. `check_writable` tries what the write will do (create a file in the
folder that will hold the output, nothing more) and raises OutputError with the
reason; it leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vultus.errors import OutputError


def check_writable(path: str | os.PathLike, *, suffixes: Sequence[str] | None = None,
                   folder: bool = False) -> Path:
    """`path` as a Path if a file (or, with folder=True, a folder of files) can be written there.

    suffixes: the accepted file suffixes (".npy"); checked case-insensitively.
    Raises OutputError (codes: bad_output_suffix, output_is_folder,
    output_not_a_folder, output_not_writable)."""
    path = Path(path)
    if not folder and suffixes and path.suffix.lower() not in {s.lower() for s in suffixes}:
        shown = " or ".join(suffixes) if len(suffixes) <= 3 else ", ".join(suffixes[:4]) + ", ..."
        raise OutputError(f"{path}: must end in {shown}", code="bad_output_suffix", file=path,
                          suffixes=list(suffixes))
    if path.exists() or path.is_symlink():
        if folder:
            if not path.is_dir():
                raise OutputError(f"{path}: exists and is not a folder", code="output_not_a_folder", file=path)
            _probe(path, path)
            return path
        if path.is_dir():
            raise OutputError(f"{path}: is a folder, not a file", code="output_is_folder", file=path)
        try:
            with open(path, "ab"):  # append mode: the existing content is not touched
                pass
        except OSError as exc:
            raise _error(path, exc) from exc
        return path
    # The nearest folder that exists is where the write (and any folder it needs) starts.
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder", code="output_not_writable", file=path,
                          reason="not_a_folder")
    _probe(parent, path)
    return path


def _probe(folder: Path, target: Path) -> None:
    """Create and remove a file in `folder`: the only check that tells the truth for root, read-only
    mounts, /proc and full quotas alike (os.access says yes to root everywhere)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".vultus-write-check-", dir=folder)
    except OSError as exc:
        raise _error(target, exc) from exc
    os.close(fd)
    os.unlink(name)


def _error(path: Path, exc: OSError) -> OutputError:
    reasons = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "not permitted", errno.ENOSPC: "no space left on the device",
               errno.ENOENT: "cannot create files there", errno.ENOTDIR: "a part of the path is not a folder"}
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write here ({reason})", code="output_not_writable", file=path,
                       reason=reason)


def make_output_dir(folder: str | os.PathLike) -> Path:
    """Create an output folder (and its parents) before the work that fills it; OutputError if it cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})",
                          file=str(folder)) from exc
    return folder
