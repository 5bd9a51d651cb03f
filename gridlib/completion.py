"""Jobs in the order they finish, for threads and for asyncio (docs/api.md §1.3, docs/executor.md).

``cluster.as_completed(jobs)`` returns an :class:`AsCompleted`: iterate it
(``for job in ...``) in a thread, or ``async for job in ...`` in a coroutine.
Each job is yielded once, as soon as it is final (finished, terminated,
cancelled or abandoned); jobs already final come first.  With ``timeout``,
``TimeoutError`` is raised once that many seconds have passed since the call
and jobs are still unfinished, as ``concurrent.futures.as_completed`` does.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator

from gridlib.job import Job

__all__ = ["AsCompleted"]


class AsCompleted(Iterator[Job], AsyncIterator[Job]):
    """The jobs of one ``as_completed`` call, yielded as they finish."""

    def __init__(self, jobs: Iterable[Job], timeout: float | None = None) -> None:
        unique = list(dict.fromkeys(jobs))  # each job once, in the order given
        self._left = len(unique)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._arrived: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        for job in unique:
            job._on_done(self._on_done, inline=True)

    def _on_done(self, job: Job) -> None:
        """On the client thread that completed ``job`` (or here, if it was final already)."""
        self._arrived.put(job)
        with self._lock:
            waker = self._waker
        if waker is not None:
            loop, event = waker
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that event loop is closed
                pass

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _timed_out(self) -> TimeoutError:
        return TimeoutError(f"{self._left} job(s) still unfinished after {self._timeout} s")

    # -- threads ----------------------------------------------------------------
    def __iter__(self) -> AsCompleted:
        return self

    def __next__(self) -> Job:
        if self._left == 0:
            raise StopIteration
        try:
            job = self._arrived.get(timeout=self._remaining())
        except queue.Empty:
            raise self._timed_out() from None
        self._left -= 1
        return job

    # -- asyncio ----------------------------------------------------------------
    def __aiter__(self) -> AsCompleted:
        return self

    async def __anext__(self) -> Job:
        if self._left == 0:
            raise StopAsyncIteration
        while True:
            try:
                job = self._arrived.get_nowait()
            except queue.Empty:
                pass
            else:
                self._left -= 1
                return job
            event = asyncio.Event()
            with self._lock:
                self._waker = (asyncio.get_running_loop(), event)
            if not self._arrived.empty():  # arrived while the waker was being set
                continue
            try:
                await asyncio.wait_for(event.wait(), self._remaining())
            except asyncio.TimeoutError:
                raise self._timed_out() from None
