"""The shared store: PostgreSQL with pgvector, selected by a URL.

    Gallery("postgresql://vultus@db.internal:5432/faces")

Why PostgreSQL: several service workers on several hosts, and bulk jobs, write one
gallery at once, and operators already run, back up and replicate it. The tables are
the SQLite store's (storage/sqlite.py), in their own schema (`vultus` unless told),
created and upgraded by the versioned SQL files in migrations/postgresql/, applied
in order when the store is opened (and by `vultus gallery migrate`), each in one
transaction under an advisory lock so that two processes opening a new database at
once do not both apply them.

Embeddings are pgvector `vector` columns (float32: the exact vectors the gallery
re-ranks with, byte for byte what SQLite stores). Each (collection, embedder) has its
own HNSW index, a partial expression index over `vector::halfvec(dim)` (or over the
float32 vector: `hnsw_type="vector"`), created with the collection. The index is
written by PostgreSQL in the same transaction as the rows, so it is never stale and
a forget removes its entries when it commits; the store serves search through it
(`native_index`) and the gallery re-ranks the candidates exactly, as with SQLite.

Concurrency: every change to a collection first locks the collection's row
(SELECT ... FOR UPDATE), so writers of one collection queue (as SQLite's writers
queue on the file lock) while readers never wait (MVCC), and writers of other
collections run in parallel. Uniqueness constraints (one image hash per collection)
decide enroll races inside the transaction, as in SQLite. Connections come from a
psycopg_pool pool (pool_size, the service sizes it to its threads).

Forget deletes the rows (and with them their index entries) in one transaction, then
checkpoint() runs VACUUM on the tables it touched, so the dead row versions are
removed from the table and index pages; docs/gallery.md says what stays (WAL,
backups, replicas, free space) and how to make it final.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Sequence
from importlib import resources

import numpy as np

from vultus.gallery.errors import (
    ConflictError,
    DiskFullError,
    GalleryError,
    NotFoundError,
    ReadOnlyError,
)
from vultus.gallery.names import MAX_NAME_LENGTH, check_name
from vultus.gallery.search.base import NativeIndex
from vultus.gallery.storage.audit import redact_person
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

DEFAULT_SCHEMA = "vultus"
MIGRATIONS = "vultus.gallery.storage.migrations.postgresql"
MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql\Z")
# Advisory lock key under which migrations run (any fixed 64-bit number; "VULTMIGR").
MIGRATION_LOCK = 0x56554C544D494752 - (1 << 63)
# HNSW settings (bench/results/scale.md). Face embeddings defeat graph search, and
# connectivity is what helps: at 100k, m=32 / ef_construction=256 agreed with exact search
# on every decision where m=16 / 128 missed some (at 1M m=16 agreed on 99.45% at most; m=32
# is not measured there, and builds in about twice m=16's 29 minutes on 2 loaded cores).
# ef_search is the candidate list each query walks, at pgvector's ceiling (1000). The
# gallery re-ranks every candidate exactly.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 256
HNSW_EF_SEARCH = 1000
# Up to this many vectors `auto` scans them all (exact decisions): at 100k PostgreSQL's exact
# scan measured 81 ms p50, no slower than the HNSW at ef_search 1000 (83 ms).
EXHAUSTIVE_UP_TO = 100_000
VECTOR_TYPES = ("halfvec", "vector")
DEFAULT_POOL_SIZE = 4
POOL_TIMEOUT_S = 60.0
# Waits between VACUUM tries after a forget (the last try is not followed by a wait).
VACUUM_RETRY_DELAYS_S = (0.2, 0.4, 0.8, 1.6, 0.0)
# Tables whose rows a forget deletes: VACUUM'ed by checkpoint().
_ERASED_TABLES = ("embeddings", "crops", "faces", "images", "people", "audit", "cluster_faces", "clusters")






def public_location(url: str) -> str:
    """The URL without its password (what messages, the audit log and stats show)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped, in order."""
    out = []
    for f in resources.files(MIGRATIONS).iterdir():
        m = MIGRATION_NAME.match(f.name)
        if m:
            out.append((int(m.group(1)), f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")))
    out.sort()
    if [v for v, _, _ in out] != list(range(1, len(out) + 1)):
        raise GalleryError("the PostgreSQL migrations shipped with vultus are not numbered 1, 2, 3...",
                           code="bad_migrations")
    return out


def _vector_loader(info):
    """A binary loader for pgvector's `vector` that returns a float32 numpy array directly
    (pgvector's own loader builds a Vector object per row: slow for a million rows)."""
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class Float32Loader(Loader):
        format = Format.BINARY

        def load(self, data):
            return np.frombuffer(bytes(data)[4:], dtype=">f4").astype(np.float32)

    return Float32Loader


class PostgresStore(GalleryStore):
    backend = "postgresql"
    residue = "in the database's table and index pages until VACUUM can remove them"

    def __init__(self, url: str, *, actor: str | None = None, create: bool = True, schema: str = DEFAULT_SCHEMA,
                 pool_size: int = DEFAULT_POOL_SIZE, hnsw_type: str = "halfvec", hnsw_m: int = HNSW_M,
                 hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION, ef_search: int = HNSW_EF_SEARCH,
                 exhaustive_up_to: int = EXHAUSTIVE_UP_TO, migrate: bool = True):
        try:
            import psycopg  # noqa: F401
            import psycopg_pool
            from pgvector.psycopg import register_vector  # noqa: F401
        except ImportError as exc:
            raise GalleryError("a postgresql:// gallery needs psycopg 3, psycopg_pool and pgvector: "
                               "pip install 'vultus[postgres]'", code="missing_dependency",
                               package=exc.name) from exc
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise GalleryError(f"schema name {schema!r}: use lower-case letters, digits and _",
                               code="invalid_argument", schema=schema)
        if hnsw_type not in VECTOR_TYPES:
            raise GalleryError(f"hnsw_type must be one of {', '.join(VECTOR_TYPES)} (got {hnsw_type!r})",
                               code="invalid_argument", hnsw_type=hnsw_type)
        self.url = url if "://" in url else f"postgresql://{url}"
        if self.url.startswith("postgres://"):
            self.url = "postgresql://" + self.url[len("postgres://"):]
        self.location = public_location(self.url)
        self.schema = schema
        self.actor = actor or process_actor()
        self.read_only: str | None = None
        self.damaged: str | None = None
        self.hnsw = {"type": hnsw_type, "m": int(hnsw_m), "ef_construction": int(hnsw_ef_construction)}
        self.ef_search = int(ef_search)
        self.exhaustive_up_to = int(exhaustive_up_to)
        self._natives: dict[tuple[int, str], PgVectorIndex] = {}
        self._lock = threading.Lock()
        self._pool = None
        self._vacuum_notices: list[str] = []
        self._closed = False
        self._auto_migrate = bool(migrate)
        self._opened: MigrationReport | None = None  # what opening applied, reported by the first migrate()
        try:
            self._connect_first(create)
            self._pool = psycopg_pool.ConnectionPool(
                self.url, min_size=1, max_size=max(1, int(pool_size)), open=False, configure=self._configure,
                timeout=POOL_TIMEOUT_S, name=f"vultus-{schema}")
            self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except Exception as exc:
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    self._pool.close()
            raise self._translate(exc) from exc

    # -- connections --------------------------------------------------------
    def _configure(self, conn) -> None:
        from pgvector.psycopg import register_vector
        from psycopg.types import TypeInfo

        conn.execute(f"SET search_path = {self.schema}, public")
        conn.commit()
        register_vector(conn)
        info = TypeInfo.fetch(conn, "vector")
        conn.adapters.register_loader(info.oid, _vector_loader(info))
        conn.commit()

    def _connect_first(self, create: bool) -> None:
        """Check the server, the schema and apply migrations, on one plain connection."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=30) as conn:
            if conn.execute("SHOW transaction_read_only").fetchone()[0] == "on":
                self.read_only = "the server is a read-only replica (hot standby)"
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
            if not exists and not create:
                raise NotFoundError(f"{self.location}: no gallery here (no schema {self.schema!r}); create one with "
                                    "`vultus gallery create`", kind="gallery", path=self.location)
            if not self.read_only and self._auto_migrate:
                self._opened = self._migrate(conn)
            elif not exists:
                raise ReadOnlyError(f"{self.location}: no gallery here, and a read-only server cannot make one",
                                    path=self.location)

    def _migrate(self, conn) -> MigrationReport:
        """Apply pending migrations, each in its own transaction, under an advisory lock."""
        shipped = migrations()
        applied: list[str] = []
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.schema}.schema_migrations (version integer PRIMARY KEY, "
                         "name text NOT NULL, applied_at text NOT NULL)")
            before = conn.execute(f"SELECT coalesce(max(version), 0) FROM {self.schema}.schema_migrations"
                                  ).fetchone()[0]
            if before > len(shipped):
                raise GalleryError(f"{self.location}: gallery schema version {before} is newer than this vultus "
                                   f"understands ({len(shipped)}); upgrade vultus", code="not_a_gallery",
                                   path=self.location)
            conn.execute(f"SET LOCAL search_path = {self.schema}, public")
            for version, name, text in shipped:
                if version <= before:
                    continue
                conn.execute(text)
                conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                             (version, name, now()))
                applied.append(name)
        return MigrationReport(self.backend, self.location, int(before), len(shipped), tuple(applied))

    def migrate(self) -> MigrationReport:
        import psycopg

        self.require_writable()
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=30) as conn:
                report = self._migrate(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        opened, self._opened = self._opened, None
        if opened is not None and opened.applied:  # applied when this store was opened: say so
            report = MigrationReport(self.backend, self.location, opened.version_before, report.version,
                                     opened.applied + report.applied)
        return report

    def _translate(self, exc: BaseException) -> BaseException:
        """The one error a user sees for a database failure."""
        import psycopg
        from psycopg import errors as pe

        if isinstance(exc, GalleryError):
            return exc
        try:
            from psycopg_pool import PoolTimeout
        except ImportError:  # pragma: no cover
            PoolTimeout = ()  # noqa: N806
        where = self.location
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, PoolTimeout):
            return GalleryError(f"{where}: no database connection became free in {POOL_TIMEOUT_S:.0f} s (the server "
                                "is down, unreachable or full); nothing was changed", code="busy", path=where)
        if isinstance(exc, pe.UniqueViolation):
            return ConflictError(f"{where}: {text}", path=where)
        if isinstance(exc, pe.ReadOnlySqlTransaction | pe.InsufficientPrivilege):
            return ReadOnlyError(f"{where}: the database refuses writes ({text}); nothing was changed", path=where)
        if isinstance(exc, pe.DiskFull | pe.OutOfMemory):
            return DiskFullError(f"{where}: the database server is out of space ({text}); the change was rolled "
                                 "back and everything committed before it is kept", path=where)
        if isinstance(exc, pe.DeadlockDetected | pe.SerializationFailure | pe.LockNotAvailable):
            return GalleryError(f"{where}: the change collided with another writer ({text}); nothing was changed; "
                                "try again", code="busy", path=where)
        if isinstance(exc, psycopg.OperationalError):
            return GalleryError(f"{where}: cannot reach the gallery database ({text})", code="cannot_open",
                                path=where)
        if isinstance(exc, pe.UndefinedTable | pe.UndefinedColumn | pe.UndefinedFunction | pe.UndefinedObject):
            return GalleryError(f"{where}: the database does not hold a complete vultus gallery ({text}); run "
                                "`vultus gallery migrate`", code="not_a_gallery", path=where)
        if isinstance(exc, psycopg.Error):
            return GalleryError(f"{where}: {text}", code="database_error", path=where)
        return exc

    @contextlib.contextmanager
    def _conn(self):
        import psycopg

        if self._closed or self._pool is None:
            raise GalleryError(f"{self.location}: the gallery is closed", code="closed", path=self.location)
        try:
            with self._pool.connection() as conn:
                yield conn
        except GalleryError:
            raise
        except (psycopg.Error, Exception) as exc:
            err = self._translate(exc)
            if err is exc:
                raise
            raise err from exc

    @contextlib.contextmanager
    def _write(self, collection_id: int | None = None):
        """One write transaction; with a collection, its row is locked first (writers of one
        collection queue here; readers are never blocked)."""
        self.require_writable()
        with self._conn() as conn, conn.transaction():
            if collection_id is not None:
                row = conn.execute("SELECT name FROM collections WHERE id = %s FOR UPDATE",
                                   (collection_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"no collection with id {collection_id} in {self.location} (deleted?)",
                                        kind="collection")
            yield conn

    @contextlib.contextmanager
    def _read(self):
        """A consistent snapshot for reads spanning several statements."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def _q(self, sql: str, params=(), *, binary: bool = False) -> list[tuple]:
        with self._conn() as conn:
            with conn.cursor(binary=binary) as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows

    def require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.location}: the gallery is read-only ({self.read_only}); nothing was changed",
                                path=self.location, reason=self.read_only)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    self._pool.close()
                self._pool = None

    def _audit(self, conn, action: str, collection: str, detail: dict) -> None:
        conn.execute("INSERT INTO audit (at, actor, action, collection, detail) VALUES (%s, %s, %s, %s, %s)",
                     (now(), self.actor, action, collection, json.dumps(detail, sort_keys=True)))

    @staticmethod
    def _bump(conn, collection_id: int) -> None:
        conn.execute("UPDATE collections SET generation = generation + 1 WHERE id = %s", (collection_id,))

    @staticmethod
    def _cname(conn, collection_id) -> str:
        return conn.execute("SELECT name FROM collections WHERE id = %s", (collection_id,)).fetchone()[0]

    # -- the HNSW index of a (collection, embedder) ---------------------------
    def _index_name(self, collection_id: int, embedder: str) -> str:
        return f"embeddings_hnsw_c{int(collection_id)}_{hashlib.sha256(embedder.encode()).hexdigest()[:12]}"

    def _create_hnsw(self, conn, collection_id: int, embedder: str, dim: int) -> None:
        """The partial HNSW index over this collection's `embedder` vectors (in the caller's
        transaction: it exists exactly when the collection does)."""
        from psycopg import sql

        name = self._index_name(collection_id, embedder)
        vtype, m, efc = self.hnsw["type"], self.hnsw["m"], self.hnsw["ef_construction"]
        ops = "halfvec_ip_ops" if vtype == "halfvec" else "vector_ip_ops"
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON embeddings USING hnsw ((vector::{vt}({dim})) {ops}) "
                             "WITH (m = {m}, ef_construction = {efc}) "
                             "WHERE collection_id = {cid} AND embedder = {emb}").format(
            name=sql.Identifier(name), vt=sql.SQL(vtype), dim=sql.Literal(int(dim)), ops=sql.SQL(ops),
            m=sql.Literal(m), efc=sql.Literal(efc), cid=sql.Literal(int(collection_id)), emb=sql.Literal(embedder)))
        conn.execute("INSERT INTO vector_indexes (collection_id, embedder, name, dim, vector_type, m, ef_construction, "
                     "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (collection_id, embedder, name, int(dim), vtype, m, efc, now()))

    def _drop_hnsw(self, conn, collection_id: int, keep: str | None = None) -> None:
        from psycopg import sql

        rows = conn.execute("SELECT embedder, name FROM vector_indexes WHERE collection_id = %s",
                            (collection_id,)).fetchall()
        for embedder, name in rows:
            if embedder == keep:
                continue
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute("DELETE FROM vector_indexes WHERE collection_id = %s AND embedder = %s",
                         (collection_id, embedder))
        with self._lock:
            for k in [k for k in self._natives if k[0] == collection_id and k[1] != keep]:
                del self._natives[k]

    def native_index(self, collection_id: int, embedder: str, dim: int) -> PgVectorIndex:
        with self._lock:
            idx = self._natives.get((collection_id, embedder))
            if idx is None:
                idx = self._natives[(collection_id, embedder)] = PgVectorIndex(self, collection_id, embedder, dim)
            return idx

    # -- collections -------------------------------------------------------

    def create_collection(self, name, contract, detector, target_fmr, keep_crops, aggregation, *,
                          exist_ok: bool = False, target_fpir: float | None = None) -> Collection:
        name = check_name(name, "collection")
        with self._write() as w:
            row = w.execute(
                "INSERT INTO collections (name, embedder, embedder_version, embedder_alignment, dim, detector, "
                "target_fmr, keep_crops, aggregation, created_at, target_fpir) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, contract.name, contract.version, contract.alignment, contract.dim, detector, target_fmr,
                 bool(keep_crops), aggregation, now(), target_fpir)).fetchone()
            if row is None:
                if exist_ok:
                    return collection_from_row(w.execute(
                        f"SELECT {COLLECTION_COLS} FROM collections WHERE name = %s", (name,)).fetchone())
                raise ConflictError(f"collection {name!r} already exists", collection=name)
            self._create_hnsw(w, row[0], contract.key, contract.dim)
            self._audit(w, "create", name, {"embedder": contract.to_dict(), "detector": detector,
                                             "target_fmr": target_fmr, "target_fpir": target_fpir,
                                             "keep_crops": keep_crops, "aggregation": aggregation})
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        rows = self._q(f"SELECT {COLLECTION_COLS} FROM collections WHERE name = %s", (name,))
        if not rows:
            names = [r[0] for r in self._q("SELECT name FROM collections ORDER BY name")]
            known = f"; collections here: {', '.join(names)}" if names else "; this gallery has no collections yet"
            raise NotFoundError(f"no collection {name!r} in {self.location}{known}")
        return collection_from_row(rows[0])

    def collections(self) -> list[Collection]:
        return [collection_from_row(r) for r in self._q(f"SELECT {COLLECTION_COLS} FROM collections ORDER BY name")]

    def update_decision(self, collection_id, *, target_fmr=None, override=None, clear_override=False,
                        aggregation=None, target_fpir=None, own_calibration=None,
                        clear_own_calibration=False) -> Collection:
        with self._write(collection_id) as w:
            name = self._cname(w, collection_id)
            detail = apply_decision_update(
                w.execute, "%s", collection_id, target_fmr=target_fmr, override=override,
                clear_override=clear_override, aggregation=aggregation, target_fpir=target_fpir,
                own_calibration=own_calibration, clear_own_calibration=clear_own_calibration)
            self._audit(w, "decision", name, detail)
        return self.collection(name)

    def set_liveness(self, collection_id, point) -> Collection:
        with self._write(collection_id) as w:
            name = self._cname(w, collection_id)
            w.execute("UPDATE collections SET liveness = %s WHERE id = %s", (point, collection_id))
            self._audit(w, "decision", name, {"liveness": point})
        return self.collection(name)

    def delete_collection(self, collection_id) -> dict[str, int]:
        with self._write(collection_id) as w:
            name = self._cname(w, collection_id)
            people = w.execute("SELECT count(*) FROM people WHERE collection_id = %s", (collection_id,)).fetchone()[0]
            if people:
                raise ConflictError(f"collection {name!r} still holds {people} people; forget them first",
                                    collection=name, people=people)
            self._drop_hnsw(w, collection_id)
            w.execute("DELETE FROM embeddings WHERE collection_id = %s", (collection_id,))
            w.execute("DELETE FROM collections WHERE id = %s", (collection_id,))
            self._audit(w, "delete_collection", name, {})
        return {"people": int(people)}

    def switch_embedder(self, collection_id, new) -> int:
        with self._write(collection_id) as w:
            name, old = w.execute("SELECT name, embedder FROM collections WHERE id = %s",
                                  (collection_id,)).fetchone()
            missing = w.execute(
                "SELECT count(*) FROM faces f WHERE f.collection_id = %s AND NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.embedder = %s)",
                (collection_id, new.key)).fetchone()[0]
            if missing:
                raise GalleryError(f"cannot switch {name!r} to {new.name}: {missing} faces have no {new.name} "
                                   "embedding yet")
            deleted = w.execute("DELETE FROM embeddings WHERE collection_id = %s AND embedder != %s",
                                (collection_id, new.key)).rowcount
            w.execute("UPDATE collections SET embedder = %s, embedder_version = %s, embedder_alignment = %s, "
                      "dim = %s, threshold = NULL, threshold_fmr = NULL, threshold_source = NULL WHERE id = %s",
                      (new.name, new.version, new.alignment, new.dim, collection_id))
            self._drop_hnsw(w, collection_id, keep=new.key)
            self._create_hnsw(w, collection_id, new.key, new.dim)
            self._bump(w, collection_id)
            self._audit(w, "reembed", name, {"from": old, "to": new.to_dict(), "old_embeddings_deleted": deleted})
        return int(deleted)

    # -- people ------------------------------------------------------------
    def people(self, collection_id) -> list[Person]:
        rows = self._q("SELECT p.id, p.name, p.metadata, p.created_at, count(f.id) FROM people p "
                       "LEFT JOIN faces f ON f.person_id = p.id WHERE p.collection_id = %s "
                       "GROUP BY p.id ORDER BY p.name COLLATE \"C\"", (collection_id,))
        return [Person(int(r[0]), r[1], json.loads(r[2]), r[3], int(r[4])) for r in rows]

    def _person_row(self, conn, collection_id, name) -> Person:
        row = conn.execute("SELECT p.id, p.name, p.metadata, p.created_at, "
                           "(SELECT count(*) FROM faces f WHERE f.person_id = p.id) "
                           "FROM people p WHERE p.collection_id = %s AND p.name = %s",
                           (collection_id, name)).fetchone()
        if row is None:
            cname = conn.execute("SELECT name FROM collections WHERE id = %s", (collection_id,)).fetchone()
            raise NotFoundError(f"no person {name!r} in collection {cname[0] if cname else collection_id!r}")
        return Person(int(row[0]), row[1], json.loads(row[2]), row[3], int(row[4]))

    def person(self, collection_id, name) -> Person:
        with self._conn() as conn:
            return self._person_row(conn, collection_id, name)

    def rename_person(self, collection_id, old, new) -> Person:
        from psycopg import errors as pe

        new = check_name(new, "person")
        try:
            with self._write(collection_id) as w:
                p = self._person_row(w, collection_id, old)
                w.execute("UPDATE people SET name = %s WHERE id = %s", (new, p.id))
                self._audit(w, "rename", self._cname(w, collection_id), {"person_id": p.id, "from": old, "to": new})
        except ConflictError as exc:
            if isinstance(exc.__cause__, pe.UniqueViolation):
                raise GalleryError(f"there is already a person {new!r}; use merge to combine them") from exc
            raise
        return self.person(collection_id, new)

    def merge_people(self, collection_id, source, target) -> int:
        if source == target:
            raise GalleryError("cannot merge a person into themselves")
        with self._write(collection_id) as w:
            src = self._person_row(w, collection_id, source)
            dst = self._person_row(w, collection_id, target)
            moved = w.execute("UPDATE faces SET person_id = %s WHERE person_id = %s", (dst.id, src.id)).rowcount
            w.execute("UPDATE images SET person_id = %s WHERE person_id = %s", (dst.id, src.id))
            w.execute("DELETE FROM people WHERE id = %s", (src.id,))
            self._audit(w, "merge", self._cname(w, collection_id),
                        {"from": source, "from_id": src.id, "into": target, "into_id": dst.id, "faces": moved})
        return int(moved)

    def set_person_metadata(self, collection_id, name, metadata) -> Person:
        text = json.dumps(metadata, sort_keys=True)
        with self._write(collection_id) as w:
            p = self._person_row(w, collection_id, name)
            w.execute("UPDATE people SET metadata = %s WHERE id = %s", (text, p.id))
            self._audit(w, "metadata", self._cname(w, collection_id), {"person_id": p.id, "keys": sorted(metadata)})
        return self.person(collection_id, name)

    def forget_person(self, collection_id, name) -> ForgottenData:
        with self._write(collection_id) as w:
            p = self._person_row(w, collection_id, name)
            with w.cursor(binary=True) as cur:
                rows = cur.execute("SELECT e.embedder, e.id, e.vector FROM embeddings e JOIN faces f ON f.id = "
                                   "e.face_id WHERE f.person_id = %s ORDER BY e.embedder, e.id", (p.id,)).fetchall()
            ids: dict[str, list[int]] = {}
            vecs: dict[str, list[np.ndarray]] = {}
            for emb, eid, vec in rows:
                ids.setdefault(emb, []).append(int(eid))
                vecs.setdefault(emb, []).append(vec)
            face_ids = [int(r[0]) for r in w.execute("SELECT id FROM faces WHERE person_id = %s ORDER BY id",
                                                     (p.id,)).fetchall()]
            crops = w.execute("DELETE FROM crops WHERE face_id IN (SELECT id FROM faces WHERE person_id = %s)",
                              (p.id,)).rowcount
            # Deleting the rows deletes their HNSW entries in the same commit (dead until VACUUM:
            # no query can reach them after the commit; checkpoint() removes them from the pages).
            w.execute("DELETE FROM embeddings WHERE face_id IN (SELECT id FROM faces WHERE person_id = %s)", (p.id,))
            faces = w.execute("DELETE FROM faces WHERE person_id = %s", (p.id,)).rowcount
            images = w.execute("DELETE FROM images WHERE person_id = %s", (p.id,)).rowcount
            w.execute("DELETE FROM people WHERE id = %s", (p.id,))
            # A photo cluster named after the person is the person too.
            named = [int(r[0]) for r in w.execute("SELECT id FROM clusters WHERE collection_id = %s AND name = %s",
                                                  (collection_id, p.name)).fetchall()]
            if named:
                w.execute("DELETE FROM cluster_faces WHERE collection_id = %s AND cluster_id = ANY(%s)",
                          (collection_id, named))
                w.execute("DELETE FROM clusters WHERE collection_id = %s AND id = ANY(%s)", (collection_id, named))
            self._bump(w, collection_id)
            cname = self._cname(w, collection_id)
            audit_rows = w.execute("SELECT id, action, detail FROM audit WHERE collection = %s ORDER BY id",
                                   (cname,)).fetchall()
            token, changed = redact_person(audit_rows, p.id, p.name)
            if changed:
                with w.cursor() as cur:
                    cur.executemany("UPDATE audit SET detail = %s WHERE id = %s", [(t, rid) for rid, t in changed])
            self._audit(w, "forget", cname, {"person_id": token, "faces": faces, "images": images,
                                             "embeddings": len(rows), "crops": crops})
        return ForgottenData(
            person_id=p.id, faces=int(faces), crops=int(crops), images=int(images),
            embedding_ids={k: np.asarray(v, dtype=np.int64) for k, v in ids.items()},
            vectors={k: np.stack(v) for k, v in vecs.items()},
            face_ids=np.asarray(face_ids, dtype=np.int64), audit_token=token)

    def references(self, collection_id, person_id, embedding_ids, face_ids) -> dict[str, int]:
        emb = [int(i) for i in embedding_ids]
        fids = [int(i) for i in face_ids]
        with self._read() as r:
            def one(sql, *params):
                return int(r.execute(sql, params).fetchone()[0])

            people = one("SELECT count(*) FROM people WHERE id = %s", person_id)
            images = one("SELECT count(*) FROM images WHERE person_id = %s", person_id)
            found_faces = {int(x[0]) for x in r.execute(
                "SELECT id FROM faces WHERE person_id = %s OR id = ANY(%s)", (person_id, fids)).fetchall()}
            found_emb = {int(x[0]) for x in r.execute(
                "SELECT id FROM embeddings WHERE id = ANY(%s) OR face_id = ANY(%s)", (emb, fids)).fetchall()}
            crops = one("SELECT count(*) FROM crops WHERE face_id = ANY(%s)", fids)
        return {"people": people, "faces": len(found_faces), "images": images, "embeddings": len(found_emb),
                "crops": crops}

    def checkpoint(self) -> bool:
        """VACUUM the tables a forget deletes from, so the dead row versions (and their HNSW
        entries) leave the table and index pages. False when VACUUM reports dead rows it
        could not remove yet: a transaction elsewhere still holds a snapshot that sees them."""
        import psycopg

        if self.read_only:
            return False
        # A snapshot held for a moment (autovacuum analysing freshly filled tables, another
        # host's short query) also keeps dead rows; only one that outlasts a few retries,
        # about 3 s in all, is reported as keeping the erasure from being final.
        for delay in VACUUM_RETRY_DELAYS_S:
            notices: list[str] = []
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=30) as conn:
                    conn.add_notice_handler(lambda d, out=notices: out.append(d.message_primary or ""))
                    conn.execute(f"SET search_path = {self.schema}, public")
                    conn.execute("VACUUM (VERBOSE, INDEX_CLEANUP ON) " + ", ".join(_ERASED_TABLES))
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            self._vacuum_notices = notices
            stuck = [int(m.group(1)) for n in notices
                     for m in re.finditer(r"(\d+) are dead but not yet removable", n)]
            if not any(stuck):
                return True
            if delay:
                time.sleep(delay)
        return False

    # -- faces -------------------------------------------------------------
    def known_images(self, collection_id, sha256s) -> dict[str, str]:
        sha256s = list(dict.fromkeys(sha256s))
        if not sha256s:
            return {}
        rows = self._q("SELECT i.sha256, p.name FROM images i JOIN people p ON p.id = i.person_id "
                       "WHERE i.collection_id = %s AND i.sha256 = ANY(%s)", (collection_id, sha256s))
        return dict(rows)

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
        with self._write(collection_id) as w:
            person_ids: dict[str, int] = {}
            for nf in faces:
                if nf.person not in person_ids:
                    w.execute("INSERT INTO people (collection_id, name, created_at) VALUES (%s, %s, %s) "
                              "ON CONFLICT (collection_id, name) DO NOTHING", (collection_id, nf.person, stamp))
                    person_ids[nf.person] = int(w.execute("SELECT id FROM people WHERE collection_id = %s AND "
                                                          "name = %s", (collection_id, nf.person)).fetchone()[0])
                pid = person_ids[nf.person]
                # The image row is the dedupe, as in SQLite: a second enroll of the same bytes
                # (by this or another process, on any host) hits the primary key and is skipped.
                if w.execute("INSERT INTO images (collection_id, sha256, person_id) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING RETURNING 1", (collection_id, nf.image_sha256, pid)
                             ).fetchone() is None:
                    out.append(None)
                    continue
                f = nf.face
                fid = int(w.execute(
                    "INSERT INTO faces (collection_id, person_id, image_sha256, image_path, x1, y1, x2, y2, "
                    "landmarks, detector, detector_score, quality, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (collection_id, pid, nf.image_sha256, nf.image_path, *map(float, f.box.as_tuple()),
                     f32_blob(f.landmarks), f.detector, float(f.score), json.dumps(nf.quality, sort_keys=True),
                     stamp)).fetchone()[0])
                eid = int(w.execute("INSERT INTO embeddings (collection_id, embedder, face_id, vector) "
                                    "VALUES (%s, %s, %s, %s) RETURNING id",
                                    (collection_id, embedder, fid, np.asarray(nf.vector, np.float32))).fetchone()[0])
                if nf.crop_jpeg is not None and nf.crop_face is not None:
                    w.execute("INSERT INTO crops (face_id, jpeg, box, landmarks) VALUES (%s, %s, %s, %s)",
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

    @staticmethod
    def _face(r) -> FaceRecord:
        return FaceRecord(id=int(r[0]), person_id=int(r[1]), person=r[2], image_sha256=r[3], image_path=r[4],
                          box=Box(r[5], r[6], r[7], r[8]), landmarks=as_f32(r[9], (5, 2)), detector=r[10],
                          detector_score=r[11], quality=json.loads(r[12]), created_at=r[13], has_crop=bool(r[14]))

    def faces(self, collection_id, person=None) -> list[FaceRecord]:
        sql = (f"SELECT {FACE_COLS} FROM faces f JOIN people p ON p.id = f.person_id "
               "LEFT JOIN crops c ON c.face_id = f.id WHERE f.collection_id = %s")
        params: tuple = (collection_id,)
        if person is not None:
            pid = self.person(collection_id, person).id
            sql += " AND f.person_id = %s"
            params += (pid,)
        return [face_from_row(r) for r in self._q(sql + " ORDER BY f.id", params)]

    def _face_row(self, conn, collection_id, face_id):
        row = conn.execute("SELECT f.id, f.person_id, f.image_sha256 FROM faces f WHERE f.id = %s "
                           "AND f.collection_id = %s", (int(face_id), collection_id)).fetchone()
        if row is None:
            raise NotFoundError(f"no face {face_id} in collection {self._cname(conn, collection_id)!r}")
        return row

    def move_face(self, collection_id, face_id, person) -> None:
        with self._write(collection_id) as w:
            _, old_pid, sha = self._face_row(w, collection_id, face_id)
            dst = self._person_row(w, collection_id, person)
            w.execute("UPDATE faces SET person_id = %s WHERE id = %s", (dst.id, int(face_id)))
            w.execute("UPDATE images SET person_id = %s WHERE collection_id = %s AND sha256 = %s",
                      (dst.id, collection_id, sha))
            self._audit(w, "move", self._cname(w, collection_id),
                        {"face_id": int(face_id), "from_id": int(old_pid), "to_id": dst.id})

    def delete_face(self, collection_id, face_id) -> dict[str, np.ndarray]:
        with self._write(collection_id) as w:
            _, pid, sha = self._face_row(w, collection_id, face_id)
            rows = w.execute("SELECT embedder, id FROM embeddings WHERE face_id = %s", (int(face_id),)).fetchall()
            w.execute("DELETE FROM crops WHERE face_id = %s", (int(face_id),))
            w.execute("DELETE FROM embeddings WHERE face_id = %s", (int(face_id),))
            w.execute("DELETE FROM faces WHERE id = %s", (int(face_id),))
            w.execute("DELETE FROM images WHERE collection_id = %s AND sha256 = %s AND NOT EXISTS "
                      "(SELECT 1 FROM faces WHERE collection_id = %s AND image_sha256 = %s)",
                      (collection_id, sha, collection_id, sha))
            self._bump(w, collection_id)
            self._audit(w, "delete_face", self._cname(w, collection_id),
                        {"face_id": int(face_id), "person_id": int(pid)})
        out: dict[str, list[int]] = {}
        for emb, eid in rows:
            out.setdefault(emb, []).append(int(eid))
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}

    def crop_jpeg(self, collection_id, face_id) -> bytes | None:
        with self._read() as r:
            self._face_row(r, collection_id, face_id)
            row = r.execute("SELECT jpeg FROM crops WHERE face_id = %s", (int(face_id),)).fetchone()
        return None if row is None else bytes(row[0])

    def crop_items(self, collection_id, missing_embedder, limit) -> list[CropItem]:
        rows = self._q(
            "SELECT f.id, c.jpeg, c.box, c.landmarks, f.x1, f.y1, f.x2, f.y2, f.landmarks, f.detector, "
            "f.detector_score, f.image_path, f.image_sha256 FROM faces f LEFT JOIN crops c ON c.face_id = f.id "
            "WHERE f.collection_id = %s AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.embedder = %s) ORDER BY f.id LIMIT %s",
            (collection_id, missing_embedder, int(limit)))
        out = []
        for (fid, jpeg, cbox, clm, x1, y1, x2, y2, lm, det, score, path, sha) in rows:
            source = Face(box=Box(x1, y1, x2, y2), score=score, landmarks=as_f32(lm, (5, 2)).copy(), detector=det)
            crop_face = None
            if jpeg is not None:
                b = as_f32(cbox)
                crop_face = Face(box=Box(*map(float, b)), score=score, landmarks=as_f32(clm, (5, 2)).copy(),
                                 detector=det)
            out.append(CropItem(int(fid), None if jpeg is None else bytes(jpeg), crop_face, source, path, sha))
        return out

    def add_embeddings(self, collection_id, embedder, face_ids, vectors) -> None:
        with self._write(collection_id) as w:
            dim = int(np.asarray(vectors).shape[1]) if len(face_ids) else 0
            row = w.execute("SELECT embedder, embedder_version, embedder_alignment, dim FROM collections "
                            "WHERE id = %s", (collection_id,)).fetchone()
            if dim and embedder != EmbedderContract(*row).key:
                # vectors of a migration in progress get their own index, so switching is instant
                self._create_hnsw(w, collection_id, embedder, dim)
            with w.cursor() as cur:
                cur.executemany(
                    "INSERT INTO embeddings (collection_id, embedder, face_id, vector) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (face_id, embedder) DO UPDATE SET vector = excluded.vector",
                    [(collection_id, embedder, int(f), np.asarray(v, np.float32))
                     for f, v in zip(face_ids, vectors, strict=True)])
            self._bump(w, collection_id)

    # -- embeddings --------------------------------------------------------
    def vectors(self, collection_id, embedder, ids=None, batch=65536):
        if ids is None:
            last = 0
            while True:
                rows = self._q("SELECT id, vector FROM embeddings WHERE collection_id = %s AND embedder = %s "
                               "AND id > %s ORDER BY id LIMIT %s", (collection_id, embedder, last, batch), binary=True)
                if not rows:
                    return
                yield self._unpack(rows)
                last = int(rows[-1][0])
        else:
            ids = [int(i) for i in np.asarray(ids).ravel()]
            for i in range(0, len(ids), batch):
                rows = self._q("SELECT id, vector FROM embeddings WHERE collection_id = %s AND embedder = %s "
                               "AND id = ANY(%s) ORDER BY id", (collection_id, embedder, ids[i:i + batch]),
                               binary=True)
                if rows:
                    yield self._unpack(rows)

    @staticmethod
    def _unpack(rows) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, np.stack([r[1] for r in rows]).astype(np.float32)

    def embedding_ids(self, collection_id, embedder) -> np.ndarray:
        rows = self._q("SELECT id FROM embeddings WHERE collection_id = %s AND embedder = %s ORDER BY id",
                       (collection_id, embedder))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def fingerprint(self, collection_id, embedder) -> IdFingerprint:
        count, max_id, h = self._q(
            f"SELECT count(*), coalesce(max(id), 0), coalesce(sum((id * {ID_HASH_MUL}) %% {ID_HASH_MOD}), 0) "
            "FROM embeddings WHERE collection_id = %s AND embedder = %s", (collection_id, embedder))[0]
        return IdFingerprint(int(count), int(max_id), int(h))

    def generation(self, collection_id) -> int:
        rows = self._q("SELECT generation FROM collections WHERE id = %s", (collection_id,))
        return int(rows[0][0]) if rows else -1

    def owners(self, collection_id, embedder, embedding_ids) -> dict[int, int]:
        ids = [int(i) for i in np.unique(np.asarray(embedding_ids, dtype=np.int64)) if i >= 0]
        if not ids:
            return {}
        rows = self._q("SELECT e.id, f.person_id FROM embeddings e JOIN faces f ON f.id = e.face_id "
                       "WHERE e.collection_id = %s AND e.embedder = %s AND e.id = ANY(%s)",
                       (collection_id, embedder, ids))
        return {int(a): int(b) for a, b in rows}

    def person_vectors(self, collection_id, embedder, person_ids) -> PersonVectors:
        pids = [int(p) for p in dict.fromkeys(person_ids)]
        # One statement, so vectors and names come from one snapshot (and one round trip).
        rows = self._q("SELECT e.id, f.id, f.person_id, e.vector, p.name FROM faces f JOIN embeddings e ON "
                       "e.face_id = f.id AND e.embedder = %s JOIN people p ON p.id = f.person_id "
                       "WHERE f.person_id = ANY(%s)", (embedder, pids), binary=True)
        names = {int(x[2]): x[4] for x in rows}
        n = len(rows)
        vecs = np.stack([x[3] for x in rows]).astype(np.float32) if n else np.zeros((0, 0), np.float32)
        return PersonVectors(embedding_ids=np.array([x[0] for x in rows], dtype=np.int64),
                             face_ids=np.array([x[1] for x in rows], dtype=np.int64),
                             person_ids=np.array([x[2] for x in rows], dtype=np.int64), vectors=vecs, names=names)

    # -- face clustering state ----------------------------------------------
    def clustering(self, collection_id) -> ClusteringState:
        with self._read() as r:
            faces = [ClusterFaceRow(key=k, image_path=p, box=(x1, y1, x2, y2), detector_score=ds, quality=q,
                                    vector=as_f32(v), thumbnail=bytes(t) if t else b"",
                                    cluster_id=None if c is None else int(c), pinned=bool(pin))
                     for k, p, x1, y1, x2, y2, ds, q, v, t, c, pin in r.execute(
                         "SELECT face_key, image_path, x1, y1, x2, y2, detector_score, quality, vector, thumbnail, "
                         "cluster_id, pinned FROM cluster_faces WHERE collection_id = %s ORDER BY seq",
                         (collection_id,)).fetchall()]
            names = {int(a): b for a, b in r.execute("SELECT id, name FROM clusters WHERE collection_id = %s "
                                                     "ORDER BY id", (collection_id,)).fetchall()}
            links = [tuple(x) for x in r.execute("SELECT face_a, face_b FROM cluster_cannot_link "
                                                 "WHERE collection_id = %s", (collection_id,)).fetchall()]
            row = r.execute("SELECT next_id, generation FROM cluster_seq WHERE collection_id = %s",
                            (collection_id,)).fetchone()
        return ClusteringState(faces, names, links, int(row[0]) if row else 1, int(row[1]) if row else 0)

    def save_clustering(self, collection_id, change: ClusteringChange) -> None:
        at = now()
        with self._write(collection_id) as w:
            row = w.execute("SELECT generation FROM cluster_seq WHERE collection_id = %s",
                            (collection_id,)).fetchone()
            if change.base_generation is not None and (int(row[0]) if row else 0) != change.base_generation:
                raise ConflictError("the clusters changed while this step ran (another process?); run it again",
                                    code="cluster_conflict", collection=self._cname(w, collection_id))
            with w.cursor() as cur:
                if change.add_faces:
                    cur.executemany(
                        "INSERT INTO cluster_faces (collection_id, face_key, image_path, x1, y1, x2, y2, "
                        "detector_score, quality, vector, thumbnail, cluster_id, pinned, added_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(collection_id, f.key, f.image_path, *map(float, f.box), float(f.detector_score),
                          float(f.quality), f32_blob(f.vector), f.thumbnail or None, f.cluster_id, bool(f.pinned), at)
                         for f in change.add_faces])
                for cid, name in change.names.items():
                    cur.execute("INSERT INTO clusters (collection_id, id, name, created_at) VALUES (%s, %s, %s, %s) "
                                "ON CONFLICT (collection_id, id) DO UPDATE SET name = excluded.name",
                                (collection_id, int(cid), name, at))
                if change.assign:
                    cur.executemany("UPDATE cluster_faces SET cluster_id = %s WHERE collection_id = %s AND "
                                    "face_key = %s", [(c, collection_id, k) for k, c in change.assign.items()])
                if change.pin:
                    cur.executemany("UPDATE cluster_faces SET pinned = %s WHERE collection_id = %s AND face_key = %s",
                                    [(bool(p), collection_id, k) for k, p in change.pin.items()])
                if change.drop_clusters:
                    ids = [int(i) for i in change.drop_clusters]
                    cur.execute("UPDATE cluster_faces SET cluster_id = NULL WHERE collection_id = %s "
                                "AND cluster_id = ANY(%s)", (collection_id, ids))
                    cur.execute("DELETE FROM clusters WHERE collection_id = %s AND id = ANY(%s)", (collection_id, ids))
                if change.cannot_link:
                    cur.executemany("INSERT INTO cluster_cannot_link (collection_id, face_a, face_b) "
                                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                    [(collection_id, *sorted(pair)) for pair in change.cannot_link])
                cur.execute("INSERT INTO cluster_seq (collection_id, next_id, generation) VALUES (%s, %s, 1) "
                            "ON CONFLICT (collection_id) DO UPDATE SET next_id = greatest(cluster_seq.next_id, "
                            "excluded.next_id), generation = cluster_seq.generation + 1",
                            (collection_id, int(change.next_id or 1)))
            self._audit(w, change.action, self._cname(w, collection_id), change.detail)

    # -- audit and counts --------------------------------------------------
    def audit(self, action, collection, detail) -> None:
        with self._write() as w:
            self._audit(w, action, collection, detail)

    def audit_log(self, collection=None, limit=100) -> list[AuditRecord]:
        sql = f"SELECT {AUDIT_COLS} FROM audit"
        params: tuple = ()
        if collection is not None:
            sql += " WHERE collection = %s"
            params = (collection,)
        rows = self._q(sql + " ORDER BY id DESC LIMIT %s", (*params, int(limit)))
        return [audit_from_row(r) for r in rows]

    def counts(self, collection_id) -> dict[str, int]:
        with self._read() as r:
            name, version, alignment, dim = r.execute(
                "SELECT embedder, embedder_version, embedder_alignment, dim FROM collections WHERE id = %s",
                (collection_id,)).fetchone()
            emb = EmbedderContract(name, version, alignment, dim).key

            def one(sql, *params):
                return int(r.execute(sql, params).fetchone()[0])

            return {
                "people": one("SELECT count(*) FROM people WHERE collection_id = %s", collection_id),
                "faces": one("SELECT count(*) FROM faces WHERE collection_id = %s", collection_id),
                "images": one("SELECT count(*) FROM images WHERE collection_id = %s", collection_id),
                "embeddings": one("SELECT count(*) FROM embeddings WHERE collection_id = %s AND embedder = %s",
                                  collection_id, emb),
                "crops": one("SELECT count(*) FROM crops c JOIN faces f ON f.id = c.face_id "
                             "WHERE f.collection_id = %s", collection_id),
            }

    def size_bytes(self) -> int:
        """Bytes on disk of the gallery's tables and their indexes (the whole schema)."""
        rows = self._q("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                       (self.schema,))
        return int(rows[0][0])


class PgVectorIndex(NativeIndex):
    """The store's HNSW index of one (collection, embedder), as the gallery's VectorIndex.

    search() walks the HNSW graph (hnsw.ef_search candidates, iterative scans so that
    deleted-but-not-vacuumed entries do not cut the list short); search(exact=True) is a
    full scan of the float32 vectors with the index turned off. Either way the gallery
    re-ranks the returned ids with the exact vectors."""

    def __init__(self, store: PostgresStore, collection_id: int, embedder: str, dim: int):
        super().__init__(dim)
        self.store = store
        self.collection_id = int(collection_id)
        self.embedder = embedder
        self.exhaustive_up_to = store.exhaustive_up_to
        self._count: tuple[int, int] | None = None  # (generation, count)
        self._index: tuple[str, str, int, int] | None = None

    def _settings(self) -> tuple[str, str, int, int]:
        """The index's name, vector type, m and ef_construction (read once: an index is replaced
        only with its collection's embedder, and the store then hands out a new PgVectorIndex;
        a process that missed it still searches correctly, by a scan the planner picks)."""
        if self._index is None:
            found = self._read_settings()
            if not found[0]:
                return found  # no index (yet): look again next time
            self._index = found
        return self._index

    def _read_settings(self) -> tuple[str, str, int, int]:
        rows = self.store._q("SELECT name, vector_type, m, ef_construction FROM vector_indexes "
                             "WHERE collection_id = %s AND embedder = %s", (self.collection_id, self.embedder))
        if not rows:
            return "", "vector", 0, 0
        name, vtype, m, efc = rows[0]
        return name, vtype, int(m), int(efc)

    def describe(self) -> str:
        name, vtype, m, efc = self._settings()
        if not name:
            return "kept by PostgreSQL: no HNSW index for these vectors (searched by a full scan)"
        return (f"kept by PostgreSQL: pgvector HNSW {name} over {vtype}({self.dim}), m={m}, "
                f"ef_construction={efc}, ef_search={self.store.ef_search}; in step with every transaction")

    def __len__(self) -> int:
        gen = self.store.generation(self.collection_id)
        if self._count is None or self._count[0] != gen:
            n = self.store._q("SELECT count(*) FROM embeddings WHERE collection_id = %s AND embedder = %s",
                              (self.collection_id, self.embedder))[0][0]
            self._count = (gen, int(n))
        return self._count[1]

    def keys(self) -> np.ndarray:
        return self.store.embedding_ids(self.collection_id, self.embedder)

    def search(self, queries, k, *, exact=False):
        from psycopg import sql

        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        ids = np.full((len(q), max(k, 0)), -1, np.int64)
        sims = np.full((len(q), max(k, 0)), -np.inf, np.float32)
        if k <= 0 or not len(q):
            return ids, sims
        name, vtype, _, _ = self._settings()
        scope = sql.SQL("collection_id = {cid} AND embedder = {emb}").format(
            cid=sql.Literal(self.collection_id), emb=sql.Literal(self.embedder))
        if exact or not name:
            stmt = sql.SQL("SELECT id, (vector <#> %s) FROM embeddings WHERE {scope} "
                           "ORDER BY vector <#> %s LIMIT {k}").format(scope=scope, k=sql.Literal(int(k)))
        else:
            # The index's own expression and predicate, so the planner uses it (constants, not
            # parameters, in the WHERE clause: a partial index needs them to match).
            expr = sql.SQL("vector::{vt}({dim})").format(vt=sql.SQL(vtype), dim=sql.Literal(self.dim))
            probe = sql.SQL("%s::{vt}({dim})").format(vt=sql.SQL(vtype), dim=sql.Literal(self.dim))
            stmt = sql.SQL("SELECT id, ({expr} <#> {probe}) FROM embeddings WHERE {scope} "
                           "ORDER BY {expr} <#> {probe} LIMIT {k}").format(
                expr=expr, probe=probe, scope=scope, k=sql.Literal(int(k)))
        with self.store._conn() as conn, conn.transaction():
            if exact or not name:
                conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            else:
                # pgvector's ceiling is 1000; past it the iterative scan supplies the rest of the k
                ef = str(min(1000, max(int(k), self.store.ef_search)))
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                             "set_config('hnsw.iterative_scan', 'relaxed_order', true)", (ef,))
            with conn.cursor(binary=True) as cur:
                for i, vec in enumerate(q):
                    rows = cur.execute(stmt, (vec, vec)).fetchall()
                    if rows:
                        got = np.array([r[0] for r in rows], np.int64)
                        neg = np.array([r[1] for r in rows], np.float64)
                        order = np.argsort(neg, kind="stable")  # relaxed order: sort what came back
                        ids[i, :len(rows)] = got[order]
                        sims[i, :len(rows)] = (-neg[order]).astype(np.float32)
        return ids, sims

    def rebuild(self) -> None:
        from psycopg import sql

        name, *_ = self._settings()
        if name:
            with self.store._write() as w:
                w.execute(sql.SQL("REINDEX INDEX {}").format(sql.Identifier(name)))

    def memory_bytes(self) -> int:
        name, *_ = self._settings()
        if not name:
            return 0
        rows = self.store._q("SELECT pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                             (self.store.schema, name))
        return int(rows[0][0]) if rows else 0
