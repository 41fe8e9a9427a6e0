"""The one model cache of a process: every model vultus runs is loaded here.

    detector = get_model("yunet", task="detect", threads=1)

A model is keyed by its registry name and the options it is built with (None
options are dropped, so `threads=None` and no `threads` are the same model).
Each key has its own lock: two threads asking for the same model load it once
(the second waits for the first), while different models load in parallel.
The model handed out is loaded (weights read, sessions created) and is shared
by every caller in the process, so callers must not change its attributes.
Models are thread-safe to run (onnxruntime sessions are; the dlib detectors
hold their own lock).

Each load is logged on the "vultus.models" logger (INFO: name, options, seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from vultus.models.registry import get_spec
from vultus.models.runtime import log, warm

ModelKey = tuple[str, tuple[tuple[str, Hashable], ...]]

_models: dict[ModelKey, object] = {}
_locks: dict[ModelKey, threading.Lock] = {}
_guard = threading.Lock()  # guards _locks; held only for a dict lookup, never during a load


def model_key(name: str, options: dict) -> ModelKey:
    return name, tuple(sorted((k, v) for k, v in options.items() if v is not None))


def get_model(name: str, task: str | None = None, **options):
    """The loaded model `name` built with `options` (e.g. threads, max_side), loaded
    on the first call and shared afterwards. `task` checks the model's kind."""
    spec = get_spec(name, task=task)  # an unknown name or a wrong task fails before any lock
    key = model_key(name, options)
    model = _models.get(key)
    if model is not None:
        return model
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        model = _models.get(key)
        if model is None:
            start = time.perf_counter()
            model = spec.load(**dict(key[1]))
            warm(model)
            seconds = time.perf_counter() - start
            _models[key] = model
            log.info("loaded model %s%s in %.2f s", name,
                     "" if not key[1] else " (" + ", ".join(f"{k}={v}" for k, v in key[1]) + ")", seconds)
    return model


def loaded() -> list[ModelKey]:
    """The keys of the models loaded so far, in load order."""
    return list(_models)


def clear() -> None:
    """Forget every loaded model (they are freed once no Engine holds them); the next
    get_model loads afresh. For long-running processes that switch models, and tests."""
    with _guard:
        _models.clear()
        _locks.clear()
