"""Jobs as the user sees them (docs/api.md §2; docs/architecture.md §5)."""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Generator
from concurrent.futures import CancelledError
from typing import Any

__all__ = ["JobStatus", "Job", "DispyJob", "FINAL_STATES"]

log = logging.getLogger("gridlib.client")
_CALLBACKS = threading.Lock()  # guards every job's done-callback list (short critical sections)


class JobStatus(enum.IntEnum):
    """A job's state, with dispy's numbers."""

    Created = 5  #: submitted, not yet running
    Running = 6  #: a node started it
    ProvisionalResult = 7  #: the job sent a provisional result and goes on
    Cancelled = 8  #: cancelled before it finished (queued or running)
    Terminated = 9  #: it raised, timed out, or its process died (see ``exception``)
    Abandoned = 10  #: its node was lost and it could not be resubmitted
    Finished = 11  #: it returned; ``result`` holds the value


FINAL_STATES = frozenset({JobStatus.Cancelled, JobStatus.Terminated, JobStatus.Abandoned,
                          JobStatus.Finished})

WIRE_STATUS = {
    "finished": JobStatus.Finished,
    "terminated": JobStatus.Terminated,
    "cancelled": JobStatus.Cancelled,
    "abandoned": JobStatus.Abandoned,
}


class Job:
    """One call of the computation; created by ``cluster.submit``."""

    Created = JobStatus.Created
    Running = JobStatus.Running
    ProvisionalResult = JobStatus.ProvisionalResult
    Cancelled = JobStatus.Cancelled
    Terminated = JobStatus.Terminated
    Abandoned = JobStatus.Abandoned
    Finished = JobStatus.Finished

    # A million queued jobs must fit in memory (docs/benchmarks.md, "1,000,000 queued jobs"):
    # slots instead of a per-instance dict, and no ``threading.Event`` per job (1.2 KB each,
    # most of it its Condition's waiter deque) until a thread waits on this one.  ``__dict__``
    # and ``__weakref__`` stay, so a job can still be tagged (``job.tag = ...``) and weakly
    # referenced as before; the dict is only created for a job that gets a tag.
    __slots__ = ("id", "uid", "args", "_kwargs", "status", "result", "stdout", "stderr", "exception",
                 "exception_type", "exception_message", "exception_pickle", "submit_time",
                 "start_time", "end_time", "ip_addr", "node", "attempts", "_final", "_event",
                 "_on_running", "_callbacks", "__dict__", "__weakref__")

    def __init__(self, job_id: Any, uid: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 submit_time: float) -> None:
        self.id = job_id
        self.uid = uid  # the wire id (a UUID): resubmission with it is idempotent
        self.args = args
        self._kwargs: dict[str, Any] | None = kwargs or None  # no empty dict per job: see kwargs
        self.status = JobStatus.Created
        self.result: Any = None
        self.stdout: str | bytes = ""
        self.stderr: str | bytes = ""
        self.exception: str | None = None  # the remote traceback (or the reason), as text
        self.exception_type: str | None = None  # the remote exception's class name
        self.exception_message: str | None = None  # its message
        self.exception_pickle: bytes | None = None  # the exception itself, pickled, if it pickled
        self.submit_time = submit_time
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.ip_addr: str | None = None
        self.node: str | None = None
        self.attempts = 0
        self._final = False  # set once, under _CALLBACKS, when the job is final
        self._event: threading.Event | None = None  # made by the first waiter (_waiter)
        self._on_running: Callable[[Job], None] | None = None  # GridExecutor: its future runs
        self._callbacks: list[tuple[Callable[[Job], None], bool]] | None = None

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments it was submitted with (the same dict on every access)."""
        if self._kwargs is None:
            self._kwargs = {}
        return self._kwargs

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        self._kwargs = value

    @property
    def finished(self) -> bool:
        """True once the job is in a final state."""
        return self._final

    def _waiter(self) -> threading.Event:
        """The job's ``Event``, made on first use; already set if the job is final."""
        with _CALLBACKS:
            event = self._event
            if event is None:
                event = self._event = threading.Event()
                if self._final:
                    event.set()
        return event

    def __call__(self, timeout: float | None = None) -> Any:
        """Wait for the job; its result, or ``None`` if it did not finish.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        if not self._final and not self._waiter().wait(timeout):
            raise TimeoutError(f"job {self.id} did not finish within {timeout} s")
        return self.result if self.status == JobStatus.Finished else None

    @property
    def finish(self) -> threading.Event:
        """dispy's ``job.finish``: an ``Event`` set once the job is final."""
        return self._waiter()

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` once the job is final (at once, here, if it already is).

        Like ``concurrent.futures.Future.add_done_callback``; ``fn`` runs on the
        cluster's delivery thread, with the other callbacks, in order.
        """
        self._on_done(fn, inline=False)

    def _on_done(self, fn: Callable[[Job], None], inline: bool) -> None:
        """``inline``: run on whichever client thread completes the job (for short,
        non-blocking internal hand-offs only: a queue put, ``call_soon_threadsafe``)."""
        with _CALLBACKS:
            if not self._final:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((fn, inline))
                return
        run_callback(fn, self)

    def _set_done(self) -> list[Callable[[Job], None]]:
        """Mark final; runs the inline callbacks, returns the others for the delivery thread."""
        with _CALLBACKS:
            self._final = True
            if self._event is not None:
                self._event.set()
            callbacks, self._callbacks = self._callbacks or [], None
        for fn, inline in callbacks:
            if inline:
                run_callback(fn, self)
        return [fn for fn, inline in callbacks if not inline]

    def error(self) -> BaseException | None:
        """The job's failure as an exception to raise (None when it finished).

        A job that raised gives a :class:`~gridlib.RemoteJobError` that is also an
        instance of the original exception class when that class loads here,
        with the remote traceback as its ``__cause__``; a cancelled job a
        ``CancelledError``; a job no node could run a ``NoNodesError``; a job
        whose node was lost a ``ConnectionLost``.
        """
        from gridlib.protocol.errors import ConnectionLost, NoNodesError
        from gridlib.remote_error import remote_error

        if self.status == JobStatus.Finished:
            return None
        message = self.exception_message or self.exception or f"the job ended {self.status.name}"
        if self.status == JobStatus.Cancelled:
            return CancelledError(f"job {self.id} was cancelled" + (f": {message}" if self.exception else ""))
        if self.exception_type == "NoNodesError":
            return NoNodesError(message)
        if self.status == JobStatus.Abandoned and not self.exception_type:
            return ConnectionLost(f"job {self.id} was abandoned: {message}")
        tb = self.exception if self.exception and self.exception.startswith("Traceback") else ""
        return remote_error(self.exception_type or self.status.name, message, tb, self.node,
                            self.exception_pickle)

    def __await__(self) -> Generator[Any, None, Any]:
        """``await job``: its result, or its failure raised (:meth:`error`); never blocks the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(job: Job) -> None:
            def set_result() -> None:
                if future.done():
                    return
                error = job.error()
                if error is None:
                    future.set_result(job.result)
                else:
                    future.set_exception(error)
            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:  # the event loop is closed: nobody awaits any more
                pass

        self._on_done(settle, inline=True)
        return future.__await__()

    def __repr__(self) -> str:
        return f"<Job id={self.id!r} status={self.status.name} node={self.node!r}>"


def run_callback(fn: Callable[[Job], None], job: Job) -> None:
    """Call a done-callback; one that raises is logged, never propagated."""
    try:
        fn(job)
    except Exception:
        log.exception("event=done_callback_failed job=%s", job.id)


DispyJob = Job
