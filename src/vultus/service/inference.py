"""A bounded pool that runs the models and the gallery off the event loop.

The event loop only parses requests and writes answers; every Engine or
Gallery call runs on one of `threads` pool threads (the models are loaded once
per process and shared: onnxruntime sessions are safe to call from several
threads). At most `threads + queue_size` calls are admitted at once; the next
is refused at once with 429 and Retry-After rather than queued without bound,
so a burst cannot pile up memory or latency. A call that has not finished
within the request timeout answers 503 (a queued one is cancelled; a running
one finishes, since a thread cannot be stopped, and keeps its slot meanwhile).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vultus.service.errors import ServiceError


class InferencePool:
    def __init__(self, threads: int, queue_size: int, timeout: float):
        self.threads = threads
        self.capacity = threads + queue_size
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vultus-inference")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._closed = False

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def running(self) -> int:
        return self._running

    def _admit(self) -> None:
        with self._lock:
            if self._closed:
                raise ServiceError("the service is shutting down", code="shutting_down")
            if self._admitted >= self.capacity:
                raise ServiceError(f"too many requests in progress ({self._admitted}); retry shortly",
                                   code="overloaded", limit=self.capacity)
            self._admitted += 1

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """fn(*args, **kwargs) on a pool thread; 429 when full, 503 past the timeout."""
        self._admit()

        def call():
            with self._lock:
                self._running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1
                self._release()

        try:
            future = self._executor.submit(call)
        except RuntimeError as exc:  # the executor was shut down meanwhile
            self._release()
            raise ServiceError("the service is shutting down", code="shutting_down") from exc
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError as exc:
            if future.cancel():  # never started: its slot is ours to give back
                self._release()
            raise ServiceError(f"the request took longer than {self.timeout:g} s", code="timeout",
                               limit=self.timeout) from exc
        except asyncio.CancelledError:  # the client went away
            if future.cancel():
                self._release()
            raise

    def shutdown(self) -> None:
        """Refuse new work; wait for what is running (graceful shutdown)."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)
