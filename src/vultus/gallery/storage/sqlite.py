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
import getpass
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vultus.gallery.errors import ConflictError, GalleryError, NotFoundError
from vultus.gallery.storage.base import (
    ID_HASH_MOD,
    ID_HASH_MUL,
    CropItem,
    ForgottenData,
    GalleryStore,
    IdFingerprint,
    IndexState,
    PersonVectors,
)
from vultus.gallery.types import (
    AuditRecord,
    Collection,
    EmbedderContract,
    FaceRecord,
    NewFace,
    Person,
    ThresholdOverride,
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
    created_at TEXT NOT NULL
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
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    collection TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

_COLLECTION_COLS = ("id, name, embedder, embedder_version, embedder_alignment, dim, detector, target_fmr, "
                    "threshold, threshold_fmr, threshold_source, keep_crops, aggregation, generation, created_at")
_FACE_COLS = ("f.id, f.person_id, p.name, f.image_sha256, f.image_path, f.x1, f.y1, f.x2, f.y2, f.landmarks, "
              "f.detector, f.detector_score, f.quality, f.created_at, c.face_id IS NOT NULL")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _f32(blob: bytes, shape=None) -> np.ndarray:
    arr = np.frombuffer(blob, dtype=np.float32)
    return arr.reshape(shape) if shape else arr


def _blob(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=np.float32).tobytes()


def _in_list(n: int) -> str:
    return ",".join("?" * n)


class SQLiteStore(GalleryStore):
    def __init__(self, path: str | Path, *, actor: str | None = None, create: bool = True):
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.index_dir = self.path.with_name(self.path.name + ".index")
        self.actor = actor or _actor()
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder; --gallery takes a file path (e.g. {self.path}/gallery.db)")
        if not self.path.exists():
            if not create:
                raise NotFoundError(f"{self.path}: no gallery here; create one with `vultus gallery create`")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None,
                                         check_same_thread=False)
            self._init()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise GalleryError(f"{self.path}: not a vultus gallery or damaged ({exc})") from exc

    def _init(self) -> None:
        c = self._conn
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        tables = c.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise GalleryError(f"{self.path}: a SQLite database but not a vultus gallery; refusing to touch it")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA foreign_keys=ON")
        c.execute("PRAGMA secure_delete=ON")
        c.execute("PRAGMA busy_timeout=60000")
        if not tables:
            with self._write() as w:
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        w.execute(stmt)
                w.execute(f"PRAGMA application_id={APPLICATION_ID}")
                w.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path}: gallery schema version {version} is newer than this vultus "
                               f"understands ({SCHEMA_VERSION}); upgrade vultus")

    @contextlib.contextmanager
    def _write(self):
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so
        two processes queue here rather than deadlock on a read-to-write upgrade."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self):
        """A consistent snapshot for reads spanning several statements."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _q(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _audit(self, conn, action: str, collection: str, detail: dict) -> None:
        conn.execute("INSERT INTO audit (at, actor, action, collection, detail) VALUES (?, ?, ?, ?, ?)",
                     (now(), self.actor, action, collection, json.dumps(detail, sort_keys=True)))

    def _bump(self, conn, collection_id: int) -> None:
        conn.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,))

    # -- collections -------------------------------------------------------
    @staticmethod
    def _collection(row) -> Collection:
        (cid, name, emb, ver, align, dim, det, fmr, thr, thr_fmr, thr_src, crops, agg, gen, created) = row
        override = ThresholdOverride(thr, thr_fmr, thr_src) if thr is not None else None
        return Collection(id=cid, name=name, contract=EmbedderContract(emb, ver, align, dim), detector=det,
                          target_fmr=fmr, keep_crops=bool(crops), aggregation=agg, created_at=created,
                          generation=gen, threshold_override=override)

    def create_collection(self, name, contract, detector, target_fmr, keep_crops, aggregation) -> Collection:
        with self._write() as w:
            try:
                w.execute(
                    "INSERT INTO collections (name, embedder, embedder_version, embedder_alignment, dim, detector, "
                    "target_fmr, keep_crops, aggregation, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, contract.name, contract.version, contract.alignment, contract.dim, detector,
                     target_fmr, int(keep_crops), aggregation, now()))
            except sqlite3.IntegrityError as exc:
                raise GalleryError(f"collection {name!r} already exists") from exc
            self._audit(w, "create", name, {"embedder": contract.to_dict(), "detector": detector,
                                             "target_fmr": target_fmr, "keep_crops": keep_crops,
                                             "aggregation": aggregation})
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        rows = self._q(f"SELECT {_COLLECTION_COLS} FROM collections WHERE name = ?", (name,))
        if not rows:
            names = [r[0] for r in self._q("SELECT name FROM collections ORDER BY name")]
            known = f"; collections here: {', '.join(names)}" if names else "; this gallery has no collections yet"
            raise NotFoundError(f"no collection {name!r} in {self.location}{known}")
        return self._collection(rows[0])

    def collections(self) -> list[Collection]:
        return [self._collection(r) for r in self._q(f"SELECT {_COLLECTION_COLS} FROM collections ORDER BY name")]

    def update_decision(self, collection_id, *, target_fmr=None, override=None, clear_override=False,
                        aggregation=None) -> Collection:
        with self._write() as w:
            name = w.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()[0]
            detail = {}
            if target_fmr is not None:
                w.execute("UPDATE collections SET target_fmr = ? WHERE id = ?", (target_fmr, collection_id))
                detail["target_fmr"] = target_fmr
            if clear_override:
                w.execute("UPDATE collections SET threshold = NULL, threshold_fmr = NULL, threshold_source = NULL "
                          "WHERE id = ?", (collection_id,))
                detail["threshold_override"] = None
            if override is not None:
                w.execute("UPDATE collections SET threshold = ?, threshold_fmr = ?, threshold_source = ? "
                          "WHERE id = ?", (override.threshold, override.fmr, override.source, collection_id))
                detail["threshold_override"] = {"threshold": override.threshold, "fmr": override.fmr,
                                                "source": override.source}
            if aggregation is not None:
                w.execute("UPDATE collections SET aggregation = ? WHERE id = ?", (aggregation, collection_id))
                detail["aggregation"] = aggregation
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
        with self._lock:
            return self._person_row(self._conn, collection_id, name)

    def _cname(self, conn, collection_id) -> str:
        return conn.execute("SELECT name FROM collections WHERE id = ?", (collection_id,)).fetchone()[0]

    def rename_person(self, collection_id, old, new) -> Person:
        if not new.strip():
            raise GalleryError("a person's new name cannot be empty")
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
                vecs.setdefault(emb, []).append(_f32(blob))
            crops = w.execute("DELETE FROM crops WHERE face_id IN (SELECT id FROM faces WHERE person_id = ?)",
                              (p.id,)).rowcount
            w.execute("DELETE FROM embeddings WHERE face_id IN (SELECT id FROM faces WHERE person_id = ?)", (p.id,))
            faces = w.execute("DELETE FROM faces WHERE person_id = ?", (p.id,)).rowcount
            images = w.execute("DELETE FROM images WHERE person_id = ?", (p.id,)).rowcount
            w.execute("DELETE FROM people WHERE id = ?", (p.id,))
            self._bump(w, collection_id)
            # The one record that stays: who, when, how much; no vectors, crops or image paths.
            self._audit(w, "forget", self._cname(w, collection_id),
                        {"person": name, "person_id": p.id, "faces": faces, "images": images,
                         "embeddings": len(rows), "crops": crops})
        return ForgottenData(
            person_id=p.id, faces=faces, crops=crops, images=images,
            embedding_ids={k: np.asarray(v, dtype=np.int64) for k, v in ids.items()},
            vectors={k: np.stack(v) for k, v in vecs.items()})

    def checkpoint(self) -> bool:
        """Fold the WAL into the database and truncate it, so deleted rows do not
        survive in the log. False when a reader elsewhere still needs the log."""
        with self._lock:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

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
                    (collection_id, pid, nf.image_sha256, nf.image_path, *f.box.as_tuple(), _blob(f.landmarks),
                     f.detector, float(f.score), json.dumps(nf.quality, sort_keys=True), stamp)).lastrowid
                eid = w.execute("INSERT INTO embeddings (collection_id, embedder, face_id, vector) "
                                "VALUES (?, ?, ?, ?)", (collection_id, embedder, fid, _blob(nf.vector))).lastrowid
                if nf.crop_jpeg is not None and nf.crop_face is not None:
                    w.execute("INSERT INTO crops (face_id, jpeg, box, landmarks) VALUES (?, ?, ?, ?)",
                              (fid, nf.crop_jpeg, _blob(np.array(nf.crop_face.box.as_tuple())),
                               _blob(nf.crop_face.landmarks)))
                out.append((fid, eid))
            added = sum(1 for o in out if o is not None)
            if added:
                self._bump(w, collection_id)
                people = sorted({nf.person for nf, o in zip(faces, out, strict=True) if o is not None})
                self._audit(w, "enroll", self._cname(w, collection_id),
                            {"faces": added, "people": len(people), "embedder": embedder})
        return out

    def _face(self, r) -> FaceRecord:
        return FaceRecord(id=r[0], person_id=r[1], person=r[2], image_sha256=r[3], image_path=r[4],
                          box=Box(r[5], r[6], r[7], r[8]), landmarks=_f32(r[9], (5, 2)), detector=r[10],
                          detector_score=r[11], quality=json.loads(r[12]), created_at=r[13], has_crop=bool(r[14]))

    def faces(self, collection_id, person=None) -> list[FaceRecord]:
        sql = (f"SELECT {_FACE_COLS} FROM faces f JOIN people p ON p.id = f.person_id "
               "LEFT JOIN crops c ON c.face_id = f.id WHERE f.collection_id = ?")
        params: tuple = (collection_id,)
        if person is not None:
            pid = self.person(collection_id, person).id
            sql += " AND f.person_id = ?"
            params += (pid,)
        return [self._face(r) for r in self._q(sql + " ORDER BY f.id", params)]

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
            source = Face(box=Box(x1, y1, x2, y2), score=score, landmarks=_f32(lm, (5, 2)).copy(), detector=det)
            crop_face = None
            if jpeg is not None:
                b = _f32(cbox)
                crop_face = Face(box=Box(*map(float, b)), score=score, landmarks=_f32(clm, (5, 2)).copy(),
                                 detector=det)
            out.append(CropItem(fid, jpeg, crop_face, source, path, sha))
        return out

    def add_embeddings(self, collection_id, embedder, face_ids, vectors) -> None:
        with self._write() as w:
            w.executemany("INSERT OR REPLACE INTO embeddings (collection_id, embedder, face_id, vector) "
                          "VALUES (?, ?, ?, ?)",
                          [(collection_id, embedder, int(f), _blob(v)) for f, v in zip(face_ids, vectors,
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
        with self._lock:
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

    def set_index_state(self, state: IndexState) -> None:
        with self._write() as w:
            w.execute("INSERT OR REPLACE INTO index_state (collection_id, embedder, kind, file, count, max_id, "
                      "id_hash, file_size, file_crc32, built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (state.collection_id, state.embedder, state.kind, state.file, state.ids.count,
                       state.ids.max_id, state.ids.id_hash, state.file_size, state.file_crc32, state.built_at))

    def clear_index_state(self, collection_id, embedder=None) -> None:
        with self._write() as w:
            if embedder is None:
                w.execute("DELETE FROM index_state WHERE collection_id = ?", (collection_id,))
            else:
                w.execute("DELETE FROM index_state WHERE collection_id = ? AND embedder = ?",
                          (collection_id, embedder))

    def referenced_index_files(self) -> set[str]:
        return {r[0] for r in self._q("SELECT file FROM index_state")}

    # -- audit and counts --------------------------------------------------
    def audit(self, action, collection, detail) -> None:
        with self._write() as w:
            self._audit(w, action, collection, detail)

    def audit_log(self, collection=None, limit=100) -> list[AuditRecord]:
        sql = "SELECT id, at, actor, action, collection, detail FROM audit"
        params: tuple = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            params = (collection,)
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

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
