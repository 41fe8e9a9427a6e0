"""The gallery store under faults: crashes, races, damage, read-only and full
disks, hostile records, readers that block a checkpoint.

Vectors are made here (no models) except where a command needs real photos.
Scenarios that need root (read-only and size-limited tmpfs mounts) skip with
the reason when mounting is not permitted; strace's fault injection kills a
process at an exact system call and skips when strace is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from vultus.errors import OutputError
from vultus.gallery import Gallery
from vultus.gallery.errors import (
    DiskFullError,
    GalleryDamagedError,
    GalleryError,
    NotFoundError,
    ReadOnlyError,
)
from vultus.gallery.storage.sqlite import SQLiteStore
from vultus.gallery.types import NewFace
from vultus.types import Box, Face

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"
DIM = 128


def env() -> dict:
    return os.environ | {"PYTHONPATH": str(SRC), "VULTUS_THREADS": "1"}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def new_face(person: str, tag: str, vector: np.ndarray, crop: bytes | None = None) -> NewFace:
    face = Face(box=Box(10, 20, 110, 140), score=0.9, landmarks=np.zeros((5, 2), np.float32), detector="yunet")
    return NewFace(person=person, image_sha256=f"sha-{person}-{tag}", image_path=None, face=face, vector=vector,
                   quality={"face_px": 100.0}, crop_jpeg=crop, crop_face=face if crop else None)


def fill(g: Gallery, n_people=10, per_person=3, seed=0, crop_bytes=0):
    """People with a few faces each, stored and indexed; the index is saved."""
    coll = g.ensure_collection()
    g.indexes.get(coll)  # loaded before the rows go in, so they are added once
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n_people, DIM)))
    faces = unit(centres[:, None, :] + 0.35 * unit(rng.standard_normal((n_people, per_person, DIM))))
    batch = [new_face(f"p{i:03d}", f"{seed}-{j}", faces[i, j], rng.bytes(crop_bytes) if crop_bytes else None)
             for i in range(n_people) for j in range(per_person)]
    stored = g.store.add_faces(coll.id, coll.contract.key, batch)
    ids = np.array([s[1] for s in stored], np.int64)
    g.indexes.added(coll, coll.contract.key, ids, np.stack([b.vector for b in batch]))
    g.indexes.save(coll.id)
    return coll, faces


def make_gallery(path: Path, **kw):
    with Gallery(path) as g:
        coll, faces = fill(g, **kw)
        g.set_threshold("default", 0.5, 1e-3, "test")
    return faces


def patterns(vectors: np.ndarray) -> list[bytes]:
    """How the vectors look in SQLite (float32) and in a half-precision index."""
    v = np.asarray(vectors, np.float32).reshape(-1, DIM)
    return [r.tobytes() for r in v] + [r.astype(np.float16).tobytes() for r in v]


def files_holding(root: Path, pats: list[bytes]) -> list[str]:
    """Every file under `root` (database, -wal, -shm, index folder, strays) holding any pattern."""
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            blob = p.read_bytes()
            if any(x in blob for x in pats):
                hits.append(p.name)
    return hits


def cli(*args, check_one_line: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "vultus", *map(str, args)], env=env(), capture_output=True,
                          text=True, timeout=timeout, **kw)
    if check_one_line and done.returncode:
        assert "Traceback" not in done.stderr, done.stderr
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("vultus: error:")]
        assert len(lines) == 1, done.stderr
    return done


def index_files(db: Path) -> list[str]:
    d = db.with_name(db.name + ".index")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def recorded_index_file(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as c:
        return c.execute("SELECT file FROM index_state").fetchone()[0]


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"needs permission to mount a tmpfs (root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount_ro(where: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")


# -- 4: a crash at the end of forget ----------------------------------------------
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace for fault injection (kill at unlink)")
def test_forget_killed_at_the_index_unlink_leaves_no_trace(tmp_path):
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    old = db.with_name("g.db.index") / recorded_index_file(db)
    assert old.is_file()
    assert files_holding(tmp_path, patterns(faces[2]))  # the test can see the vectors where they are
    code = f"from vultus.gallery import Gallery; Gallery({str(db)!r}).forget('p002')"
    # Kill the process at the unlink of the superseded index file that holds the vectors.
    done = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(old), "-e", "trace=unlink,unlinkat",
                           "-e", "inject=unlink,unlinkat:signal=KILL", sys.executable, "-c", code], env=env(),
                          capture_output=True, text=True, timeout=120)
    if "ptrace" in done.stderr or "Operation not permitted" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode in (-9, 137), (done.returncode, done.stderr)
    assert old.is_file(), "the kill did not land before the unlink"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        assert c.execute("SELECT count(*) FROM people WHERE name = 'p002'").fetchone()[0] == 0  # committed

    # Forgetting the same name again does not just say "no person": it finishes the
    # cleanup the crash cut short and says nothing of theirs remains.
    again = cli("gallery", "forget", "p002", "--gallery", db)
    assert again.returncode == 2
    assert "no person 'p002'" in again.stderr and "nothing of theirs is stored" in again.stderr
    assert not old.exists()
    assert files_holding(tmp_path, patterns(faces[2])) == []
    with Gallery(db) as g:
        r = g.indexes.report(g.collection())
        assert r.indexed == r.stored == 27
        assert all(i.unknown for i in g.identify_vectors(faces[2], top_k=1))


def test_superseded_index_files_go_at_the_next_open_whatever_their_age(tmp_path):
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    index = db.with_name("g.db.index")
    old = recorded_index_file(db)
    # A forget that commits and dies before touching the files (a crash at any later point).
    with contextlib.closing(SQLiteStore(db)) as store:
        store.forget_person(store.collection("default").id, "p002")
    assert (index / old).is_file()
    stray = index / "c1-sface_x-0123abcd.usearch"  # no record names it and no writer holds it
    stray.write_bytes(b"x" * 100)
    tmp_file = index / ".tmp-c1-sface_x-89abcdef.usearch"  # left by a save that died
    tmp_file.write_bytes(b"")
    with Gallery(db) as g:  # a read: opening cleans up, and nothing else is written
        assert not (index / old).exists() and not stray.exists() and not tmp_file.exists()
        assert all(i.unknown for i in g.identify_vectors(faces[2], top_k=1))
    assert files_holding(tmp_path, patterns(faces[2])) == []


def test_a_file_being_written_is_left_alone(tmp_path):
    """A writer holds its file locked until it is recorded: another process's
    cleanup must not delete it, however new or old."""
    fcntl = pytest.importorskip("fcntl")
    db = tmp_path / "g.db"
    make_gallery(db)
    busy = db.with_name("g.db.index") / ".tmp-c1-sface_x-0badcafe.usearch"
    fd = os.open(busy, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        old = time.time() - 7200
        os.utime(busy, (old, old))
        with Gallery(db):
            pass
        assert busy.exists()
    finally:
        os.close(fd)
    with Gallery(db):
        pass
    assert not busy.exists()


# -- 5: two processes on a new gallery file ----------------------------------------
RACE = """
import sys, time
from vultus.gallery import Gallery
start = float(sys.argv[2])
while time.time() < start:
    pass
with Gallery(sys.argv[1]) as g:
    coll = g.ensure_collection()
    print(coll.id)
"""


@pytest.mark.slow
def test_processes_creating_one_new_gallery_at_once(tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACE)
    for round_ in range(4):
        db = tmp_path / f"r{round_}" / "g.db"
        start = time.time() + 3.0  # every process is imported and waiting when the moment comes
        procs = [subprocess.Popen([sys.executable, str(script), str(db), str(start)], env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
        assert {out.strip() for out, _ in outs} == {"1"}
        with contextlib.closing(sqlite3.connect(db)) as c:
            assert c.execute("SELECT count(*) FROM collections").fetchone()[0] == 1
            assert c.execute("SELECT count(*) FROM audit WHERE action = 'create'").fetchone()[0] == 1
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [p.name for p in db.parent.iterdir() if ".new-" in p.name] == []  # no temporary file left


def test_ensure_collection_races_in_one_transaction(tmp_path):
    db = tmp_path / "g.db"
    with Gallery(db) as a, Gallery(db) as b:
        # b looked before a created it: creating it then must give a's collection, not "already exists".
        first = a.ensure_collection()
        coll = b.store.create_collection(first.name, first.contract, first.detector, first.target_fmr, True, "max",
                                         exist_ok=True)
        assert coll.id == first.id
        with pytest.raises(GalleryError, match="already exists") as exc:
            b.create_collection(first.name)
        assert exc.value.code == "conflict"


def test_locked_past_the_timeout_is_busy_not_damaged(tmp_path):
    db = tmp_path / "g.db"
    make_gallery(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Gallery(store=SQLiteStore(db, busy_timeout_s=0.2)) as g:
            assert g.people()  # reads go on under a writer (WAL)
            with pytest.raises(GalleryError) as exc:
                g.rename("p001", "someone")
            assert exc.value.code == "busy" and "locked by another process" in str(exc.value)
            assert g.store.damaged is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_an_empty_file_is_not_taken_for_a_new_gallery(tmp_path):
    db = tmp_path / "g.db"
    db.touch()
    with pytest.raises(GalleryError, match="empty file") as exc:
        Gallery(db)
    assert exc.value.code == "not_a_gallery"
    assert db.stat().st_size == 0 and not db.with_name("g.db-wal").exists()
    done = cli("gallery", "create", "--gallery", db)
    assert done.returncode == 2 and "empty file" in done.stderr
    assert db.stat().st_size == 0


def test_a_fifo_is_not_a_gallery(tmp_path):
    fifo = tmp_path / "g.db"
    os.mkfifo(fifo)
    with pytest.raises(GalleryError, match="not a regular file") as exc:
        Gallery(fifo)  # returns at once (it used to wait for a writer forever)
    assert exc.value.code == "not_a_gallery"


def test_an_unwritable_gallery_path_is_one_line(tmp_path):
    with pytest.raises(OutputError, match="cannot create the gallery"):
        Gallery("/proc/x/g.db")
    done = cli("gallery", "create", "--gallery", "/proc/x/g.db")
    assert done.returncode == 2 and "cannot create the gallery" in done.stderr


# -- 6: a corrupted database -------------------------------------------------------
def corrupt(db: Path) -> None:
    """Overwrite b-tree pages in the middle of the file with garbage."""
    page = 4096
    data = bytearray(db.read_bytes())
    n = len(data) // page
    rng = np.random.default_rng(3)
    for p in range(n // 3, n // 3 + max(2, n // 6)):
        data[p * page:(p + 1) * page] = rng.bytes(page)
    db.write_bytes(bytes(data))


def test_a_corrupted_gallery_refuses_writes_and_reads_say_so(tmp_path):
    db = tmp_path / "g.db"
    make_gallery(db, n_people=60, per_person=4, crop_bytes=3000)
    assert not db.with_name("g.db-wal").exists()  # checkpointed at close: the pages are in the file
    corrupt(db)
    with Gallery(db) as g:
        assert g.store.damaged
        writes = [lambda: g.create_collection("other"), lambda: g.rename("p001", "x"), lambda: g.forget("p001"),
                  lambda: g.set_threshold("default", 0.4, 1e-3, "t"), lambda: g.reindex(),
                  lambda: g.enroll([], "default"), lambda: g.merge("p001", "p002"), lambda: g.delete_face(1)]
        for write in writes:
            with pytest.raises(GalleryDamagedError, match=r"damaged .*\.recover") as exc:
                write()
            assert exc.value.code == "gallery_damaged" and exc.value.data["path"] == str(db)
        for read in [g.stats, g.people, g.faces, lambda: g.identify_vectors(np.ones(DIM, np.float32) / 11.3),
                     lambda: g.reindex(check_only=True), g.audit_log]:
            with contextlib.suppress(GalleryDamagedError):  # a read either works or says the file is damaged
                read()
    # The command line: one line, no traceback (the API calls above cover every command).
    for args in (["stats"], ["forget", "p001"]):
        done = cli("gallery", *args, "--gallery", db)
        assert done.returncode in (0, 2), done.stderr
        if args[0] == "forget":
            assert done.returncode == 2 and "damaged" in done.stderr and ".recover" in done.stderr


def test_damage_met_by_a_query_is_one_error(tmp_path):
    """A big gallery skips the check on open; a query that meets damage says so."""
    db = tmp_path / "g.db"
    make_gallery(db, n_people=60, per_person=4, crop_bytes=3000)
    corrupt(db)
    with Gallery(store=SQLiteStore(db, quick_check=False)) as g:
        assert g.store.damaged is None
        with pytest.raises(GalleryDamagedError):
            for _ in range(3):
                g.faces()
                g.stats()
                g.store.check()
                if g.store.damaged:
                    raise GalleryDamagedError("found by check()")
        assert g.store.damaged
        with pytest.raises(GalleryDamagedError):
            g.rename("p001", "x")


def test_junk_is_not_a_gallery_rather_than_damaged(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GalleryError, match="not a vultus gallery") as exc:
        Gallery(junk)
    assert exc.value.code == "not_a_gallery"


# -- 7: an index path of the wrong type --------------------------------------------
def test_index_folder_that_is_a_file(tmp_path):
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    folder = db.with_name("g.db.index")
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    with Gallery(db) as g:
        s = g.stats()  # rebuilt in memory; a read does not try to save
        assert s.index.indexed == s.faces == 30 and s.index.action == "rebuilt" and "is a file" in s.index.reason
        assert g.identify_vectors(faces[3], top_k=1)[0].person == "p003"
        with pytest.raises(GalleryError, match="should be the gallery's index folder") as exc:
            g.reindex()
        assert exc.value.code == "index_path_blocked"
    assert folder.read_text() == "not a folder"
    done = cli("gallery", "reindex", "--gallery", db)
    assert done.returncode == 2 and "index folder" in done.stderr


def test_index_file_that_is_a_folder(tmp_path):
    db = tmp_path / "g.db"
    make_gallery(db)
    f = db.with_name("g.db.index") / recorded_index_file(db)
    f.unlink()
    f.mkdir()
    (f / "inside").write_text("kept")
    with Gallery(db) as g:
        r = g.indexes.report(g.collection())
        assert r.action == "rebuilt" and "not a regular file" in r.reason and r.indexed == 30
        r = g.reindex()
        assert r.indexed == 30
    assert (f / "inside").read_text() == "kept"  # never deleted, never followed
    with Gallery(db) as g:
        assert g.indexes.report(g.collection()).action == "loaded"


# -- 8: a read-only gallery --------------------------------------------------------
def every_write(g: Gallery):
    return {
        "enroll": lambda: g.enroll([], "default"),
        "forget": lambda: g.forget("p001"),
        "rename": lambda: g.rename("p001", "x"),
        "create": lambda: g.create_collection("other"),
        "threshold": lambda: g.set_threshold("default", 0.4, 1e-3, "t"),
        "fmr": lambda: g.set_target_fmr("default", 1e-4),
        "reindex": lambda: g.reindex(),
        "merge": lambda: g.merge("p001", "p002"),
        "delete": lambda: g.delete_face(1),
    }


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def check_read_only(db: Path, faces: np.ndarray) -> None:
    before = snapshot(db.parent)
    with Gallery(db) as g:
        assert g.store.read_only
        for what, write in every_write(g).items():
            with pytest.raises(ReadOnlyError, match="read-only") as exc:
                write()
            assert exc.value.code == "read_only", what
        s = g.stats()
        assert s.faces == 30 and s.index.indexed == 30
        assert g.identify_vectors(faces[4], top_k=1)[0].person == "p004"
        assert g.reindex(check_only=True).indexed == 30
        assert [p.name for p in g.people()][:2] == ["p000", "p001"]
    assert snapshot(db.parent) == before  # reads wrote nothing


def test_read_only_mount(tmp_path):
    mnt = tmp_path / "mnt"
    with tmpfs(mnt, "16m"):
        db = mnt / "g.db"
        faces = make_gallery(db)
        os.unlink(db.with_name("g.db.index") / recorded_index_file(db))  # reads must rebuild, and not save
        remount_ro(mnt)
        check_read_only(db, faces)
        for args in (["forget", "p001"], ["reindex"]):  # the API calls above cover every write
            done = cli("gallery", *args, "--gallery", db)
            assert done.returncode == 2 and "read-only" in done.stderr, (args, done.stderr)
        done = cli("gallery", "stats", "--gallery", db)
        assert done.returncode == 0, done.stderr


def test_read_only_file_and_folder_for_a_user(tmp_path):
    """chmod'd gallery: as root, the check runs in a child process that drops to nobody."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"vultus-ro-{os.getpid()}"
    root.mkdir(mode=0o755)
    try:
        db = root / "g.db"
        faces = make_gallery(db)
        os.unlink(db.with_name("g.db.index") / recorded_index_file(db))
        for p in [db, db.with_name("g.db.index")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        root.chmod(0o555)
        if os.geteuid() != 0:
            check_read_only(db, faces)
            return
        np.save(root.parent / f"vultus-ro-{os.getpid()}.npy", faces)
        code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import test_gallery_faults as t; "
                "from pathlib import Path; print('READY', flush=True); "
                "t.check_read_only(Path(sys.argv[2]), np.load(sys.argv[3]))")
        args = [str(Path(__file__).parent), str(db), str(root.parent / f"vultus-ro-{os.getpid()}.npy")]
        # The venv's interpreter may live where nobody cannot reach it (root's home): then the
        # system's Python of the same version, with this environment's packages.
        import site
        import sysconfig

        packages = os.pathsep.join([str(SRC), *site.getsitepackages(), sysconfig.get_paths()["purelib"]])
        system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
        done, why = None, ""
        for python in dict.fromkeys(p for p in (sys.executable, system) if p):
            try:
                done = subprocess.run([python, "-c", code, *args], env=env() | {"PYTHONPATH": packages},
                                      capture_output=True, text=True, timeout=120, user=65534, group=65534)
            except PermissionError as exc:
                why = str(exc)
                continue
            if "READY" in done.stdout:  # the test code ran: its result counts
                break
            why, done = done.stderr.strip()[-200:], None
        if done is None:
            pytest.skip(f"root ignores file modes, and user nobody cannot run this Python here ({why}); the "
                        "read-only mount test covers root")
        assert done.returncode == 0, done.stderr
    finally:
        root.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
        Path(root.parent / f"vultus-ro-{os.getpid()}.npy").unlink(missing_ok=True)


# -- 9: a full disk ----------------------------------------------------------------
def test_database_full_is_one_error_and_keeps_what_was_committed(tmp_path):
    db = tmp_path / "g.db"
    make_gallery(db)
    with Gallery(db) as g:
        g.store._conn.execute("PRAGMA max_page_count = " + str(
            g.store._conn.execute("PRAGMA page_count").fetchone()[0] + 2))
        coll = g.collection()
        rng = np.random.default_rng(5)
        with pytest.raises(DiskFullError, match="disk is full") as exc:
            for i in range(100):
                g.store.add_faces(coll.id, coll.contract.key,
                                  [new_face(f"q{i}", str(j), unit(rng.standard_normal(DIM)), rng.bytes(4000))
                                   for j in range(4)])
        assert exc.value.code == "disk_full"
        stored = g.store.counts(coll.id)
        assert stored["faces"] == stored["embeddings"] == stored["images"] >= 30
        assert g.stats().faces == stored["faces"]


def test_index_save_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    db = tmp_path / "g.db"
    make_gallery(db)
    with Gallery(db) as g:
        def full(self, path):
            Path(path).write_bytes(b"\0" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(type(g.indexes.get(g.collection())), "save", full)
        before = index_files(db)
        with pytest.raises(DiskFullError):
            g.reindex()
        assert index_files(db) == before


@pytest.mark.slow
def test_enroll_on_a_full_disk_stops_cleanly(tmp_path):
    images = need_data("lfw", "images")
    folder = tmp_path / "people"
    for img in sorted(images.glob("*/*.jpg"))[200:240]:
        (folder / img.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / img.parent.name / img.name).symlink_to(img)
    with tmpfs(tmp_path / "mnt", "3m") as mnt:
        db = mnt / "g.db"
        assert cli("gallery", "create", "--gallery", db).returncode == 0
        free = shutil.disk_usage(mnt).free
        (mnt / "filler").write_bytes(b"\0" * max(0, free - 350_000))  # room for a few batches, not all
        done = cli("gallery", "enroll", folder, "--gallery", db, "--workers", "0", timeout=600)
        assert done.returncode == 2, done.stdout[-500:] + done.stderr
        assert "disk is full" in done.stderr
        # What was committed is kept and consistent; reads work on the full disk and write nothing.
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            faces = c.execute("SELECT count(*) FROM faces").fetchone()[0]
            assert faces == c.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        assert [n for n in index_files(db) if n.startswith(".tmp-")] == []
        before = {n: (db.parent / n).stat().st_size for n in ["g.db"]}
        stats = cli("gallery", "stats", "--gallery", db, "--json")
        assert stats.returncode == 0, stats.stderr
        assert f'"faces": {faces}' in stats.stdout
        assert [n for n in index_files(db) if n.startswith(".tmp-")] == []
        assert {n: (db.parent / n).stat().st_size for n in ["g.db"]} == before


# -- 10: a hostile index record ----------------------------------------------------
@pytest.mark.parametrize("name", ["VICTIM", "../../victim.usearch", "c1-sface_2021dec-0123abcd.usearch/../../victim",
                                  12345])
def test_a_hostile_index_record_cannot_delete_or_read_anything(tmp_path, name):
    db = tmp_path / "g" / "g.db"
    db.parent.mkdir()
    make_gallery(db)
    victim = tmp_path / "victim.usearch"
    victim.write_text("precious")
    name = str(victim) if name == "VICTIM" else name  # or not even text
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute("UPDATE index_state SET file = ?", (name,))
        if c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'index_trash'").fetchone()[0]:
            c.execute("INSERT INTO index_trash (file, since) VALUES (?, 'now')", (str(victim),))
        c.commit()
    with Gallery(db) as g:
        r = g.stats().index
        g.reindex()
        g.forget("p001")
    with Gallery(db) as g:
        g.stats()
    assert victim.read_text() == "precious"
    assert r.action == "rebuilt" and "wrong form" in r.reason
    done = cli("gallery", "stats", "--gallery", db)
    assert done.returncode == 0 and victim.exists()


# -- 11: forget and the WAL checkpoint ---------------------------------------------
def test_forget_is_not_complete_while_a_reader_blocks_the_checkpoint(tmp_path):
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM faces").fetchone()  # holds a snapshot from before the forget
    try:
        with Gallery(store=SQLiteStore(db, busy_timeout_s=0.2)) as g:
            with pytest.raises(GalleryError, match="write-ahead log") as exc:
                g.forget("p002")
            assert exc.value.code == "erasure_incomplete" and exc.value.data["person"] == "p002"
            assert exc.value.data["faces"] == 3
    finally:
        reader.execute("COMMIT")
        reader.close()
    with Gallery(db) as g:
        with pytest.raises(NotFoundError, match="nothing of theirs is stored") as exc:
            g.forget("p002")
        assert exc.value.data["clean"] is True
        assert files_holding(tmp_path, patterns(faces[2])) == []


def test_an_index_built_before_a_forget_elsewhere_is_never_recorded(tmp_path):
    """Process A holds an index loaded before process B forgot someone; A's next
    save must not bring the forgotten vectors back into a recorded file."""
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    with Gallery(db) as a, Gallery(db) as b:
        coll = a.collection()
        assert len(a.indexes.get(coll)) == 30  # A's index, in memory, holds p002
        b.forget("p002")
        a.indexes.save(coll.id, force=True)  # e.g. the end of an enroll in A
        assert files_holding(tmp_path, patterns(faces[2])) == []
        assert len(a.indexes.get(a.collection())) == 27  # A catches up on its next look
        a.indexes.save(coll.id, force=True)
    assert files_holding(tmp_path, patterns(faces[2])) == []
    with Gallery(db) as g:
        assert g.indexes.report(g.collection()).action == "loaded"


def test_read_commands_never_write(tmp_path):
    db = tmp_path / "g.db"
    faces = make_gallery(db)
    os.unlink(db.with_name("g.db.index") / recorded_index_file(db))  # a read must rebuild it, in memory only
    before = snapshot(tmp_path)
    with Gallery(db) as g:
        assert g.stats().index.action == "rebuilt"
        assert g.identify_vectors(faces[1], top_k=1)[0].person == "p001"
        g.people()
        g.faces(person="p001")
        g.audit_log()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("code", "message", "expected"), [
    (5, "database is locked", "busy"),
    (6, "database table is locked", "busy"),
    (8, "attempt to write a readonly database", "read_only"),
    (13, "database or disk is full", "disk_full"),
    (11, "database disk image is malformed", "gallery_damaged"),
    (26, "file is not a database", "gallery_damaged"),
    (1, "no such table: faces", "gallery_damaged"),
    (7, "out of memory", "database_error"),
    (9, "interrupted", "database_error"),
])
def test_sqlite_failures_are_named_for_what_they_are(tmp_path, code, message, expected):
    from vultus.gallery.storage.sqlite import translate_error

    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    assert translate_error(exc, tmp_path / "g.db").code == expected
