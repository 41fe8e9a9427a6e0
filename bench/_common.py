"""Shared bits of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}){mem}, {system}, Python {platform.python_version()}"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def section_markers(key: str) -> tuple[str, str]:
    return f"<!-- begin {key} (written by its own bench script; kept when the rest is rewritten) -->", \
        f"<!-- end {key} -->"


def kept_sections(text: str) -> list[str]:
    """The marked sections of a results file (see write_section), in order, markers included."""
    import re

    return [m.group(0) for m in re.finditer(r"<!-- begin ([\w-]+) .*?-->.*?<!-- end \1 -->", text, re.S)]


def put_between(path: Path, begin: str, end: str, block: str, new_file: str = "") -> None:
    """Write `block` (its markers included) into `path` in place of the text from `begin` to
    `end`, or append it when the file has no such section (`new_file`: the text a missing
    file starts from): several bench scripts share one results file, each its own part."""
    text = path.read_text() if path.is_file() else new_file
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_section(path: Path, key: str, lines: list[str]) -> None:
    """Put `lines` into `path` between this key's markers (section_markers)."""
    begin, end = section_markers(key)
    put_between(path, begin, end, "\n".join([begin, *lines, end]))
