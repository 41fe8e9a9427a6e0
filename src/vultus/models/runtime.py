"""Lazy, thread-safe onnxruntime sessions."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np


def default_threads() -> int:
    """Threads per session: VULTUS_THREADS, else every core."""
    env = os.environ.get("VULTUS_THREADS")
    if env:
        return max(1, int(env))
    return os.cpu_count() or 1


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
                    import onnxruntime as ort

                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = self._threads or default_threads()
                    opts.inter_op_num_threads = 1
                    opts.log_severity_level = 3  # the shipped graphs warn about harmless things
                    src = self._source()
                    model = src if isinstance(src, bytes) else str(src)
                    self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return self._session

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        sess = self.session
        return sess.run(None, {sess.get_inputs()[0].name: feed})
