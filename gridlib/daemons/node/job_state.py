"""A node's clusters, workers and jobs as records, and the runner's limits (docs/architecture.md §5).

A cluster's phase on this node::

    preparing (directory, files) -> starting (workers run setup) -> ready
        |                               |-> failed (setup failed: every job here ends with its reason)
        +-> (refused: the directory could not be made; the cluster is forgotten)
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridlib.protocol.bodies import Setup

__all__ = ["Answers", "Assignment", "ClusterPhase", "ClusterState", "WorkerState", "failure",
           "STARTED_DELAY", "MAX_FAILED_STARTS", "STOP_GRACE", "LOOKAHEAD", "SHORT_JOB", "AHEAD_BYTES"]

# A job still running this long after it started is announced (JOB_STARTED); a shorter
# one is not: its result carries its start time, and the client, the scheduler and the
# node are each spared a message per job.
STARTED_DELAY = 0.01
MAX_FAILED_STARTS = 3  # workers in a row whose setup failed: the cluster has failed here
STOP_GRACE = 5.0  # seconds a stopped worker has to run cleanup() before it is killed
LOOKAHEAD = 8  # jobs a worker of a short-job cluster may hold behind the one it runs
SHORT_JOB = 0.005  # seconds: a cluster whose recent jobs ran this long or less gets jobs ahead
AHEAD_BYTES = 64 * 1024  # payload bytes a worker may hold ahead (its socket buffer never fills)


class ClusterPhase(enum.Enum):
    PREPARING = "preparing"  #: its directory and files are being made
    STARTING = "starting"  #: workers run setup; none is ready yet
    READY = "ready"  #: a worker is ready: jobs run
    FAILED = "failed"  #: setup failed; every job sent here ends with ``fail_reason``


@dataclass(slots=True)
class Assignment:
    """A job given to this node by a scheduler."""

    link: str
    cluster_id: str
    job_id: str
    attempt: int
    timeout: float | None
    frames: list[Any]
    outcome: dict[str, Any] | None = None  # set when the worker is killed on purpose
    start_time: float = 0.0
    label: str | None = None  # the job's id as its user knows it (GRID_JOB_ID)
    seq: int = 0  # its number on its worker (claims and revokes name jobs by it)
    size: int = 0  # payload bytes (of a job held ahead)


@dataclass(slots=True)
class WorkerState:
    wid: int
    cluster_id: str
    ready: bool = False
    job: Assignment | None = None  # the job it runs (or ran: its result is on its way)
    stopping: bool = False
    failed: bool = False  # its setup failed (it said so)
    ahead: deque[Assignment] = field(default_factory=deque)  # handed over behind ``job``, in order
    ahead_bytes: int = 0
    seq: int = 0  # the last sequence number handed to it
    killing: bool = False  # a kill is decided (or waits for the revoke of its jobs ahead)


@dataclass
class ClusterState:
    cluster_id: str
    link: str
    owner: bytes  # the Curve key of the scheduler that set it up
    dest_path: str
    blob: bytes
    setup: Setup  # the SETUP that made it: kind, cpus, setup_args, cleanup ...
    directory: str = ""
    phase: ClusterPhase = ClusterPhase.PREPARING
    fail_reason: str = ""
    workers: dict[int, WorkerState] = field(default_factory=dict)
    idle: deque[int] = field(default_factory=deque)
    pending: deque[Assignment] = field(default_factory=deque)
    orphaned_since: float | None = None  # its scheduler link was lost at this time
    failed_starts: int = 0
    last_failure: str = ""  # why the latest worker could not start
    answers_owed: int = 1  # SETUPs waiting for their SETUP_OK / SETUP_FAIL
    dropped: list[list[Any]] = field(default_factory=list)  # [job id, attempt] fenced, never started

    keep_files: bool = False  # set up again next (resetup): its files stay when it ends
    job_time: float = float("inf")  # recent average run time of its jobs here (seconds)
    ahead: int = 0  # jobs ahead per worker its scheduler granted (LOOKAHEAD_OK)
    ahead_asked: bool = False

    @property
    def cleanup(self) -> bool:
        return not self.keep_files and self.setup.cleanup is not False

    def wanted_workers(self, cpus: int) -> int:
        wanted = self.setup.cpus
        return min(cpus, wanted) if wanted is not None and wanted > 0 else cpus


class Answers(Protocol):
    """How the runner reports to the node core (which owns the links)."""

    def setup_answer(self, cluster: ClusterState) -> None: ...

    def job_result(self, job: Assignment, fields: dict[str, Any], frames: list[Any],
                   labels: list[str]) -> None: ...

    def job_report(self, job: Assignment, mtype: str, fields: dict[str, Any], frames: list[Any],
                   labels: list[str]) -> None: ...

    def want_lookahead(self, cluster: ClusterState, depth: int) -> None: ...


def failure(kind: str, message: str) -> dict[str, Any]:
    """A job's end by the node's hand: ``terminated`` with exception ``kind``."""
    return {"status": "terminated", "exception": {"type": kind, "message": message, "traceback": ""}}
