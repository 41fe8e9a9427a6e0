"""The one model cache, its locks, model-load logging, and onnxruntime's defaults."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import need_data
from vultus.models import cache

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"
OBAMA = ("face_recognition", "tests", "test_images", "obama.jpg")
KNN = ("face_recognition", "examples", "knn_examples")


class LoadLog(logging.Handler):
    """The names of the models loaded while it is attached to "vultus.models"."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.names: list[str] = []

    def emit(self, record):
        if record.msg.startswith("loaded model"):
            self.names.append(record.args[0])


@pytest.fixture()
def loads():
    logger = logging.getLogger("vultus.models")
    handler, level = LoadLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    cache.clear()
    yield handler.names
    logger.removeHandler(handler)
    logger.setLevel(level)
    cache.clear()


def test_one_model_loads_once_however_many_threads_ask(loads):
    barrier = threading.Barrier(8)
    got = []

    def ask():
        barrier.wait()
        got.append(cache.get_model("sface", task="embed"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(m is got[0] for m in got)
    assert loads == ["sface"]
    # Options are part of the key; an option left at None is the same model as one not given.
    assert cache.get_model("sface", threads=None) is got[0]
    assert cache.get_model("sface", threads=1) is not got[0]
    assert loads == ["sface", "sface"]


def test_a_slow_load_does_not_hold_up_other_models(loads):
    """Each key has its own lock: while yunet's lock is held (a load in progress), sface loads."""
    key = cache.model_key("yunet", {})
    with cache._guard:
        lock = cache._locks.setdefault(key, threading.Lock())
    with lock:
        done = threading.Event()
        t = threading.Thread(target=lambda: (cache.get_model("sface"), done.set()))
        t.start()
        assert done.wait(60), "sface waited for yunet's lock"
        t.join()
    assert loads == ["sface"]


def test_engines_and_attribute_models_share_the_cache(loads):
    from vultus import Engine
    from vultus.attributes.analyze import attribute_model
    from vultus.detect import load_detector

    a, b = Engine(), Engine()
    assert loads == []  # building an Engine loads nothing
    assert a.detector is b.detector is load_detector("yunet")
    assert a.embedder is b.embedder
    assert Engine(detector="dlib-hog").landmarks68(need_data(*OBAMA))[0].landmarks68.shape == (68, 2)
    assert attribute_model("dlib-68", "landmarks") is cache.get_model("dlib-68")
    assert sorted(loads) == ["dlib-68", "dlib-hog", "sface", "yunet"]  # dlib-68 once, for both users


@pytest.mark.slow
def test_identify_from_8_threads_gives_the_sequential_answers(tmp_path, loads):
    from vultus.gallery import Gallery

    db = tmp_path / "g.db"
    with Gallery(db) as g:
        report = g.enroll_folder(need_data(*KNN, "train"), workers=0)
        assert report.enrolled == 9
    tests = sorted(need_data(*KNN, "test").iterdir())

    def answers(gallery, image):
        return [(f.person, round(f.similarity, 5)) for f in gallery.identify([image])[0].unwrap().faces]

    cache.clear()
    with Gallery(db) as g:
        expected = {p: answers(g, p) for p in tests}
    by_name = {p.name: p for p in tests}
    assert [person for person, _ in expected[by_name["obama1.jpg"]]] == ["obama"]

    cache.clear()  # the threads race to load every model
    loads.clear()
    got: dict[int, dict] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    with Gallery(db) as g:
        def work(k):
            try:
                barrier.wait()
                order = tests[k % len(tests):] + tests[:k % len(tests)]
                got[k] = {p: answers(g, p) for p in order}
            except BaseException as exc:  # reported below, with the thread's answers
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(g._engines) == 1
    assert len(got) == 8 and all(answer == expected for answer in got.values())
    assert sorted(loads) == ["sface", "yunet"]  # each model loaded once for the eight threads


def test_model_loads_are_logged_with_their_seconds(caplog):
    cache.clear()
    with caplog.at_level(logging.INFO, logger="vultus.models"):
        cache.get_model("yunet", threads=1)
    (record,) = [r for r in caplog.records if r.name == "vultus.models"]
    assert record.getMessage().startswith("loaded model yunet (threads=1) in ") and record.getMessage().endswith(" s")
    cache.clear()


def _run_python(code: str, env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    env |= {"PYTHONPATH": str(SRC), "VULTUS_CACHE": str(tmp_path / "vultus-cache")} | env_extra
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_a_run_leaves_the_home_folder_empty_and_prints_nothing(tmp_path):
    """onnxruntime's telemetry writes a device id and an event database under ~/.cache on
    import unless ORT_DISABLE_TELEMETRY is set before; vultus sets it. The library logs
    model loads, but without logging configured nothing reaches stderr."""
    home = tmp_path / "home"
    home.mkdir()
    image = need_data(*OBAMA)
    r = _run_python(f"from vultus import Engine; print(len(Engine().embed({str(image)!r})))",
                    {"HOME": str(home)}, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    assert r.stderr == ""
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    # Without VULTUS_CACHE, vultus's own cache dir (remembered model digests) is all a run leaves there.
    env = {"HOME": str(home), "VULTUS_CACHE": ""}
    r = _run_python(f"from vultus import Engine; print(len(Engine().embed({str(image)!r})))", env, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert files == [".cache/vultus/verified.json", ".cache/vultus/verified.key"]


def test_a_user_choice_of_telemetry_is_respected(tmp_path):
    r = _run_python("from vultus.models.runtime import onnxruntime; import os; onnxruntime(); "
                    "print(os.environ['ORT_DISABLE_TELEMETRY'])", {"ORT_DISABLE_TELEMETRY": "0",
                                                                    "HOME": str(tmp_path)}, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr


def test_session_defaults_no_spinning_and_the_chosen_thread_count(monkeypatch):
    from vultus.models import runtime

    monkeypatch.delenv("VULTUS_ONNX_THREADS", raising=False)
    opts = runtime.session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == runtime.SESSION_THREADS and opts.inter_op_num_threads == 1
    assert runtime.session_options(3).intra_op_num_threads == 3
    monkeypatch.setenv("VULTUS_ONNX_THREADS", "2")
    assert runtime.session_options().intra_op_num_threads == 2
