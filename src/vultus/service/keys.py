"""API keys: created once, stored only as a salted scrypt hash.

A key reads ``vk_<id>_<secret>``. The id is public (it names the key in lists
and in the audit log); only scrypt(secret, salt) is stored. The store is a
small SQLite file beside the gallery (``<gallery>.keys``, mode 0600), not a
table inside it: the gallery file is the people's data and is copied and backed
up as such, key hashes are the service's, and the gallery's schema stays the
library's alone. Every request reads its key's row, so a revoked key stops
working at once in every worker process; the scrypt check itself runs once per
key and process (a digest of a verified key is remembered in memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vultus.errors import InvalidArgumentError
from vultus.gallery.errors import NotFoundError
from vultus.service.errors import ServiceError

ROLES = ("identify", "manage", "admin")  # each may do everything the one before it may
PREFIX = "vk_"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MiB and ~50 ms per check: once per key and process
FAILURES_ALLOWED = 10  # wrong secrets per key id and process ...
FAILURE_WINDOW_S = 60.0  # ... in this many seconds, before they are refused without hashing

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    collections TEXT,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    scrypt TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What a key may do. `collections` None means every collection."""

    id: str
    name: str
    role: str
    collections: tuple[str, ...] | None
    created_at: str
    revoked_at: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names whoever used this key (never the key itself)."""
        return f"key:{self.id} ({self.name})" if self.name else f"key:{self.id}"

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role,
                "collections": None if self.collections is None else list(self.collections),
                "created_at": self.created_at, "revoked_at": self.revoked_at}


#: The principal when the service runs with --no-auth (loopback only).
NO_AUTH = ApiKey(id="none", name="no-auth", role="admin", collections=None, created_at="")


def _hash(secret: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=32,
                          maxmem=64 * 1024 * 1024)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not token.startswith(PREFIX):
        return None
    body = token[len(PREFIX):]
    kid, sep, secret = body.partition("_")
    if not sep or len(kid) != 10 or not all(c in "0123456789abcdef" for c in kid) or not (20 <= len(secret) <= 100):
        return None
    return kid, secret


class KeyStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._verified: dict[str, bytes] = {}  # key id -> sha256 of the full key, after one scrypt check
        self._failures: dict[str, tuple[int, float]] = {}  # key id -> (wrong secrets, since)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _conn(self, write: bool = False):
        if not self.path.exists():
            if not write:
                yield None
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)  # created private, never world-readable
            os.close(fd)
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            if write:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(SCHEMA)
            yield conn
            if write:
                conn.execute("COMMIT")
        except BaseException:
            if write and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    @staticmethod
    def _row(r) -> ApiKey:
        cols = json.loads(r[3]) if r[3] is not None else None
        return ApiKey(id=r[0], name=r[1], role=r[2], collections=None if cols is None else tuple(cols),
                      created_at=r[4], revoked_at=r[5])

    def create(self, role: str, collections: list[str] | None = None, name: str = "") -> tuple[str, ApiKey]:
        """A new key: (the key, shown once; its record)."""
        if role not in ROLES:
            raise InvalidArgumentError(f"role must be one of {', '.join(ROLES)} (got {role!r})", role=role)
        name = (name or "").strip()
        if len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise InvalidArgumentError("a key's name must be at most 200 printable characters", code="invalid_name")
        cols = None
        if collections:
            cols = sorted({c.strip() for c in collections if c.strip()})
        kid = secrets.token_hex(5)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        digest = _hash(secret, salt, SCRYPT)
        created = _now()
        with self._conn(write=True) as c:
            c.execute("INSERT INTO api_keys (id, name, role, collections, salt, hash, scrypt, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (kid, name, role, None if cols is None else json.dumps(cols), salt, digest,
                       json.dumps(SCRYPT), created))
        return f"{PREFIX}{kid}_{secret}", ApiKey(kid, name, role, None if cols is None else tuple(cols), created)

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        with self._conn() as c:
            if c is None:
                return []
            try:
                rows = c.execute("SELECT id, name, role, collections, created_at, revoked_at FROM api_keys "
                                 "ORDER BY created_at, id").fetchall()
            except sqlite3.OperationalError:  # the file exists but holds no key yet
                return []
        keys = [self._row(r) for r in rows]
        return keys if include_revoked else [k for k in keys if k.revoked_at is None]

    def get(self, kid: str) -> ApiKey:
        for k in self.list():
            if k.id == kid:
                return k
        raise NotFoundError(f"no key {kid!r}", kind="key", id=kid)

    def revoke(self, kid: str) -> ApiKey:
        with self._conn(write=True) as c:
            n = c.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                          (_now(), kid)).rowcount
            exists = c.execute("SELECT 1 FROM api_keys WHERE id = ?", (kid,)).fetchone()
        if not exists:
            raise NotFoundError(f"no key {kid!r}", kind="key", id=kid)
        with self._lock:
            self._verified.pop(kid, None)
        key = self.get(kid)
        if not n:
            return key  # already revoked: revoking again changes nothing
        return key

    def verify(self, token: str) -> ApiKey:
        """The key's record, or ServiceError(unauthorized). Reads the row every time
        (revocation is immediate); runs scrypt once per key and process."""
        parsed = parse_key(token.strip())
        if parsed is None:
            raise ServiceError("not a vultus API key", code="unauthorized")
        kid, secret = parsed
        with self._conn() as c:
            row = None
            if c is not None:
                with contextlib.suppress(sqlite3.OperationalError):
                    row = c.execute("SELECT id, name, role, collections, created_at, revoked_at, salt, hash, scrypt "
                                    "FROM api_keys WHERE id = ?", (kid,)).fetchone()
        if row is None:
            raise ServiceError("unknown API key", code="unauthorized")
        key = self._row(row)
        if key.revoked_at is not None:
            with self._lock:
                self._verified.pop(kid, None)
            raise ServiceError("this API key was revoked", code="unauthorized", key_id=kid)
        full = hashlib.sha256(token.strip().encode()).digest()
        with self._lock:
            known = self._verified.get(kid)
        if known is not None and hmac.compare_digest(known, full):
            return key
        # Each scrypt check costs ~50 ms of CPU: a flood of wrong secrets for one key id
        # would burn the machine. Past FAILURES_ALLOWED in FAILURE_WINDOW_S, wrong
        # secrets for that id are refused without hashing (a key already verified in
        # this process keeps working: it was matched above).
        now = time.monotonic()
        with self._lock:
            count, since = self._failures.get(kid, (0, now))
            if now - since > FAILURE_WINDOW_S:
                count, since = 0, now
            if count >= FAILURES_ALLOWED:
                raise ServiceError("too many wrong secrets for this key id; wait and retry", code="unauthorized",
                                   key_id=kid)
        if not hmac.compare_digest(_hash(secret, row[6], json.loads(row[8])), row[7]):
            with self._lock:
                self._failures[kid] = (count + 1, since)
            raise ServiceError("unknown API key", code="unauthorized")
        with self._lock:
            self._verified[kid] = full
            self._failures.pop(kid, None)
        return key
