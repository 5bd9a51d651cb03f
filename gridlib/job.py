"""Jobs as the user sees them (API.md ``Job``, ``JobStatus``; DESIGN §6)."""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Generator
from typing import Any

__all__ = ["JobStatus", "Job", "DispyJob", "FINAL_STATES"]


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

    def __init__(self, job_id: Any, uid: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 submit_time: float) -> None:
        self.id = job_id
        self.uid = uid  # the wire id (a UUID): resubmission with it is idempotent
        self.args = args
        self.kwargs = kwargs
        self.status = JobStatus.Created
        self.result: Any = None
        self.stdout: str | bytes = ""
        self.stderr: str | bytes = ""
        self.exception: str | None = None
        self.exception_type: str | None = None
        self.submit_time = submit_time
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.ip_addr: str | None = None
        self.node: str | None = None
        self.attempts = 0
        self._done = threading.Event()

    @property
    def finished(self) -> bool:
        """True once the job is in a final state."""
        return self._done.is_set()

    def __call__(self, timeout: float | None = None) -> Any:
        """Wait for the job; its result, or ``None`` if it did not finish.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} did not finish within {timeout} s")
        return self.result

    def __await__(self) -> Generator[Any, None, Any]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(None, self.__call__).__await__()

    def __repr__(self) -> str:
        return f"<Job id={self.id!r} status={self.status.name} node={self.node!r}>"


DispyJob = Job
