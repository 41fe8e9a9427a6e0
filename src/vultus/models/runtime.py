"""onnxruntime sessions: how vultus imports onnxruntime, the session options it
uses, and lazy values built once under a lock.

Thread defaults (bench/threads.py, bench/results/threads.md): intra-op spinning
is off, because a spinning pool burns a core that another process (or another
vultus worker) needs; each session gets SESSION_THREADS threads unless the
caller asks for more. To use every core on a large job, run that many worker
processes with one thread each (the gallery's enroll workers do), not one
process with many threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger("vultus.models")

# onnxruntime >= 1.2x on Linux starts its telemetry when it is imported: it writes a
# device id and an event database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime
# (or $XDG_CACHE_HOME) on every run. ORT_DISABLE_TELEMETRY=1, read at import, turns that
# off; ort.disable_telemetry_events() after the import does not stop the files.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"

# Intra-op threads per session when the caller does not say (VULTUS_ONNX_THREADS overrides).
SESSION_THREADS = 1
# Whether idle intra-op threads spin waiting for work (onnxruntime's default is to spin).
SPINNING = False


def onnxruntime():
    """The onnxruntime module, imported with its telemetry off unless the user chose
    otherwise (ORT_DISABLE_TELEMETRY already set is respected). If onnxruntime was
    imported before vultus imported it, its telemetry already runs: see docs/architecture.md."""
    os.environ.setdefault(TELEMETRY_ENV, "1")
    import onnxruntime as ort

    return ort


def default_threads() -> int:
    """The cores this process may use: VULTUS_THREADS, else the CPUs it is allowed to
    run on. Used to size worker pools and search threads, not onnxruntime sessions."""
    env = os.environ.get("VULTUS_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_threads(requested: int | None = None) -> int:
    """Intra-op threads for one onnxruntime session: `requested`, else
    VULTUS_ONNX_THREADS, else SESSION_THREADS."""
    if requested:
        return max(1, int(requested))
    env = os.environ.get("VULTUS_ONNX_THREADS")
    if env:
        return max(1, int(env))
    return SESSION_THREADS


def session_options(threads: int | None = None):
    """onnxruntime.SessionOptions with vultus's defaults (see the module docstring)."""
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = session_threads(threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPINNING else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if SPINNING else "0")
    opts.log_severity_level = 3  # the shipped graphs warn about harmless things
    return opts


class Lazy:
    """A value built on first use, once, under a lock (model loads are slow and
    not safe to race)."""

    def __init__(self, factory: Callable[[], object]):
        self._factory = factory
        self._value = None
        self._lock = threading.Lock()

    def get(self):
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value


class LazySession:
    """An onnxruntime session created on first use, once, under a lock.

    `source` returns a path or the model bytes; it is called only when the
    session is first needed, so building an Engine costs nothing."""

    def __init__(self, source: Callable[[], object], threads: int | None = None):
        self._source = source
        self._threads = threads
        self._session = None
        self._lock = threading.Lock()

    @property
    def session(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    ort = onnxruntime()
                    opts = session_options(self._threads)
                    src = self._source()
                    model = src if isinstance(src, bytes) else str(src)
                    self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return self._session

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        sess = self.session
        return sess.run(None, {sess.get_inputs()[0].name: feed})


def warm(model) -> float:
    """Load everything `model` loads lazily (its Lazy values and sessions, also inside
    lists); returns the seconds it took. The model cache calls it so that a model it
    hands out is ready and its load is timed once, under the cache's lock."""
    start = time.perf_counter()
    for value in list(vars(model).values()) if hasattr(model, "__dict__") else []:
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, Lazy):
                item.get()
            elif isinstance(item, LazySession):
                _ = item.session
    return time.perf_counter() - start
