"""A small single-threaded event loop over ``zmq.Poller`` (the imperative shell).

Every daemon and the client's I/O thread run one :class:`Reactor`: sockets
and file descriptors with read handlers, timers, and a thread-safe
``call_soon_threadsafe`` woken through a pipe.  Handlers must not block.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

__all__ = ["Reactor", "Timer"]


class Timer:
    """A scheduled call; ``cancel()`` prevents it (and its repeats)."""

    __slots__ = ("when", "interval", "fn", "cancelled")

    def __init__(self, when: float, interval: float | None, fn: Callable[[], None]) -> None:
        self.when, self.interval, self.fn, self.cancelled = when, interval, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """Poll sockets and fds, run timers, and run callables posted from other threads."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logging.getLogger("gridlib.reactor")
        self._poller = zmq.Poller()
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._posted: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._handlers[self._wake_r] = self._drain_posted
        self._running = False
        self._stopped = threading.Event()
        self.after_turn: list[Callable[[], None]] = []  # run once after every loop turn

    # -- registration -----------------------------------------------------
    def add_reader(self, sock_or_fd: Any, handler: Callable[[], None]) -> None:
        self._poller.register(sock_or_fd, zmq.POLLIN)
        self._handlers[sock_or_fd] = handler

    def remove_reader(self, sock_or_fd: Any) -> None:
        if self._handlers.pop(sock_or_fd, None) is not None:
            self._poller.unregister(sock_or_fd)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + delay, None, fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_every(self, interval: float, fn: Callable[[], None], first: float | None = None) -> Timer:
        timer = Timer(time.monotonic() + (interval if first is None else first), interval, fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the reactor thread at its next turn (any thread may call)."""
        self._posted.append(fn)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so a wake-up is already pending
        except OSError:
            pass  # closed: the loop is gone (e.g. a signal during shutdown), nothing will run

    # -- running ----------------------------------------------------------
    def _drain_posted(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._posted:  # each runs: one that raises is logged, and the rest still run
            self._guard(self._posted.popleft())

    def _run_timers(self) -> float | None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            if timer.interval is not None:
                timer.when = max(timer.when + timer.interval, now)
                heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
            self._guard(timer.fn)
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] - time.monotonic() if self._timers else None

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            self.log.exception("event=handler_failed handler=%r", fn)

    def run_once(self, max_wait: float = 1.0) -> None:
        wait = self._run_timers()
        timeout = max_wait if wait is None else max(0.0, min(wait, max_wait))
        # whole milliseconds, rounded up: a timer due in 0.3 ms must not make the loop spin
        # (poll(0) again and again) until it is due -- it fires within a millisecond instead
        for item, _ in self._poller.poll(math.ceil(timeout * 1000)):
            handler = self._handlers.get(item)
            if handler is not None:
                self._guard(handler)
        for fn in self.after_turn:
            self._guard(fn)

    def run(self) -> None:
        """Run until :meth:`stop` (from any thread)."""
        self._running = True
        self._stopped.clear()
        try:
            while self._running:
                self.run_once()
        finally:
            self._stopped.set()

    def stop(self) -> None:
        def _stop() -> None:
            self._running = False
        self.call_soon_threadsafe(_stop)

    def close(self) -> None:
        if self._wake_w < 0:
            return
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1  # never an fd number someone else may get next
