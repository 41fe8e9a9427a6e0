"""The embedded default store: one SQLite file in WAL mode.

Why SQLite: no server, one file to back up, atomic transactions, and WAL lets
readers run while one writer commits. Several processes may enroll at once:
each write is a `BEGIN IMMEDIATE` transaction, so writers queue on the file
lock (busy timeout 60 s) instead of failing, and uniqueness constraints (one
row per image hash per collection) decide races inside the transaction.

synchronous=FULL makes a committed enroll batch survive a power cut, not only
a killed process; secure_delete overwrites deleted rows, so a forgotten
person's vectors do not linger in free pages.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vultus.errors import OutputError
from vultus.gallery.errors import (
    ConflictError,
    DiskFullError,
    GalleryDamagedError,
    GalleryError,
    NotFoundError,
    ReadOnlyError,
)
from vultus.gallery.names import MAX_NAME_LENGTH, check_name
from vultus.gallery.storage.audit import REDACTED, redact_person  # noqa: F401 - REDACTED: re-exported
from vultus.gallery.storage.base import (
    ID_HASH_MOD,
    ID_HASH_MUL,
    ClusterFaceRow,
    ClusteringChange,
    ClusteringState,
    CropItem,
    ForgottenData,
    GalleryStore,
    IdFingerprint,
    IndexState,
    MigrationReport,
    PersonVectors,
)
from vultus.gallery.storage.decision_sql import apply_decision_update
from vultus.gallery.storage.rows import (
    AUDIT_COLS,
    COLLECTION_COLS,
    FACE_COLS,
    as_f32,
    audit_from_row,
    collection_from_row,
    f32_blob,
    face_from_row,
    now,
    process_actor,
)
from vultus.gallery.types import (
    AuditRecord,
    Collection,
    EmbedderContract,
    FaceRecord,
    NewFace,
    Person,
)
from vultus.types import Box, Face

APPLICATION_ID = 0x56554C54  # "VULT": marks a SQLite file as a vultus gallery
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    embedder TEXT NOT NULL,
    embedder_version TEXT NOT NULL,
    embedder_alignment TEXT NOT NULL,
    dim INTEGER NOT NULL,
    detector TEXT NOT NULL,
    target_fmr REAL NOT NULL,
    threshold REAL,
    threshold_fmr REAL,
    threshold_source TEXT,
    keep_crops INTEGER NOT NULL,
    aggregation TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    liveness TEXT,
    target_fpir REAL,
    own_calibration TEXT
);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE TABLE IF NOT EXISTS images (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (collection_id, sha256)
);
CREATE INDEX IF NOT EXISTS images_person ON images(person_id);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    image_sha256 TEXT NOT NULL,
    image_path TEXT,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    landmarks BLOB NOT NULL,
    detector TEXT NOT NULL,
    detector_score REAL NOT NULL,
    quality TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_person ON faces(person_id);
CREATE INDEX IF NOT EXISTS faces_collection ON faces(collection_id);
CREATE TABLE IF NOT EXISTS crops (
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL,
    box BLOB NOT NULL,
    landmarks BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    embedder TEXT NOT NULL,
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    UNIQUE (face_id, embedder)
);
CREATE INDEX IF NOT EXISTS embeddings_scope ON embeddings(collection_id, embedder, id);
CREATE TABLE IF NOT EXISTS index_state (
    collection_id INTEGER NOT NULL,
    embedder TEXT NOT NULL,
    kind TEXT NOT NULL,
    file TEXT NOT NULL,
    count INTEGER NOT NULL,
    max_id INTEGER NOT NULL,
    id_hash INTEGER NOT NULL,
    file_size INTEGER NOT NULL,
    file_crc32 INTEGER NOT NULL,
    built_at TEXT NOT NULL,
    PRIMARY KEY (collection_id, embedder)
);
-- Index files that a committed change superseded (a newer file, or a forget that
-- invalidated them) and that must be deleted. Recorded in the same transaction as the
-- change, so a crash before the unlink cannot leave them behind: every open deletes
-- what is listed here.
CREATE TABLE IF NOT EXISTS index_trash (
    file TEXT PRIMARY KEY,
    since TEXT NOT NULL
);
-- Per collection, the generation of the last change that erased vectors (forget, a
-- deleted face). An index built from an older snapshot may hold them, so it is never
-- recorded (a writer racing a forget in another process cannot bring them back).
CREATE TABLE IF NOT EXISTS erasures (
    collection_id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL
);
-- Face clustering (vultus.cluster): every face of the photos clustered into this collection,
-- keyed by image sha256 and the face's number in it. cluster_id NULL is "unsorted". Pinned faces
-- were placed by a person and the algorithm never moves them. Pairs a person said are two people
-- (must-not-link) stay across reclusters. Ids come from cluster_seq and are never reused.
CREATE TABLE IF NOT EXISTS cluster_faces (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_key TEXT NOT NULL,
    image_path TEXT NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    detector_score REAL NOT NULL,
    quality REAL NOT NULL,
    vector BLOB NOT NULL,
    thumbnail BLOB,
    cluster_id INTEGER,
    pinned INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL,
    PRIMARY KEY (collection_id, face_key)
);
CREATE TABLE IF NOT EXISTS clusters (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    name TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (collection_id, id)
);
CREATE TABLE IF NOT EXISTS cluster_cannot_link (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_a TEXT NOT NULL,
    face_b TEXT NOT NULL,
    PRIMARY KEY (collection_id, face_a, face_b)
);
CREATE TABLE IF NOT EXISTS cluster_seq (
    collection_id INTEGER PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    next_id INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    collection TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

# Tables added after the first galleries were made: opening an older gallery for writing adds them.
_LATER_TABLES = frozenset({"index_trash", "erasures", "cluster_faces", "clusters", "cluster_cannot_link",
                           "cluster_seq"})

# Columns added to collections after the first release, with their types: a gallery made before
# one existed gains it when opened writable, and reads it as NULL when opened read-only.
# own_calibration: JSON of OwnCalibration (rates, thresholds and counts; nothing per face).
_LATER_COLLECTION_COLS = (("liveness", "TEXT"), ("target_fpir", "REAL"), ("own_calibration", "TEXT"))






def _in_list(n: int) -> str:
    return ",".join("?" * n)


def _fsync_dir(d: Path) -> None:
    """Make a rename or link in `d` durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# SQLite's primary result codes (the low byte of an exception's sqlite_errorcode).
_SQLITE_ERROR, _SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 1, 3, 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_FORMAT, _SQLITE_NOTADB = 11, 13, 14, 24, 26
# What a damaged or foreign schema makes a query say (SQLITE_ERROR is also a bad query: not damage).
_SCHEMA_DAMAGE = ("no such table", "no such column", "malformed")
_SQLITE_MAGIC = b"SQLite format 3\x00"

# `PRAGMA quick_check` reads every page: 0.10 s for a 210 MB file (10,000 faces with
# 20 KB crops; a 1,400-face gallery with crops is ~30 MB) on this 2-core machine with
# the file in the page cache, so it runs at every open up to this size. Bigger files
# are checked by the damage any query meets (sqlite3.DatabaseError) and by check().
QUICK_CHECK_UP_TO = 512 * 1024 * 1024
DEFAULT_BUSY_TIMEOUT_S = 60.0
# A WAL checkpoint blocked by a reader is retried this many times (each waits up
# to the busy timeout) before forget says the erasure is not complete.
CHECKPOINT_ATTEMPTS = 3


def recovery_hint(path: Path) -> str:
    return (f"recover what is readable with `sqlite3 {path} .recover | sqlite3 {path.with_suffix('.recovered.db')}`"
            " and open that file, or restore a backup")


def damaged_error(path: Path, detail: str) -> GalleryDamagedError:
    return GalleryDamagedError(f"{path}: the gallery file is damaged ({detail}); writes are refused; "
                               f"{recovery_hint(path)}", path=str(path), detail=detail)


def translate_error(exc: sqlite3.Error, path: Path) -> GalleryError:
    """The one error a user sees for a SQLite failure: busy, read-only, disk full,
    damaged (only for real damage), or another gallery error with SQLite's words."""
    primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    low = text.lower()
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in low or "is busy" in low:
        return GalleryError(f"{path}: the gallery is locked by another process and stayed locked past the "
                            "busy timeout; try again when it has finished", code="busy", path=str(path))
    if primary in (_SQLITE_READONLY, _SQLITE_PERM) or "readonly database" in low:
        return ReadOnlyError(f"{path}: the gallery is read-only; nothing was changed", path=str(path))
    if primary == _SQLITE_FULL or "disk is full" in low:
        return DiskFullError(f"{path}: the disk is full; the change was rolled back and everything committed "
                             "before it is kept", path=str(path))
    if primary == _SQLITE_IOERR:
        if _disk_nearly_full(path):
            return DiskFullError(f"{path}: the disk is full ({text}); the change was rolled back and everything "
                                 "committed before it is kept", path=str(path))
        return GalleryError(f"{path}: disk I/O error ({text})", code="io_error", path=str(path))
    if primary == _SQLITE_CANTOPEN:
        return GalleryError(f"{path}: cannot open the gallery file ({text})", code="cannot_open", path=str(path))
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(f"{path}: {text}", path=str(path))
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_FORMAT) or "malformed" in low or (
            primary in (_SQLITE_ERROR, 0) and any(m in low for m in _SCHEMA_DAMAGE)):
        return damaged_error(path, text)
    # Anything else (out of memory, interrupted, a protocol error) is not damage.
    return GalleryError(f"{path}: {text}", code="database_error", path=str(path))


def _disk_nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < 1 << 20
    except OSError:
        return False


def _os_error(exc: OSError, path: Path, doing: str) -> GalleryError:
    """An OSError on a gallery path as one line: disk full, read-only, or what the OS said."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return DiskFullError(f"{path}: the disk is full while {doing}; everything committed before is kept",
                             path=str(path))
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyError(f"{path}: cannot write ({exc.strerror}) while {doing}; the gallery is read-only "
                             "here", path=str(path))
    return GalleryError(f"{path}: {exc.strerror or exc} while {doing}", code="io_error", path=str(path))


class SQLiteStore(GalleryStore):
    backend = "sqlite"
    residue = "in the database file and its write-ahead log until a checkpoint"

    def __init__(self, path: str | Path, *, actor: str | None = None, create: bool = True,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, quick_check: bool | None = None):
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.index_dir = self.path.with_name(self.path.name + ".index")
        self.actor = actor or process_actor()
        self.busy_timeout_s = float(busy_timeout_s)
        self.read_only: str | None = None  # why writes are refused, if they are
        self.damaged: str | None = None  # what a check or a query found, if anything
        self._lock = threading.RLock()
        self._conn = None
        self._has_trash = False
        self._has_clusters = False
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder, not a gallery file (e.g. {self.path}/gallery.db)",
                               code="not_a_gallery", path=str(self.path))
        if not self.path.exists():
            if not create:
                raise NotFoundError(f"{self.path}: no gallery here; create one with `vultus gallery create`",
                                    kind="gallery", path=str(self.path))
            self._create_file()
        self._refuse_empty_file()
        self.read_only = self._why_read_only()
        try:
            self._conn = self._connect()
            self._init()
            if quick_check or (quick_check is None and self._size() <= QUICK_CHECK_UP_TO):
                self.damaged = self._quick_check()
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            err = translate_error(exc, self.path)
            if isinstance(err, GalleryDamagedError) and not self._has_sqlite_header():
                raise GalleryError(f"{self.path}: not a vultus gallery (not a SQLite database)",
                                   code="not_a_gallery", path=str(self.path)) from exc
            raise err from exc
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            raise

    # -- opening -----------------------------------------------------------
    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _has_sqlite_header(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                return fh.read(16) == _SQLITE_MAGIC
        except OSError:
            return False

    def _refuse_empty_file(self) -> None:
        """A new gallery appears complete (see _create_file), so an empty file at the
        path is not one being created: it is a truncated gallery or someone else's
        file. Making a new gallery in it would hide the loss."""
        try:
            mode = self.path.stat().st_mode
        except OSError as exc:
            raise GalleryError(f"{self.path}: cannot open the gallery file ({exc.strerror or exc})",
                               code="cannot_open", path=str(self.path)) from exc
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            raise GalleryError(f"{self.path}: not a regular file, so not a gallery", code="not_a_gallery",
                               path=str(self.path))
        wal = self.path.with_name(self.path.name + "-wal")
        if self._size() == 0 and not (wal.exists() and wal.stat().st_size > 0):
            raise GalleryError(f"{self.path}: an empty file (0 bytes), not a gallery; if it was one, restore it "
                               "from a backup; to start a new gallery, delete the file or choose another path",
                               code="not_a_gallery", path=str(self.path))

    def _create_file(self) -> None:
        """Create the gallery under a temporary name, complete with its schema, and
        link it into place: two processes creating the same new gallery at once
        never see a half-made file (one link wins; the other opens the winner's)."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the gallery here ({exc.strerror or exc}: {folder})",
                              path=str(self.path)) from exc
        tmp = folder / f".{self.path.name}.new-{secrets.token_hex(4)}"
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                self._create_schema(conn)
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: use theirs
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                # No hard links on this file system: move it into place unless someone was faster.
                if not self.path.exists():
                    os.replace(tmp, self.path)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot create the gallery here ({exc})", path=str(self.path)) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _os_error(exc, self.path, "creating the gallery") from exc
            raise OutputError(f"{self.path}: cannot create the gallery here ({exc.strerror or exc}: {folder})",
                              path=str(self.path)) from exc
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    tmp.with_name(tmp.name + suffix).unlink()
        _fsync_dir(folder)

    @staticmethod
    def _create_schema(conn) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _why_read_only(self) -> str | None:
        """Why this process cannot write the gallery (None if it can). os.access
        answers for the real user and also sees a read-only mount (even for root,
        who ignores file modes)."""
        if not os.access(self.path, os.W_OK):
            return "its file or file system does not allow writing"
        folder = self.path.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            # SQLite keeps its log (-wal) and shared memory (-shm) beside the file.
            side = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
            if not all(p.exists() and os.access(p, os.W_OK) for p in side):
                return f"its folder {folder} is read-only"
        return None

    def _connect(self):
        timeout = self.busy_timeout_s
        if not self.read_only:
            return sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # A WAL database on read-only media cannot make its shared-memory file. With
            # no log to replay, the file alone is the whole gallery: open it as immutable.
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise
            return sqlite3.connect(uri + "?immutable=1", uri=True, timeout=timeout, isolation_level=None,
                                   check_same_thread=False)

    def _init(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if names and app_id != APPLICATION_ID:
            raise GalleryError(f"{self.path}: a SQLite database but not a vultus gallery; refusing to touch it",
                               code="not_a_gallery", path=str(self.path))
        if not self.read_only and c.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA foreign_keys=ON")
        c.execute("PRAGMA secure_delete=ON")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path}: gallery schema version {version} is newer than this vultus "
                               f"understands ({SCHEMA_VERSION}); upgrade vultus", code="not_a_gallery",
                               path=str(self.path))
        if not names or not names >= _LATER_TABLES:
            # An empty SQLite file (made by someone else) becomes a gallery, and a gallery
            # made before index_trash existed gains it; IF NOT EXISTS settles races.
            if self.read_only:
                if not names:
                    raise ReadOnlyError(f"{self.path}: an empty database on a read-only path; nothing to read",
                                        path=str(self.path))
            else:
                with self._lock:
                    self._create_schema(c)
                names |= _LATER_TABLES
        self._has_trash = {"index_trash", "erasures"} <= names  # a read-only gallery made before it existed has none
        self._collection_cols = COLLECTION_COLS
        if "collections" in names or not self.read_only:
            columns = {r[1] for r in c.execute("PRAGMA table_info(collections)")}
            for column, kind in _LATER_COLLECTION_COLS:
                if column in columns:
                    continue
                if self.read_only:
                    self._collection_cols = self._collection_cols.replace(column, "NULL")
                else:
                    # Another process may add the column first (then this one's ALTER fails harmlessly).
                    with self._lock, contextlib.suppress(sqlite3.OperationalError):
                        c.execute(f"ALTER TABLE collections ADD COLUMN {column} {kind}")
        self._has_clusters = "cluster_faces" in names

    def _quick_check(self) -> str | None:
        rows = self._conn.execute("PRAGMA quick_check(3)").fetchall()
        lines = [ln.strip() for r in rows for ln in str(r[0]).splitlines()]
        problems = [ln for ln in lines if ln and ln != "ok" and not ln.startswith("***")]
        return "; ".join(problems)[:300] if problems else None

    def check(self) -> str | None:
        """Run SQLite's quick check now (every page is read); returns what is
        wrong, or None. A damaged gallery refuses writes from then on."""
        with self._guard():
            found = self._quick_check()
        if found:
            self.damaged = found
        return found

    def index_folder(self) -> Path:
        return self.index_dir

    def migrate(self) -> MigrationReport:
        """The schema is brought up to date when the file is opened writable (missing
        tables and columns are added); this says where it stands."""
        self.require_writable()
        version = self._q("PRAGMA user_version")[0][0]
        return MigrationReport(self.backend, self.location, version, version)

    def require_writable(self) -> None:
        """Raise before any work starts when this gallery cannot be changed."""
        if self.read_only:
            raise ReadOnlyError(f"{self.path}: the gallery is read-only ({self.read_only}); nothing was changed",
                                path=str(self.path), reason=self.read_only)
        if self.damaged:
            raise damaged_error(self.path, self.damaged)

    @contextlib.contextmanager
    def _guard(self):
        """Turn a SQLite failure into one gallery error (remembering damage)."""
        if self._conn is None:
            raise GalleryError(f"{self.path}: the gallery is closed", code="closed", path=str(self.path))
        try:
            yield
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise  # a bug, not the file: keep the traceback
            err = translate_error(exc, self.path)
            if isinstance(err, GalleryDamagedError):
                self.damaged = self.damaged or str(exc)
            elif isinstance(err, ReadOnlyError):
                self.read_only = self.read_only or "SQLite cannot write it"
            raise err from exc

    @contextlib.contextmanager
    def _write(self):
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so
        two processes queue here rather than deadlock on a read-to-write upgrade."""
        self.require_writable()
        with self._lock, self._guard():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self):
        """A consistent snapshot for reads spanning several statements."""
        with self._lock, self._guard():
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("COMMIT")

    def _q(self, sql: str, params=()) -> list[tuple]:
        with self._lock, self._guard():
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):  # closing a damaged or vanished file must not raise
                    self._conn.close()
                self._conn = None

    def _audit(self, conn, action: str, collection: str, detail: dict) -> None:
        conn.execute("INSERT INTO audit (at, actor, action, collection, detail) VALUES (?, ?, ?, ?, ?)",
                     (now(), self.actor, action, collection, json.dumps(detail, sort_keys=True)))

    def _redact_person(self, conn, collection: str, person_id: int, name: str) -> str:
        """Rewrite every earlier audit record of the collection that names or identifies
        the person being forgotten (see storage/audit.py); returns the opaque token."""
        rows = conn.execute("SELECT id, action, detail FROM audit WHERE collection = ? ORDER BY id",
                            (collection,)).fetchall()
        token, changed = redact_person(rows, person_id, name)
        for rid, text in changed:
            conn.execute("UPDATE audit SET detail = ? WHERE id = ?", (text, rid))
        return token

    def _bump(self, conn, collection_id: int) -> None:
        conn.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,))

    def _erased(self, conn, collection_id: int) -> None:
        """Mark this change (after its _bump) as one that erased vectors."""
        conn.execute("INSERT OR REPLACE INTO erasures (collection_id, generation) "
                     "SELECT id, generation FROM collections WHERE id = ?", (collection_id,))

    # -- collections -------------------------------------------------------

    def create_collection(self, name, contract, detector, target_fmr, keep_crops, aggregation, *,
                          exist_ok: bool = False, target_fpir: float | None = None) -> Collection:
        name = check_name(name, "collection")
        with self._write() as w:
            # INSERT OR IGNORE inside the write lock: of two processes creating the same
            # collection at once, one inserts and the other finds it (exist_ok) or is told.
            cur = w.execute(
                "INSERT OR IGNORE INTO collections (name, embedder, embedder_version, embedder_alignment, dim, "
                "detector, target_fmr, keep_crops, aggregation, created_at, target_fpir) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, contract.name, contract.version, contract.alignment, contract.dim, detector,
                 target_fmr, int(keep_crops), aggregation, now(), target_fpir))
            if cur.rowcount == 0:
                if exist_ok:
                    return collection_from_row(w.execute(
                        f"SELECT {self._collection_cols} FROM collections WHERE name = ?", (name,)).fetchone())
                raise ConflictError(f"collection {name!r} already exists", collection=name)
            self._audit(w, "create", name, {"embedder": contract.to_dict(), "detector": detector,
                                             "target_fmr": target_fmr, "target_fpir": target_fpir,
                                             "keep_crops": keep_crops,
                                             "aggregation": aggregation})
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        rows = self._q(f"SELECT {self._collection_cols} FROM collections WHERE name = ?", (name,))
        if not rows:
            names = [r[0] for r in self._q("SELECT name FROM collections ORDER BY name")]
            known = f"; collections here: {', '.join(names)}" if names else "; this gallery has no collections yet"
            raise NotFoundError(f"no collection {name!r} in {self.location}{known}")
        return collection_from_row(rows[0])

    def collections(self) -> list[Collection]:
        rows = self._q(f"SELECT {self._collection_cols} FROM collections ORDER BY name")
        return [collection_from_row(r) for r in rows]

    def update_decision(self, collection_id, *, target_fmr=None, override=None, clear_override=False,
                        aggregation=None, target_fpir=None, own_calibration=None,
                        clear_own_calibration=False) -> Collection:
        with self._write() as w:
            name = w.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()[0]
            detail = apply_decision_update(
                w.execute, "?", collection_id, target_fmr=target_fmr, override=override,
                clear_override=clear_override, aggregation=aggregation, target_fpir=target_fpir,
                own_calibration=own_calibration, clear_own_calibration=clear_own_calibration)
            self._audit(w, "decision", name, detail)
        return self.collection(name)

    def delete_collection(self, collection_id) -> dict[str, int]:
        with self._write() as w:
            name = self._cname(w, collection_id)
            people = w.execute("SELECT count(*) FROM people WHERE collection_id = ?", (collection_id,)).fetchone()[0]
            if people:
                raise ConflictError(f"collection {name!r} still holds {people} people; forget them first",
                                    collection=name, people=people)
            # Faces cannot outlive their people (foreign keys), so nothing biometric is left here.
            w.execute("DELETE FROM embeddings WHERE collection_id = ?", (collection_id,))
            w.execute("DELETE FROM index_state WHERE collection_id = ?", (collection_id,))
            w.execute("DELETE FROM collections WHERE id = ?", (collection_id,))
            self._audit(w, "delete_collection", name, {})
        return {"people": people}

    def set_liveness(self, collection_id, point) -> Collection:
        with self._write() as w:
            name = w.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()[0]
            w.execute("UPDATE collections SET liveness = ? WHERE id = ?", (point, collection_id))
            self._audit(w, "decision", name, {"liveness": point})
        return self.collection(name)

    def switch_embedder(self, collection_id, new) -> int:
        with self._write() as w:
            name, old = w.execute("SELECT name, embedder FROM collections WHERE id = ?",
                                  (collection_id,)).fetchone()
            missing = w.execute(
                "SELECT count(*) FROM faces f WHERE f.collection_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.embedder = ?)",
                (collection_id, new.key)).fetchone()[0]
            if missing:
                raise GalleryError(f"cannot switch {name!r} to {new.name}: {missing} faces have no {new.name} "
                                   "embedding yet")
            deleted = w.execute("DELETE FROM embeddings WHERE collection_id = ? AND embedder != ?",
                                (collection_id, new.key)).rowcount
            w.execute("UPDATE collections SET embedder = ?, embedder_version = ?, embedder_alignment = ?, dim = ?, "
                      "threshold = NULL, threshold_fmr = NULL, threshold_source = NULL WHERE id = ?",
                      (new.name, new.version, new.alignment, new.dim, collection_id))
            w.execute("DELETE FROM index_state WHERE collection_id = ?", (collection_id,))
            self._bump(w, collection_id)
            self._audit(w, "reembed", name, {"from": old, "to": new.to_dict(), "old_embeddings_deleted": deleted})
        return deleted

    # -- people ------------------------------------------------------------
    def people(self, collection_id) -> list[Person]:
        rows = self._q("SELECT p.id, p.name, p.metadata, p.created_at, count(f.id) FROM people p "
                       "LEFT JOIN faces f ON f.person_id = p.id WHERE p.collection_id = ? "
                       "GROUP BY p.id ORDER BY p.name", (collection_id,))
        return [Person(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def _person_row(self, conn, collection_id, name):
        row = conn.execute("SELECT p.id, p.name, p.metadata, p.created_at, "
                           "(SELECT count(*) FROM faces f WHERE f.person_id = p.id) "
                           "FROM people p WHERE p.collection_id = ? AND p.name = ?",
                           (collection_id, name)).fetchone()
        if row is None:
            cname = conn.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()
            raise NotFoundError(f"no person {name!r} in collection {cname[0] if cname else collection_id!r}")
        return Person(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def person(self, collection_id, name) -> Person:
        with self._lock, self._guard():
            return self._person_row(self._conn, collection_id, name)

    def _cname(self, conn, collection_id) -> str:
        return conn.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()[0]

    def rename_person(self, collection_id, old, new) -> Person:
        new = check_name(new, "person")
        with self._write() as w:
            p = self._person_row(w, collection_id, old)
            try:
                w.execute("UPDATE people SET name = ? WHERE id = ?", (new, p.id))
            except sqlite3.IntegrityError as exc:
                raise GalleryError(f"there is already a person {new!r}; use merge to combine them") from exc
            self._audit(w, "rename", self._cname(w, collection_id), {"person_id": p.id, "from": old, "to": new})
        return self.person(collection_id, new)

    def merge_people(self, collection_id, source, target) -> int:
        if source == target:
            raise GalleryError("cannot merge a person into themselves")
        with self._write() as w:
            src = self._person_row(w, collection_id, source)
            dst = self._person_row(w, collection_id, target)
            moved = w.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (dst.id, src.id)).rowcount
            w.execute("UPDATE images SET person_id = ? WHERE person_id = ?", (dst.id, src.id))
            w.execute("DELETE FROM people WHERE id = ?", (src.id,))
            self._audit(w, "merge", self._cname(w, collection_id),
                        {"from": source, "from_id": src.id, "into": target, "into_id": dst.id, "faces": moved})
        return moved

    def set_person_metadata(self, collection_id, name, metadata) -> Person:
        text = json.dumps(metadata, sort_keys=True)
        with self._write() as w:
            p = self._person_row(w, collection_id, name)
            w.execute("UPDATE people SET metadata = ? WHERE id = ?", (text, p.id))
            self._audit(w, "metadata", self._cname(w, collection_id), {"person_id": p.id, "keys": sorted(metadata)})
        return self.person(collection_id, name)

    def forget_person(self, collection_id, name) -> ForgottenData:
        with self._write() as w:
            p = self._person_row(w, collection_id, name)
            rows = w.execute("SELECT e.embedder, e.id, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id "
                             "WHERE f.person_id = ? ORDER BY e.embedder, e.id", (p.id,)).fetchall()
            ids: dict[str, list[int]] = {}
            vecs: dict[str, list[np.ndarray]] = {}
            for emb, eid, blob in rows:
                ids.setdefault(emb, []).append(eid)
                vecs.setdefault(emb, []).append(as_f32(blob))
            face_ids = [r[0] for r in w.execute("SELECT id FROM faces WHERE person_id = ? ORDER BY id", (p.id,))]
            crops = w.execute("DELETE FROM crops WHERE face_id IN (SELECT id FROM faces WHERE person_id = ?)",
                              (p.id,)).rowcount
            w.execute("DELETE FROM embeddings WHERE face_id IN (SELECT id FROM faces WHERE person_id = ?)", (p.id,))
            faces = w.execute("DELETE FROM faces WHERE person_id = ?", (p.id,)).rowcount
            images = w.execute("DELETE FROM images WHERE person_id = ?", (p.id,)).rowcount
            w.execute("DELETE FROM people WHERE id = ?", (p.id,))
            # A photo cluster named after the person is the person too: its faces (embeddings,
            # thumbnails) and its name go in the same transaction.
            named = [r[0] for r in w.execute("SELECT id FROM clusters WHERE collection_id = ? AND name = ?",
                                             (collection_id, p.name))]
            if named:
                w.execute(f"DELETE FROM cluster_faces WHERE collection_id = ? AND cluster_id IN "
                          f"({_in_list(len(named))})", (collection_id, *named))
                w.execute(f"DELETE FROM clusters WHERE collection_id = ? AND id IN ({_in_list(len(named))})",
                          (collection_id, *named))
            # Every saved index of the collection holds the vectors: they are listed for
            # deletion in this transaction, so a crash before they are unlinked cannot keep
            # them (the next open deletes them and rebuilds from these rows).
            self._trash_index_state(w, collection_id)
            self._bump(w, collection_id)
            self._erased(w, collection_id)
            cname = self._cname(w, collection_id)
            token = self._redact_person(w, cname, p.id, p.name)
            # The one record that stays: who, when, how much, and the opaque token that
            # replaced the person in earlier records; no name, vectors, crops or paths.
            self._audit(w, "forget", cname, {"person_id": token, "faces": faces, "images": images,
                                             "embeddings": len(rows), "crops": crops})
        return ForgottenData(
            person_id=p.id, faces=faces, crops=crops, images=images,
            embedding_ids={k: np.asarray(v, dtype=np.int64) for k, v in ids.items()},
            vectors={k: np.stack(v) for k, v in vecs.items()},
            face_ids=np.asarray(face_ids, dtype=np.int64), audit_token=token)

    def references(self, collection_id, person_id, embedding_ids, face_ids) -> dict[str, int]:
        emb = [int(i) for i in embedding_ids]
        fids = [int(i) for i in face_ids]
        found_faces: set[int] = set()
        found_emb: set[int] = set()
        crops = 0
        with self._read() as r:
            people = r.execute("SELECT count(*) FROM people WHERE id = ?", (person_id,)).fetchone()[0]
            images = r.execute("SELECT count(*) FROM images WHERE person_id = ?", (person_id,)).fetchone()[0]
            found_faces.update(x[0] for x in r.execute("SELECT id FROM faces WHERE person_id = ?", (person_id,)))
            for i in range(0, len(emb), 900):
                chunk = emb[i:i + 900]
                found_emb.update(x[0] for x in r.execute(
                    f"SELECT id FROM embeddings WHERE id IN ({_in_list(len(chunk))})", chunk))
            for i in range(0, len(fids), 900):
                chunk = fids[i:i + 900]
                n = _in_list(len(chunk))
                found_faces.update(x[0] for x in r.execute(f"SELECT id FROM faces WHERE id IN ({n})", chunk))
                found_emb.update(x[0] for x in r.execute(f"SELECT id FROM embeddings WHERE face_id IN ({n})", chunk))
                crops += r.execute(f"SELECT count(*) FROM crops WHERE face_id IN ({n})", chunk).fetchone()[0]
        return {"people": people, "faces": len(found_faces), "images": images, "embeddings": len(found_emb),
                "crops": crops}

    def checkpoint(self, attempts: int = CHECKPOINT_ATTEMPTS) -> bool:
        """Fold the WAL into the database and truncate it, so deleted rows survive
        neither in the log nor as old page versions. A reader elsewhere holding an
        older snapshot blocks it: each attempt waits up to the busy timeout, and
        False means the log still holds what the last changes replaced."""
        if self.read_only:
            return False
        for attempt in range(max(1, attempts)):
            with self._lock, self._guard():
                try:
                    busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                except sqlite3.OperationalError as exc:  # another connection is checkpointing
                    if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                        raise
                    busy = 1
            if busy == 0:
                return True
            if attempt + 1 < attempts:
                time.sleep(min(1.0, 0.1 * (attempt + 1)))
        return False

    # -- faces -------------------------------------------------------------
    def known_images(self, collection_id, sha256s) -> dict[str, str]:
        out: dict[str, str] = {}
        sha256s = list(dict.fromkeys(sha256s))
        for i in range(0, len(sha256s), 500):
            chunk = sha256s[i:i + 500]
            rows = self._q(f"SELECT i.sha256, p.name FROM images i JOIN people p ON p.id = i.person_id "
                           f"WHERE i.collection_id = ? AND i.sha256 IN ({_in_list(len(chunk))})",
                           (collection_id, *chunk))
            out.update(dict(rows))
        return out

    def add_faces(self, collection_id, embedder, faces: Sequence[NewFace]) -> list[tuple[int, int] | None]:
        if not faces:
            return []
        out: list[tuple[int, int] | None] = []
        stamp = now()
        for nf in faces:
            if check_name(nf.person, "person") != nf.person:
                raise GalleryError(f"person name {nf.person.strip()!r} has surrounding whitespace",
                                   code="invalid_name", kind="person", reason="whitespace",
                                   length=len(nf.person), limit=MAX_NAME_LENGTH)
        with self._write() as w:
            person_ids: dict[str, int] = {}
            for nf in faces:
                if nf.person not in person_ids:
                    w.execute("INSERT OR IGNORE INTO people (collection_id, name, created_at) VALUES (?, ?, ?)",
                              (collection_id, nf.person, stamp))
                    person_ids[nf.person] = w.execute("SELECT id FROM people WHERE collection_id = ? AND name = ?",
                                                      (collection_id, nf.person)).fetchone()[0]
                pid = person_ids[nf.person]
                # The image row is the dedupe: a second enroll of the same bytes (by this or
                # another process) hits the primary key and is skipped.
                cur = w.execute("INSERT OR IGNORE INTO images (collection_id, sha256, person_id) VALUES (?, ?, ?)",
                                (collection_id, nf.image_sha256, pid))
                if cur.rowcount == 0:
                    out.append(None)
                    continue
                f = nf.face
                fid = w.execute(
                    "INSERT INTO faces (collection_id, person_id, image_sha256, image_path, x1, y1, x2, y2, "
                    "landmarks, detector, detector_score, quality, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (collection_id, pid, nf.image_sha256, nf.image_path, *f.box.as_tuple(), f32_blob(f.landmarks),
                     f.detector, float(f.score), json.dumps(nf.quality, sort_keys=True), stamp)).lastrowid
                eid = w.execute("INSERT INTO embeddings (collection_id, embedder, face_id, vector) "
                                "VALUES (?, ?, ?, ?)", (collection_id, embedder, fid, f32_blob(nf.vector))).lastrowid
                if nf.crop_jpeg is not None and nf.crop_face is not None:
                    w.execute("INSERT INTO crops (face_id, jpeg, box, landmarks) VALUES (?, ?, ?, ?)",
                              (fid, nf.crop_jpeg, f32_blob(np.array(nf.crop_face.box.as_tuple())),
                               f32_blob(nf.crop_face.landmarks)))
                out.append((fid, eid))
            added = sum(1 for o in out if o is not None)
            if added:
                self._bump(w, collection_id)
                people = sorted({nf.person for nf, o in zip(faces, out, strict=True) if o is not None})
                self._audit(w, "enroll", self._cname(w, collection_id),
                            {"faces": added, "people": len(people), "embedder": embedder})
        return out


    def faces(self, collection_id, person=None) -> list[FaceRecord]:
        sql = (f"SELECT {FACE_COLS} FROM faces f JOIN people p ON p.id = f.person_id "
               "LEFT JOIN crops c ON c.face_id = f.id WHERE f.collection_id = ?")
        params: tuple = (collection_id,)
        if person is not None:
            pid = self.person(collection_id, person).id
            sql += " AND f.person_id = ?"
            params += (pid,)
        return [face_from_row(r) for r in self._q(sql + " ORDER BY f.id", params)]

    def _face_row(self, conn, collection_id, face_id):
        row = conn.execute("SELECT f.id, f.person_id, f.image_sha256 FROM faces f WHERE f.id = ? "
                           "AND f.collection_id = ?", (face_id, collection_id)).fetchone()
        if row is None:
            raise NotFoundError(f"no face {face_id} in collection {self._cname(conn, collection_id)!r}")
        return row

    def move_face(self, collection_id, face_id, person) -> None:
        with self._write() as w:
            _, old_pid, sha = self._face_row(w, collection_id, face_id)
            dst = self._person_row(w, collection_id, person)
            w.execute("UPDATE faces SET person_id = ? WHERE id = ?", (dst.id, face_id))
            w.execute("UPDATE images SET person_id = ? WHERE collection_id = ? AND sha256 = ?",
                      (dst.id, collection_id, sha))
            self._audit(w, "move", self._cname(w, collection_id),
                        {"face_id": face_id, "from_id": old_pid, "to_id": dst.id})

    def delete_face(self, collection_id, face_id) -> dict[str, np.ndarray]:
        with self._write() as w:
            _, pid, sha = self._face_row(w, collection_id, face_id)
            rows = w.execute("SELECT embedder, id FROM embeddings WHERE face_id = ?", (face_id,)).fetchall()
            w.execute("DELETE FROM crops WHERE face_id = ?", (face_id,))
            w.execute("DELETE FROM embeddings WHERE face_id = ?", (face_id,))
            w.execute("DELETE FROM faces WHERE id = ?", (face_id,))
            w.execute("DELETE FROM images WHERE collection_id = ? AND sha256 = ? AND NOT EXISTS "
                      "(SELECT 1 FROM faces WHERE collection_id = ? AND image_sha256 = ?)",
                      (collection_id, sha, collection_id, sha))
            self._bump(w, collection_id)
            self._erased(w, collection_id)
            self._audit(w, "delete_face", self._cname(w, collection_id), {"face_id": face_id, "person_id": pid})
        out: dict[str, list[int]] = {}
        for emb, eid in rows:
            out.setdefault(emb, []).append(eid)
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}

    def crop_jpeg(self, collection_id, face_id) -> bytes | None:
        with self._read() as r:
            self._face_row(r, collection_id, face_id)
            row = r.execute("SELECT jpeg FROM crops WHERE face_id = ?", (face_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def crop_items(self, collection_id, missing_embedder, limit) -> list[CropItem]:
        rows = self._q(
            "SELECT f.id, c.jpeg, c.box, c.landmarks, f.x1, f.y1, f.x2, f.y2, f.landmarks, f.detector, "
            "f.detector_score, f.image_path, f.image_sha256 FROM faces f LEFT JOIN crops c ON c.face_id = f.id "
            "WHERE f.collection_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.embedder = ?) ORDER BY f.id LIMIT ?",
            (collection_id, missing_embedder, limit))
        out = []
        for (fid, jpeg, cbox, clm, x1, y1, x2, y2, lm, det, score, path, sha) in rows:
            source = Face(box=Box(x1, y1, x2, y2), score=score, landmarks=as_f32(lm, (5, 2)).copy(), detector=det)
            crop_face = None
            if jpeg is not None:
                b = as_f32(cbox)
                crop_face = Face(box=Box(*map(float, b)), score=score, landmarks=as_f32(clm, (5, 2)).copy(),
                                 detector=det)
            out.append(CropItem(fid, jpeg, crop_face, source, path, sha))
        return out

    def add_embeddings(self, collection_id, embedder, face_ids, vectors) -> None:
        with self._write() as w:
            w.executemany("INSERT OR REPLACE INTO embeddings (collection_id, embedder, face_id, vector) "
                          "VALUES (?, ?, ?, ?)",
                          [(collection_id, embedder, int(f), f32_blob(v)) for f, v in zip(face_ids, vectors,
                                                                                        strict=True)])
            self._bump(w, collection_id)

    # -- embeddings --------------------------------------------------------
    def vectors(self, collection_id, embedder, ids=None, batch=65536):
        if ids is None:
            last = 0
            while True:
                rows = self._q("SELECT id, vector FROM embeddings WHERE collection_id = ? AND embedder = ? "
                               "AND id > ? ORDER BY id LIMIT ?", (collection_id, embedder, last, batch))
                if not rows:
                    return
                yield self._unpack(rows)
                last = rows[-1][0]
        else:
            ids = [int(i) for i in np.asarray(ids).ravel()]
            for i in range(0, len(ids), 900):
                chunk = ids[i:i + 900]
                rows = self._q(f"SELECT id, vector FROM embeddings WHERE collection_id = ? AND embedder = ? "
                               f"AND id IN ({_in_list(len(chunk))}) ORDER BY id", (collection_id, embedder, *chunk))
                if rows:
                    yield self._unpack(rows)

    @staticmethod
    def _unpack(rows) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, vecs

    def embedding_ids(self, collection_id, embedder) -> np.ndarray:
        with self._lock, self._guard():
            cur = self._conn.execute("SELECT id FROM embeddings WHERE collection_id = ? AND embedder = ? ORDER BY id",
                                     (collection_id, embedder))
            return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def fingerprint(self, collection_id, embedder) -> IdFingerprint:
        count, max_id, h = self._q(
            f"SELECT count(*), coalesce(max(id), 0), coalesce(sum((id * {ID_HASH_MUL}) % {ID_HASH_MOD}), 0) "
            "FROM embeddings WHERE collection_id = ? AND embedder = ?", (collection_id, embedder))[0]
        return IdFingerprint(count, max_id, h)

    def generation(self, collection_id) -> int:
        rows = self._q("SELECT generation FROM collections WHERE id = ?", (collection_id,))
        return rows[0][0] if rows else -1

    def owners(self, collection_id, embedder, embedding_ids) -> dict[int, int]:
        ids = [int(i) for i in np.unique(np.asarray(embedding_ids, dtype=np.int64)) if i >= 0]
        out: dict[int, int] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            out.update(self._q(f"SELECT e.id, f.person_id FROM embeddings e JOIN faces f ON f.id = e.face_id "
                               f"WHERE e.collection_id = ? AND e.embedder = ? AND e.id IN ({_in_list(len(chunk))})",
                               (collection_id, embedder, *chunk)))
        return out

    def person_vectors(self, collection_id, embedder, person_ids) -> PersonVectors:
        pids = [int(p) for p in dict.fromkeys(person_ids)]
        rows, names = [], {}
        with self._read() as r:
            for i in range(0, len(pids), 900):
                chunk = pids[i:i + 900]
                rows += r.execute(
                    f"SELECT e.id, f.id, f.person_id, e.vector FROM faces f JOIN embeddings e ON e.face_id = f.id "
                    f"AND e.embedder = ? WHERE f.person_id IN ({_in_list(len(chunk))})", (embedder, *chunk)).fetchall()
                names.update(r.execute(f"SELECT id, name FROM people WHERE id IN ({_in_list(len(chunk))})",
                                       chunk).fetchall())
        n = len(rows)
        vecs = (np.frombuffer(b"".join(x[3] for x in rows), dtype=np.float32).reshape(n, -1) if n
                else np.zeros((0, 0), np.float32))
        return PersonVectors(embedding_ids=np.array([x[0] for x in rows], dtype=np.int64),
                             face_ids=np.array([x[1] for x in rows], dtype=np.int64),
                             person_ids=np.array([x[2] for x in rows], dtype=np.int64), vectors=vecs, names=names)

    # -- derived index bookkeeping -----------------------------------------
    def index_state(self, collection_id, embedder) -> IndexState | None:
        rows = self._q("SELECT collection_id, embedder, kind, file, count, max_id, id_hash, file_size, file_crc32, "
                       "built_at FROM index_state WHERE collection_id = ? AND embedder = ?", (collection_id, embedder))
        if not rows:
            return None
        r = rows[0]
        return IndexState(r[0], r[1], r[2], r[3], IdFingerprint(r[4], r[5], r[6]), r[7], r[8], r[9])

    def set_index_state(self, state: IndexState, *, snapshot_generation: int | None = None) -> bool:
        """Record a new index file; the file it replaces goes to the trash list in the
        same transaction (delete it with purge_trash). Refused (False) when vectors were
        erased after `snapshot_generation`, the store generation the index was built at."""
        with self._write() as w:
            if snapshot_generation is not None and self._has_trash:
                erased = w.execute("SELECT generation FROM erasures WHERE collection_id = ?",
                                   (state.collection_id,)).fetchone()
                if erased and erased[0] > snapshot_generation:
                    return False
            old = w.execute("SELECT file FROM index_state WHERE collection_id = ? AND embedder = ?",
                            (state.collection_id, state.embedder)).fetchone()
            if old and old[0] != state.file:
                w.execute("INSERT OR IGNORE INTO index_trash (file, since) VALUES (?, ?)", (old[0], now()))
            w.execute("DELETE FROM index_trash WHERE file = ?", (state.file,))
            w.execute("INSERT OR REPLACE INTO index_state (collection_id, embedder, kind, file, count, max_id, "
                      "id_hash, file_size, file_crc32, built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (state.collection_id, state.embedder, state.kind, state.file, state.ids.count,
                       state.ids.max_id, state.ids.id_hash, state.file_size, state.file_crc32, state.built_at))
        return True

    def clear_index_state(self, collection_id, embedder=None) -> None:
        with self._write() as w:
            self._trash_index_state(w, collection_id, embedder)

    @staticmethod
    def _trash_index_state(conn, collection_id, embedder=None) -> None:
        where, params = "collection_id = ?", (collection_id,)
        if embedder is not None:
            where, params = where + " AND embedder = ?", params + (embedder,)
        conn.execute(f"INSERT OR IGNORE INTO index_trash (file, since) SELECT file, ? FROM index_state "
                     f"WHERE {where}", (now(), *params))
        conn.execute(f"DELETE FROM index_state WHERE {where}", params)

    def referenced_index_files(self) -> set[str]:
        return {r[0] for r in self._q("SELECT file FROM index_state")}

    def trashed_index_files(self) -> set[str]:
        return {r[0] for r in self._q("SELECT file FROM index_trash")} if self._has_trash else set()

    def untrash_index_files(self, files) -> None:
        """Forget trash entries whose files are gone (best effort: a read-only or full
        gallery keeps the list, and the next open tries again)."""
        files = list(files)
        if not files or self.read_only or self.damaged:
            return
        with contextlib.suppress(GalleryError), self._write() as w:
            w.executemany("DELETE FROM index_trash WHERE file = ?", [(f,) for f in files])

    # -- audit and counts --------------------------------------------------
    # -- face clustering state ----------------------------------------------
    def clustering(self, collection_id) -> ClusteringState:
        if not self._has_clusters:  # a read-only gallery made before clustering existed
            return ClusteringState([], {}, [], 1)
        with self._read() as r:
            faces = [ClusterFaceRow(key=k, image_path=p, box=(x1, y1, x2, y2), detector_score=ds, quality=q,
                                    vector=as_f32(v), thumbnail=t or b"", cluster_id=c, pinned=bool(pin))
                     for k, p, x1, y1, x2, y2, ds, q, v, t, c, pin in r.execute(
                         "SELECT face_key, image_path, x1, y1, x2, y2, detector_score, quality, vector, thumbnail, "
                         "cluster_id, pinned FROM cluster_faces WHERE collection_id = ? ORDER BY rowid",
                         (collection_id,))]
            names = dict(r.execute("SELECT id, name FROM clusters WHERE collection_id = ? ORDER BY id",
                                   (collection_id,)).fetchall())
            links = [tuple(x) for x in r.execute("SELECT face_a, face_b FROM cluster_cannot_link "
                                                 "WHERE collection_id = ?", (collection_id,))]
            row = r.execute("SELECT next_id, generation FROM cluster_seq WHERE collection_id = ?",
                            (collection_id,)).fetchone()
        return ClusteringState(faces, names, links, int(row[0]) if row else 1, int(row[1]) if row else 0)

    def save_clustering(self, collection_id, change: ClusteringChange) -> None:
        at = now()
        with self._write() as w:
            row = w.execute("SELECT generation FROM cluster_seq WHERE collection_id = ?", (collection_id,)).fetchone()
            if change.base_generation is not None and (int(row[0]) if row else 0) != change.base_generation:
                # Another process changed the clusters since this step read them: its result
                # would be computed from a stale state. Nothing is written.
                raise ConflictError("the clusters changed while this step ran (another process?); run it again",
                                    code="cluster_conflict", collection=self._cname(w, collection_id))
            w.executemany(
                "INSERT OR IGNORE INTO cluster_faces (collection_id, face_key, image_path, x1, y1, x2, y2, "
                "detector_score, quality, vector, thumbnail, cluster_id, pinned, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(collection_id, f.key, f.image_path, *map(float, f.box), float(f.detector_score), float(f.quality),
                  f32_blob(f.vector), f.thumbnail or None, f.cluster_id, int(f.pinned), at) for f in change.add_faces])
            for cid, name in change.names.items():
                w.execute("INSERT INTO clusters (collection_id, id, name, created_at) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (collection_id, id) DO UPDATE SET name = excluded.name",
                          (collection_id, int(cid), name, at))
            w.executemany("UPDATE cluster_faces SET cluster_id = ? WHERE collection_id = ? AND face_key = ?",
                          [(c, collection_id, k) for k, c in change.assign.items()])
            w.executemany("UPDATE cluster_faces SET pinned = ? WHERE collection_id = ? AND face_key = ?",
                          [(int(p), collection_id, k) for k, p in change.pin.items()])
            if change.drop_clusters:
                ids = [int(i) for i in change.drop_clusters]
                w.execute(f"UPDATE cluster_faces SET cluster_id = NULL WHERE collection_id = ? "
                          f"AND cluster_id IN ({_in_list(len(ids))})", (collection_id, *ids))
                w.execute(f"DELETE FROM clusters WHERE collection_id = ? AND id IN ({_in_list(len(ids))})",
                          (collection_id, *ids))
            w.executemany("INSERT OR IGNORE INTO cluster_cannot_link (collection_id, face_a, face_b) VALUES (?, ?, ?)",
                          [(collection_id, *sorted(pair)) for pair in change.cannot_link])
            w.execute("INSERT INTO cluster_seq (collection_id, next_id, generation) VALUES (?, ?, 1) ON CONFLICT "
                      "(collection_id) DO UPDATE SET next_id = max(next_id, excluded.next_id), "
                      "generation = generation + 1", (collection_id, int(change.next_id or 1)))
            self._audit(w, change.action, self._cname(w, collection_id), change.detail)

    def audit(self, action, collection, detail) -> None:
        with self._write() as w:
            self._audit(w, action, collection, detail)

    def audit_log(self, collection=None, limit=100) -> list[AuditRecord]:
        sql = f"SELECT {AUDIT_COLS} FROM audit"
        params: tuple = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            params = (collection,)
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [audit_from_row(r) for r in rows]

    def counts(self, collection_id) -> dict[str, int]:
        with self._read() as r:
            name, version, alignment, dim = r.execute(
                "SELECT embedder, embedder_version, embedder_alignment, dim FROM collections WHERE id = ?",
                (collection_id,)).fetchone()
            emb = EmbedderContract(name, version, alignment, dim).key

            def one(sql, *params):
                return r.execute(sql, params).fetchone()[0]

            return {
                "people": one("SELECT count(*) FROM people WHERE collection_id = ?", collection_id),
                "faces": one("SELECT count(*) FROM faces WHERE collection_id = ?", collection_id),
                "images": one("SELECT count(*) FROM images WHERE collection_id = ?", collection_id),
                "embeddings": one("SELECT count(*) FROM embeddings WHERE collection_id = ? AND embedder = ?",
                                  collection_id, emb),
                "crops": one("SELECT count(*) FROM crops c JOIN faces f ON f.id = c.face_id "
                             "WHERE f.collection_id = ?", collection_id),
            }

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = self.path.with_name(self.path.name + suffix)
            if p.exists():
                total += p.stat().st_size
        return total
