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
a crash at any point leaves either the old record and file or the new ones;
stray files are deleted later.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.gallery.errors import GalleryError
from vultus.gallery.search import IndexFileError, VectorIndex, index_class
from vultus.gallery.storage.base import GalleryStore, IdFingerprint, IndexState
from vultus.gallery.storage.sqlite import now
from vultus.gallery.types import Collection, IndexReport

log = logging.getLogger(__name__)

# A stray index file (from a crash, or from a writer that lost a race) is deleted
# once it is this old; younger ones may belong to a writer about to record them.
STRAY_AGE_S = 3600
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
        self.clean_strays()

    # -- public ------------------------------------------------------------
    def get(self, coll: Collection, key: str | None = None) -> VectorIndex:
        """The collection's index, loaded or rebuilt, and in step with the store."""
        with self._lock:
            return self._ensure(coll, key or coll.contract.key).index

    def report(self, coll: Collection, key: str | None = None) -> IndexReport:
        key = key or coll.contract.key
        with self._lock:
            e = self._ensure(coll, key)
        stored = self.store.fingerprint(coll.id, key).count
        path = str(self.store.index_dir / e.file) if e.file else None
        return IndexReport(collection=coll.name, embedder=key, stored=stored, indexed=len(e.index),
                           action=e.action, reason=e.reason, path=path)

    def added(self, coll: Collection, key: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Rows this process just committed: add them to the loaded index."""
        with self._lock:
            e = self._entries.get((coll.id, key))
            if e is None or ids.size == 0:
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
            self._entries[(coll.id, key)] = self._build(coll, key, reason)
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
            self.save(coll.id, key, force=True)
            proven = self._file_lacks(e, vectors)
            if not proven:
                e = self._build(coll, key, "rebuilt after forget so no trace remains")
                e.generation = self.store.generation(coll.id)
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
                if (collection_id is None or cid == collection_id) and (key is None or k == key) and (e.dirty or force):
                    self._write(cid, k, e)

    def index_bytes(self, collection_id: int) -> int:
        d = self.store.index_dir
        if not d.is_dir():
            return 0
        return sum(p.stat().st_size for p in d.glob(f"c{collection_id}-*") if p.is_file())

    def clean_strays(self, *, max_age_s: float = STRAY_AGE_S, collection_id: int | None = None) -> int:
        d = self.store.index_dir
        if not d.is_dir():
            return 0
        referenced = self._referenced()
        prefix = f"c{collection_id}-" if collection_id is not None else "c"
        cutoff = time.time() - max_age_s
        removed = 0
        for p in d.iterdir():
            name = p.name.removeprefix(".tmp-")
            if not name.startswith(prefix) or p.name in referenced:
                continue
            try:
                if p.stat().st_mtime <= cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def purge_unreferenced(self, collection_id: int) -> int:
        """Delete every unreferenced file of a collection now, whatever its age."""
        return self.clean_strays(max_age_s=-1, collection_id=collection_id)

    # -- internals ---------------------------------------------------------
    def _referenced(self) -> set[str]:
        refs = getattr(self.store, "referenced_index_files", None)
        return refs() if refs else set()

    def _dim(self, coll: Collection, key: str) -> int:
        if key == coll.contract.key:
            return coll.contract.dim
        from vultus.models.registry import get_spec

        return int(get_spec(key.split("@", 1)[0], task="embed").dim or 0)

    def _ensure(self, coll: Collection, key: str) -> _Entry:
        gen = self.store.generation(coll.id)
        e = self._entries.get((coll.id, key))
        if e is not None and e.generation == gen:
            return e
        if e is None:
            e = self._open(coll, key)
            self._entries[(coll.id, key)] = e
        self._sync(coll, key, e)
        e.generation = gen
        return e

    def _open(self, coll: Collection, key: str) -> _Entry:
        state = self.store.index_state(coll.id, key)
        if state is None:
            return self._build(coll, key, "no index file yet")
        if state.kind != self.kind:
            return self._build(coll, key, f"index kind changed from {state.kind} to {self.kind}")
        path = self.store.index_dir / state.file
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return self._build(coll, key, f"index file {state.file} is missing")
        if size != state.file_size:
            return self._build(coll, key, f"index file {state.file} has {size} bytes, its record says "
                                          f"{state.file_size} (truncated or replaced)")
        if file_crc32(path) != state.file_crc32:
            return self._build(coll, key, f"index file {state.file} fails its checksum (corrupt)")
        try:
            index = self.cls.load(path, self._dim(coll, key), **self.options)
        except IndexFileError as exc:
            return self._build(coll, key, f"index file {state.file} cannot be read ({exc})")
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
        d = self.store.index_dir
        d.mkdir(parents=True, exist_ok=True)
        name = f"c{collection_id}-{_slug(key)}-{secrets.token_hex(4)}{self.cls.suffix}"
        tmp = d / (".tmp-" + name)
        try:
            e.index.save(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            size, crc = tmp.stat().st_size, file_crc32(tmp)
            os.replace(tmp, d / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise GalleryError(f"cannot write the index file in {d}: {exc}") from exc
        _fsync_dir(d)
        old = self.store.index_state(collection_id, key)
        self.store.set_index_state(IndexState(collection_id, key, self.kind, name, e.ids, size, crc, now()))
        for stale in {e.file, old.file if old else None} - {None, name}:
            (d / stale).unlink(missing_ok=True)
        e.file, e.dirty = name, False

    def _file_lacks(self, e: _Entry, vectors: np.ndarray, *, rebuilt: bool = False) -> bool:
        if vectors.size == 0:
            return True
        patterns = e.index.stored_bytes(vectors)
        if patterns is None:
            return rebuilt  # cannot inspect the bytes; a rebuild from the store is the proof
        data = (self.store.index_dir / e.file).read_bytes()
        return not any(p in data for p in patterns)


def _extend(fp: IdFingerprint, ids: np.ndarray) -> IdFingerprint:
    add = IdFingerprint.of(ids)
    return IdFingerprint(fp.count + add.count, max(fp.max_id, add.max_id), fp.id_hash + add.id_hash)


def _fsync_dir(d: Path) -> None:
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
