"""The delivery thread: user callbacks run here, in order, never on the I/O thread (docs/architecture.md §7)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Delivery"]

_STOP = object()


class Delivery:
    """Runs posted callables one at a time, in the order they were posted."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logging.getLogger("gridlib.client")
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._backlog = 0  # posted and not yet finished
        self._thread = threading.Thread(target=self._run, name="gridlib-delivery", daemon=True)
        self._thread.start()

    def post(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._backlog += 1
        self._queue.put(fn)

    def idle(self) -> bool:
        """Whether everything posted so far has run (so work done elsewhere now stays in order)."""
        return self._backlog == 0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                item()  # type: ignore[operator]
            except Exception:
                self.log.exception("event=callback_failed")
            finally:
                with self._lock:
                    self._backlog -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was posted, then stop (safe to call from the delivery thread)."""
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
