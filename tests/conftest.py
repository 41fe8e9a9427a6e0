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
