"""Keeping each collection's ANN index in step with the store.

The index is derived data: everything in it can be recomputed from the
store's embeddings, so it is never the source of truth and never needs a
backup. It is saved next to the database so a process need not rebuild it at
every start, and the store records what each saved file holds (which ids, as
a fingerprint; its size and crc32). On first use a file is loaded only if it
is there, intact and matches its record; otherwise it is rebuilt. A loaded
index is then compared with the store's ids and brought up to date by adding
and removing the difference, which is what happens after another process
enrolled, or after a crash between committing rows and saving the index.

Files are written under a fresh name and only then recorded in the store, so
a crash at any point leaves either the old record and file or the new ones.
The record that replaces a file also lists the old one in the store's trash,
in the same transaction (so does a forget, for every file of the collection):
whatever was listed is deleted at once, and again at every open in case a
crash came first. A file being written is locked (flock) until it is recorded;
any other file of ours that no record names and no writer holds is a stray
from a crash and is deleted at the next open, whatever its age.

Names read from the store are never trusted as paths: a name must have the
exact form this module writes (`c<collection>-<embedder>-<8 hex><suffix>`),
so a hostile gallery file cannot make vultus read or delete anything else.
Read-only commands never write: only changes (enroll, forget, reindex...)
save an index.

All of that applies to a store with a local index folder (SQLite). A store
without one keeps no files here: the index is built in memory by each process
and kept in step the same way. A store with its own index (PostgreSQL's
pgvector HNSW, `GalleryStore.native_index`) needs none of it: its index is
written in the same transactions as its rows, and this module only hands it
out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.gallery.errors import GalleryError
from vultus.gallery.search import IndexFileError, VectorIndex, index_class
from vultus.gallery.storage.base import GalleryStore, IdFingerprint, IndexState
from vultus.gallery.storage.rows import now
from vultus.gallery.storage.sqlite import _fsync_dir, _os_error

try:  # POSIX: a writer locks its file until it is recorded, so a cleaner can tell a live writer from a crash
    import fcntl
except ImportError:  # pragma: no cover - Windows: fall back to an age rule
    fcntl = None
from vultus.gallery.types import Collection, IndexReport

log = logging.getLogger(__name__)

# Without flock (Windows) a stray index file is deleted once it is this old; a younger
# one may belong to a writer about to record it.
STRAY_AGE_S = 3600
# The only names an index file of ours can have (suffixes of the index kinds); the
# optional `.tmp-` prefix marks one still being written.
INDEX_NAME = re.compile(r"(?:\.tmp-)?c\d+-[A-Za-z0-9_.-]+-[0-9a-f]{8}\.(?:usearch|npz)\Z")
# When a loaded index misses more than this share of the store's ids, rebuilding
# is faster than adding them one batch at a time.
REBUILD_SHARE = 0.5


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def expected_name(name: str, collection_id: int, key: str, suffix: str) -> bool:
    """Whether `name` (from the store) is a file name this module would have written
    for this collection, embedder and index kind: a plain name, no folder part."""
    return isinstance(name, str) and bool(
        re.fullmatch(rf"c{collection_id}-{re.escape(_slug(key))}-[0-9a-f]{{8}}{re.escape(suffix)}", name))


def ours(name: str) -> bool:
    """Whether `name` has the form of an index file of ours (any collection)."""
    return isinstance(name, str) and bool(INDEX_NAME.fullmatch(name))


def _regular(path: Path) -> os.stat_result | None:
    """lstat of `path` if it is a regular file (not a folder, link or device), else None."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _remove_stray(path: Path, still_stray) -> bool:
    """Delete `path` if no live writer holds it (see IndexManager._write) and
    `still_stray()` says, with that known, that no record names it. The unlink
    happens while holding the lock, so a writer that opened the name a moment
    earlier sees it vanish when it gets its lock, and starts over."""
    if _regular(path) is None:
        return False
    if fcntl is None:
        st = _regular(path)
        if st is None or st.st_mtime > time.time() - STRAY_AGE_S or not still_stray():
            return False
        path.unlink(missing_ok=True)
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False  # a writer holds it
        if not still_stray():
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


@dataclass
class _Entry:
    index: VectorIndex
    ids: IdFingerprint  # exactly what `index` holds
    generation: int  # store generation at the last check
    file: str | None
    dirty: bool
    action: str
    reason: str
    removed_last_sync: int = 0


class IndexManager:
    def __init__(self, store: GalleryStore, kind: str = "hnsw", options: dict | None = None):
        self.store = store
        self.kind = kind
        self.cls = index_class(kind)
        self.options = options or {}
        self._entries: dict[tuple[int, str], _Entry] = {}
        # One lock for the in-memory indexes: threads of one process (a service)
        # share them, and a sync or rebuild must not run twice at once.
        self._lock = threading.RLock()
        self.folder: Path | None = store.index_folder()  # None: no index files (in memory, or native)
        self.clean_strays()

    # -- public ------------------------------------------------------------
    def get(self, coll: Collection, key: str | None = None) -> VectorIndex:
        """The collection's index, loaded or rebuilt, and in step with the store."""
        with self._lock:
            return self._ensure(coll, key or coll.contract.key).index

    def is_native(self, coll: Collection, key: str | None = None) -> bool:
        """Whether the store serves this index itself (always in step, never saved here)."""
        with self._lock:
            return self._ensure(coll, key or coll.contract.key).action == "native"

    def report(self, coll: Collection, key: str | None = None) -> IndexReport:
        key = key or coll.contract.key
        with self._lock:
            e = self._ensure(coll, key)
        stored = self.store.fingerprint(coll.id, key).count
        path = str(self.folder / e.file) if e.file and self.folder is not None else None
        return IndexReport(collection=coll.name, embedder=key, stored=stored, indexed=len(e.index),
                           action=e.action, reason=e.reason, path=path)

    def added(self, coll: Collection, key: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Rows this process just committed: add them to the loaded index."""
        with self._lock:
            e = self._entries.get((coll.id, key))
            if e is None or ids.size == 0 or e.action == "native":
                return
            before = e.generation
            e.index.add(ids, vectors)
            e.ids = _extend(e.ids, ids)
            e.dirty = True
            # One bump since our last look is our own commit: the index is still
            # complete. More means another writer too; the next get() re-checks.
            if self.store.generation(coll.id) == before + 1:
                e.generation = before + 1

    def rebuild(self, coll: Collection, key: str | None = None, reason: str = "rebuild requested") -> IndexReport:
        key = key or coll.contract.key
        with self._lock:
            if self._ensure(coll, key).action == "native":
                self._entries[(coll.id, key)].index.rebuild()
                return self.report(coll, key)
            gen = self.store.generation(coll.id)  # before reading the vectors
            e = self._entries[(coll.id, key)] = self._build(coll, key, reason)
            e.generation = gen
            self.save(coll.id, key)
        return self.report(coll, key)

    def catch_up(self, coll: Collection, key: str | None = None) -> int:
        """Bring the index in step with the store now; returns how many entries
        were removed because the store no longer has them."""
        with self._lock:
            return self._ensure(coll, key or coll.contract.key).removed_last_sync

    def prove_absent(self, coll: Collection, key: str, vectors: np.ndarray) -> bool:
        """After a forget: save the index and check that the saved file holds none
        of `vectors`' bytes; if it does (or the index cannot say), rebuild it from
        the store, which no longer has them, and check again. Every other file of
        the collection is deleted."""
        with self._lock:
            e = self._ensure(coll, key)
            if e.action == "native":
                # No file of ours holds them; the store deleted its index entries with the rows,
                # and checkpoint() (run by forget next) makes that final on disk.
                return True
            self.save(coll.id, key, force=True)
            proven = self._file_lacks(e, vectors)
            if not proven:
                gen = self.store.generation(coll.id)
                e = self._build(coll, key, "rebuilt after forget so no trace remains")
                e.generation = gen
                self._entries[(coll.id, key)] = e
                self.save(coll.id, key, force=True)
                proven = self._file_lacks(e, vectors, rebuilt=True)
            self.purge_unreferenced(coll.id)
        return proven

    def drop(self, collection_id: int, key: str | None = None) -> None:
        """Forget loaded indexes and delete their files (after a migration)."""
        with self._lock:
            for k in [k for k in self._entries if k[0] == collection_id and (key is None or k[1] == key)]:
                del self._entries[k]
        self.store.clear_index_state(collection_id, key)
        self.purge_unreferenced(collection_id)

    def save(self, collection_id: int | None = None, key: str | None = None, *, force: bool = False) -> None:
        with self._lock:
            for (cid, k), e in list(self._entries.items()):
                if e.action == "native" or self.folder is None:
                    continue  # the store keeps it, or there is nowhere to save it
                if (collection_id is None or cid == collection_id) and (key is None or k == key) and (e.dirty or force):
                    self._write(cid, k, e)

    def index_bytes(self, collection_id: int) -> int:
        with self._lock:
            native = [e.index.memory_bytes() for (cid, _), e in self._entries.items()
                      if cid == collection_id and e.action == "native"]
        if native:
            return sum(native)
        d = self.folder
        if d is None or not d.is_dir():
            return 0
        total = 0
        for p in d.glob(f"c{collection_id}-*"):
            st = _regular(p)
            total += st.st_size if st and ours(p.name) else 0
        return total

    def purge_trash(self) -> int:
        """Delete the index files that committed changes superseded (listed in the
        store's trash); returns how many were deleted."""
        d = self.folder
        if d is None:
            return 0
        trash = {f for f in self._trashed() if ours(f)}  # a hostile name is never a path
        gone, removed = [], 0
        for name in trash:
            path = d / name
            try:
                if _regular(path) is not None:
                    path.unlink()
                    removed += 1
                gone.append(name)
            except FileNotFoundError:
                gone.append(name)
            except OSError:
                continue  # read-only: it stays listed, and the next writable open deletes it
        if gone:
            self.store.untrash_index_files(gone)
        return removed

    def clean_strays(self, *, collection_id: int | None = None) -> int:
        """Delete superseded files (the trash) and every file of ours that no record
        names and no live writer holds: temporary files and files from a crash,
        whatever their age. Never raises: cleaning is best effort."""
        d = self.folder
        try:
            if d is None or not d.is_dir():
                return 0
            removed = self.purge_trash()
            prefix = f"c{collection_id}-" if collection_id is not None else "c"
            referenced = self._referenced()
            for p in d.iterdir():
                if not ours(p.name) or not p.name.removeprefix(".tmp-").startswith(prefix) or p.name in referenced:
                    continue
                removed += _remove_stray(p, lambda p=p: p.name not in self._referenced())
            return removed
        except (OSError, GalleryError):
            return 0

    def purge_unreferenced(self, collection_id: int) -> int:
        """Delete every unreferenced file of a collection that no writer holds."""
        return self.clean_strays(collection_id=collection_id)

    # -- internals ---------------------------------------------------------
    def _referenced(self) -> set[str]:
        return self.store.referenced_index_files()

    def _trashed(self) -> set[str]:
        return self.store.trashed_index_files()

    def _dim(self, coll: Collection, key: str) -> int:
        if key == coll.contract.key:
            return coll.contract.dim
        from vultus.models.registry import get_spec

        return int(get_spec(key.split("@", 1)[0], task="embed").dim or 0)

    def _ensure(self, coll: Collection, key: str) -> _Entry:
        e = self._entries.get((coll.id, key))
        if e is not None and e.action == "native":
            return e
        if e is None:
            native = self.store.native_index(coll.id, key, self._dim(coll, key))
            if native is not None:
                e = _Entry(native, IdFingerprint(0, 0, 0), -1, None, dirty=False, action="native",
                           reason=native.describe())
                self._entries[(coll.id, key)] = e
                return e
        gen = self.store.generation(coll.id)
        if e is not None and e.generation == gen:
            return e
        if e is None:
            e = self._open(coll, key)
            self._entries[(coll.id, key)] = e
        self._sync(coll, key, e)
        e.generation = gen
        return e

    def _open(self, coll: Collection, key: str) -> _Entry:
        if self.folder is None:
            return self._build(coll, key, "built in memory (this gallery keeps no index files)")
        state = self.store.index_state(coll.id, key)
        if state is None:
            return self._build(coll, key, "no index file yet")
        if state.kind != self.kind:
            return self._build(coll, key, f"index kind changed from {state.kind} to {self.kind}")
        if not expected_name(state.file, coll.id, key, self.cls.suffix):
            return self._build(coll, key, "the gallery records an index file name of the wrong form "
                                          f"({str(state.file)[:80]!r}); ignored")
        d = self.folder
        if d.exists() and not d.is_dir():
            return self._build(coll, key, f"{d} should be the index folder but is a file")
        path = d / state.file
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return self._build(coll, key, f"index file {state.file} is missing")
        except OSError as exc:
            return self._build(coll, key, f"index file {state.file} cannot be read ({exc.strerror})")
        if not stat.S_ISREG(st.st_mode):
            return self._build(coll, key, f"index file {state.file} is not a regular file (a folder or a link)")
        if st.st_size != state.file_size:
            return self._build(coll, key, f"index file {state.file} has {st.st_size} bytes, its record says "
                                          f"{state.file_size} (truncated or replaced)")
        try:
            if file_crc32(path) != state.file_crc32:
                return self._build(coll, key, f"index file {state.file} fails its checksum (corrupt)")
            index = self.cls.load(path, self._dim(coll, key), **self.options)
        except IndexFileError as exc:
            return self._build(coll, key, f"index file {state.file} cannot be read ({exc})")
        except OSError as exc:  # replaced or removed by another process meanwhile, or unreadable
            return self._build(coll, key, f"index file {state.file} cannot be read ({exc.strerror or exc})")
        held = IdFingerprint.of(index.keys())
        if held != state.ids:
            return self._build(coll, key, f"index file {state.file} does not hold what its record says")
        return _Entry(index, held, -1, state.file, dirty=False, action="loaded", reason=f"read {state.file}")

    def _build(self, coll: Collection, key: str, reason: str) -> _Entry:
        log.info("rebuilding the index of collection %r from the database: %s", coll.name, reason)
        index = self.cls(self._dim(coll, key), **self.options)
        for ids, vectors in self.store.vectors(coll.id, key):
            index.add(ids, vectors)
        held = IdFingerprint.of(index.keys())
        return _Entry(index, held, -1, None, dirty=True, action="rebuilt", reason=reason)

    def _sync(self, coll: Collection, key: str, e: _Entry) -> None:
        e.removed_last_sync = 0
        stored = self.store.fingerprint(coll.id, key)
        if stored == e.ids:
            return
        db_ids = self.store.embedding_ids(coll.id, key)
        have = e.index.keys()
        extra = np.setdiff1d(have, db_ids, assume_unique=True)
        missing = np.setdiff1d(db_ids, have, assume_unique=True)
        if missing.size > max(10_000, REBUILD_SHARE * db_ids.size):
            fresh = self._build(coll, key, f"{missing.size} embeddings were not indexed")
            e.index, e.ids, e.dirty, e.action, e.reason = fresh.index, fresh.ids, True, fresh.action, fresh.reason
            e.removed_last_sync = int(extra.size)
            return
        if extra.size:
            e.removed_last_sync = e.index.remove(extra)
            e.index.scrub(int(extra.size))
        for ids, vectors in self.store.vectors(coll.id, key, ids=missing):
            e.index.add(ids, vectors)
        e.ids = IdFingerprint.of(e.index.keys())
        e.dirty = True
        if e.action in ("loaded", "fresh"):
            e.action = "synced"
        e.reason = f"{missing.size} added and {extra.size} removed to match the store"

    def _write(self, collection_id: int, key: str, e: _Entry) -> None:
        """Save `e` under a fresh name, record it, delete what it replaced. The file is
        flock'ed from creation until it is recorded, so a cleaner in another process
        leaves it alone; on any failure the new file is removed and nothing changes."""
        self.store.require_writable()
        d = self.folder
        if d.exists() and not d.is_dir():
            raise GalleryError(f"{d}: should be the gallery's index folder but is a file; move it away (the "
                               "index is rebuilt from the gallery)", code="index_path_blocked", path=str(d))
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, d, "creating the index folder") from exc
        fd, name = self._create_locked(d, collection_id, key)
        tmp, final = d / (".tmp-" + name), d / name
        recorded = False
        try:
            e.index.save(tmp)
            os.fsync(fd)  # usearch and numpy write in place: same file as fd
            size, crc = os.stat(tmp).st_size, file_crc32(tmp)
            os.replace(tmp, final)
            _fsync_dir(d)
            recorded = self.store.set_index_state(
                IndexState(collection_id, key, self.kind, name, e.ids, size, crc, now()),
                snapshot_generation=e.generation)
        except OSError as exc:
            raise _os_error(exc, d, "saving the index") from exc
        finally:
            if not recorded:
                for p in (tmp, final):
                    with contextlib.suppress(OSError):
                        p.unlink()
            os.close(fd)  # releases the lock, after the record is committed
        if not recorded:
            # Another process erased vectors after this index was built: it may hold them.
            # Not saved; the next look at the store removes them (and a later save records it).
            e.generation = -1
            return
        e.file, e.dirty = name, False
        self.purge_trash()

    def _create_locked(self, d: Path, collection_id: int, key: str) -> tuple[int, str]:
        """A new, empty, locked `.tmp-` file; returns its fd and final name."""
        for _ in range(8):
            name = f"c{collection_id}-{_slug(key)}-{secrets.token_hex(4)}{self.cls.suffix}"
            tmp = d / (".tmp-" + name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _os_error(exc, d, "saving the index") from exc
            if fcntl is None:
                return fd, name
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                    return fd, name
            except FileNotFoundError:
                pass
            os.close(fd)  # a cleaner removed it before we held the lock: take another name
        raise GalleryError(f"{d}: cannot create an index file", code="io_error", path=str(d))

    def _file_lacks(self, e: _Entry, vectors: np.ndarray, *, rebuilt: bool = False) -> bool:
        if vectors.size == 0 or self.folder is None:
            return True  # nothing to check, or no file was ever written
        patterns = e.index.stored_bytes(vectors)
        if patterns is None:
            return rebuilt  # cannot inspect the bytes; a rebuild from the store is the proof
        try:
            data = (self.folder / e.file).read_bytes()
        except OSError:
            return False
        return not any(p in data for p in patterns)


def _extend(fp: IdFingerprint, ids: np.ndarray) -> IdFingerprint:
    add = IdFingerprint.of(ids)
    return IdFingerprint(fp.count + add.count, max(fp.max_id, add.max_id), fp.id_hash + add.id_hash)
