"""Durability and concurrency, with real processes on real LFW photos:

- an enroll killed with SIGKILL in the middle of a folder leaves a gallery
  that opens, whose SQLite and index agree, and whose next enroll of the same
  folder completes it;
- two processes enrolling into one gallery at once lose nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need_data
from vultus.gallery import Gallery

SRC = Path(__file__).resolve().parents[1] / "src"


def lfw_folder(dest: Path, start: int, count: int) -> list[Path]:
    """LFW images `start` to `start + count` (all images in name order) as
    per-person folders of symlinks; returns the links."""
    root = need_data("lfw", "images")
    links: list[Path] = []
    for img in sorted(root.glob("*/*.jpg"))[start:start + count]:
        link = dest / img.parent.name / img.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(img)
        links.append(link)
    return links


def enroll_cmd(folder: Path, db: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "vultus", "gallery", "enroll", str(folder), "--gallery", str(db),
            "--workers", str(workers), "--json"]


def env() -> dict:
    return os.environ | {"PYTHONPATH": str(SRC), "VULTUS_THREADS": "1"}


def faces_in(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT count(*) FROM faces").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def consistent(db: Path) -> dict:
    with Gallery(db) as g:
        s = g.stats()
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert s.faces == s.images == s.embeddings == s.index.stored == s.index.indexed
        return {"faces": s.faces, "index_action": s.index.action}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_sigkill_mid_enroll_then_resume(tmp_path):
    folder = tmp_path / "people"
    links = lfw_folder(folder, 0, 160)
    db = tmp_path / "g.db"
    proc = subprocess.Popen(enroll_cmd(folder, db, workers=2), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while faces_in(db) < 24:
        assert proc.poll() is None, "the enroll ended before it could be killed"
        assert time.monotonic() < deadline, "the enroll made no progress"
        time.sleep(0.02)
    workers = [p for p in children_of(proc.pid) if alive(p)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = faces_in(db)
    assert 0 < killed_at < len(links), "the kill did not land in the middle of the folder"

    # The workers notice their parent is gone and leave (none is left running).
    deadline = time.monotonic() + 20
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    stray = [p for p in workers if alive(p)]
    for p in stray:
        os.kill(p, signal.SIGKILL)
    assert not stray, f"worker processes outlived their killed parent: {stray}"

    state = consistent(db)  # opens; SQLite and index agree (the index is rebuilt or caught up)
    assert state["faces"] == killed_at

    done = subprocess.run(enroll_cmd(folder, db, workers=2), env=env(), capture_output=True, text=True,
                          timeout=300)
    report = json.loads(done.stdout)
    assert report["errors"] == 0, done.stderr
    assert report["duplicates"] == killed_at
    assert report["enrolled"] + report["duplicates"] + report["refused"] == len(links)
    assert done.returncode == (2 if report["refused"] else 0)
    final = consistent(db)
    assert final["faces"] == killed_at + report["enrolled"]
    refused = {i["path"] for i in report["images"] if i["status"] == "refused"}
    with sqlite3.connect(db) as c:
        stored = {r[0] for r in c.execute("SELECT image_path FROM faces")}
    assert {str(p.resolve()) for p in links if str(p) not in refused} == stored


@pytest.mark.slow
def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    links_a = lfw_folder(a, 1000, 40)
    links_b = lfw_folder(b, 1030, 40)  # 10 images in both: the same files, enrolled by both at once
    db = tmp_path / "g.db"
    with Gallery(db) as g:
        g.create_collection()
    procs = [subprocess.Popen(enroll_cmd(folder, db, workers=1), env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for folder in (a, b)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        reports.append(json.loads(out))
        assert reports[-1]["errors"] == 0, err
    targets = {str(p.resolve()) for p in links_a} | {str(p.resolve()) for p in links_b}
    shared = {str(p.resolve()) for p in links_a} & {str(p.resolve()) for p in links_b}
    assert len(shared) == 10
    refused = {str(Path(i["path"]).resolve()) for r in reports for i in r["images"] if i["status"] == "refused"}
    state = consistent(db)
    with sqlite3.connect(db) as c:
        stored = [r[0] for r in c.execute("SELECT image_path FROM faces")]
    assert len(stored) == len(set(stored)) == state["faces"]  # each shared image once
    assert set(stored) == targets - refused
    assert sum(r["enrolled"] for r in reports) == len(stored)
