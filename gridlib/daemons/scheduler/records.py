"""The scheduler core's records of clients, clusters, nodes and jobs.

Plain data, no I/O.  Payload frames are kept as the opaque objects the
shell received; the core never looks inside them.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Route", "JobState", "SetupState", "ClientRecord", "ClusterRecord", "NodeRecord", "JobRecord",
           "JobQueue", "SaveCluster", "SaveJob", "DropJob", "DropCluster", "Change"]

Route = tuple[bytes, ...]


class JobState(enum.Enum):
    QUEUED = "queued"  #: waiting for a node
    DISPATCHED = "dispatched"  #: sent to a node, not yet started
    RUNNING = "running"  #: the node started it
    CANCELLING = "cancelling"  #: cancel sent to the node, result pending
    DONE = "done"  #: result sent to the client, waiting for its acknowledgement
    ADOPTING = "adopting"  #: its node re-registered, or its client recovers it: waiting
    #: for a node to report it (then it carries on there) before it is settled


class SetupState(enum.StrEnum):
    """A cluster's state on a node (``NodeRecord.setup``; the diagram is in allocation.py).

    A ``str`` enum: messages carry its ``.value``, the plain string.
    """

    OFFERED = "offered"  #: told to the client (NODE_EVENT discovered), waiting for NODE_ALLOCATE
    REJECTED = "rejected"  #: the client allocated no CPUs of it
    PENDING = "pending"  #: SETUP sent, waiting for SETUP_OK or SETUP_FAIL
    READY = "ready"  #: set up: the only state in which the node takes the cluster's jobs
    FAILED = "failed"  #: SETUP_FAIL (the reason is in ``NodeRecord.setup_failures``)
    DEALLOCATED = "deallocated"  #: set up, but the client takes no jobs there for now
    CLOSING = "closing"  #: torn down once the cluster's jobs there ended
    CLOSED = "closed"  #: torn down at the client's request
    RESETUP = "resetup"  #: set up again once the cluster's jobs there ended


@dataclass(slots=True)
class ClientRecord:
    route: Route
    user: str
    name: str
    clusters: set[str] = field(default_factory=set)
    seen: bool = True  # False for a client restored from the journal until it speaks again
    batches: bool = False  # it reads JOBS_RESULT (its HELLO said so)


@dataclass(slots=True)
class JobRecord:
    job_id: str
    cluster_id: str
    labels: list[str]
    frames: list[Any]
    seq: int
    # what the job's JOB_SUBMIT spec said (checked), as fields: a queued job keeps no map
    priority: int = 0
    timeout: float | None = None  # seconds, from its start on a node
    pin: str | None = None  # the node it must run on (node id, name or address)
    label: str | None = None  # its id as its client knows it (GRID_JOB_ID, the monitor)
    state: JobState = JobState.QUEUED
    attempt: int = 0
    node_id: str | None = None
    result_node: str | None = None
    recovered: bool = False  # resubmitted by a recovering client: run it if nobody has it
    result: Any = None  # the final JOB_RESULT message, kept until the client acknowledges it
    size: int = 0  # bytes of its argument frames (a node refuses messages over its limit)

    @classmethod
    def from_spec(cls, job_id: str, cluster_id: str, spec: dict[str, Any], labels: list[str],
                  frames: list[Any], seq: int) -> JobRecord:
        """A job from its (checked) JOB_SUBMIT spec: ``priority``, ``timeout``, ``node``, ``label``."""
        timeout = spec.get("timeout")
        return cls(job_id, cluster_id, labels, frames, seq, priority=int(spec.get("priority") or 0),
                   timeout=float(timeout) if timeout else None, pin=spec.get("node") or None,
                   label=spec.get("label"))

    @property
    def spec(self) -> dict[str, Any]:
        """The job's spec as JOB_SUBMIT carries it (for the journal)."""
        spec: dict[str, Any] = {"id": self.job_id, "n": len(self.labels)}
        for key, value in (("priority", self.priority or None), ("timeout", self.timeout),
                           ("node", self.pin), ("label", self.label)):
            if value is not None:
                spec[key] = value
        return spec


class JobQueue:
    """Jobs waiting for a node: highest priority first, then first submitted.

    Removal is lazy: a cancelled job stays in the heap and is skipped when
    popped, so cancel is O(1) and pop is amortized O(log n).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []

    def push(self, job: JobRecord) -> None:
        heapq.heappush(self._heap, (-job.priority, job.seq, job.job_id))

    def pop(self, jobs: dict[str, JobRecord]) -> JobRecord | None:
        while self._heap:
            _, _, job_id = heapq.heappop(self._heap)
            job = jobs.get(job_id)
            if job is not None and job.state is JobState.QUEUED:
                return job
        return None

    def __len__(self) -> int:
        return len(self._heap)

    def head(self, jobs: dict[str, JobRecord]) -> tuple[int, int] | None:
        """(-priority, submission order) of the next job, for the "fifo" policy."""
        while self._heap:
            key, seq, job_id = self._heap[0]
            job = jobs.get(job_id)
            if job is not None and job.state is JobState.QUEUED:
                return key, seq
            heapq.heappop(self._heap)
        return None


@dataclass(slots=True)
class ClusterRecord:
    cluster_id: str
    client: Route
    user: str
    kind: str
    options: dict[str, Any]
    labels: list[str]
    frames: list[Any]
    queue: JobQueue = field(default_factory=JobQueue)
    pinned: dict[str, JobQueue] = field(default_factory=dict)
    jobs: set[str] = field(default_factory=set)
    queued: int = 0
    created: int = field(default_factory=lambda: next_seq())  # for the "early" policy
    served: int = 0  # when it last got a job dispatched, for the "fair" policy
    done: int = 0  # jobs that reached a final state (for status reports)
    # jobs nodes reported before the recovering client resubmitted them:
    # job id -> (node id, attempt, running, report time)
    reported: dict[str, tuple[str, int, bool, float]] = field(default_factory=dict)
    queued_since: float = 0.0  # when its queue last went from empty to waiting
    no_node_since: float | None = None  # jobs wait and no node can run them (waiting.py)
    warned_at: float | None = None  # when the client was last told so
    no_node_reason: str = ""  # set: no node will come (its private node died); jobs end at once

    @property
    def recovering(self) -> bool:
        return bool(self.options.get("recover"))

    @property
    def exclusive(self) -> bool:
        return bool(self.options.get("exclusive"))

    @property
    def reentrant(self) -> bool:
        return bool(self.options.get("reentrant"))

    @property
    def max_attempts(self) -> int:
        value = self.options.get("max_attempts")
        return value if isinstance(value, int) and value > 0 else 3


@dataclass(slots=True)
class NodeRecord:
    node_id: str
    route: Route
    user: str
    name: str
    ip_addr: str
    cpus: int
    info: dict[str, Any]
    last_seen: float
    inflight: dict[str, int] = field(default_factory=dict)  # job id -> attempt
    setup: dict[str, SetupState] = field(default_factory=dict)  # cluster id -> state (allocation.py)
    cluster_cpus: dict[str, int] = field(default_factory=dict)  # CPUs each cluster may use here
    lookahead: dict[str, int] = field(default_factory=dict)  # jobs ahead per CPU granted (LOOKAHEAD)
    extra_setup: dict[str, Any] = field(default_factory=dict)  # per-node setup args and files
    setup_failures: dict[str, str] = field(default_factory=dict)  # cluster id -> why its setup failed
    jobs_done: int = 0
    suspect: bool = False

    def public(self) -> dict[str, Any]:
        """What clients are told about this node."""
        return {
            "node_id": self.node_id, "name": self.name, "ip_addr": self.ip_addr,
            "cpus": self.cpus, "busy": len(self.inflight), "jobs_done": self.jobs_done,
            **{k: v for k, v in self.info.items()
               if k in ("platform", "avail", "port", "pid", "python", "max_msg_size")},
        }


# -- durable changes: what the shell journals (SchedulerState.persist, journal.py) ---------------
@dataclass(frozen=True, slots=True)
class SaveCluster:
    """A cluster was opened: journal it (its options, computation and files)."""

    cluster: ClusterRecord


@dataclass(frozen=True, slots=True)
class SaveJob:
    """A job was accepted: journal it (its spec and argument frames)."""

    job: JobRecord


@dataclass(frozen=True, slots=True)
class DropJob:
    """A job's result was acknowledged: forget it."""

    job_id: str


@dataclass(frozen=True, slots=True)
class DropCluster:
    """A cluster was closed: forget it and its jobs."""

    cluster_id: str


#: one durable change, in the order the core made them
Change = SaveCluster | SaveJob | DropJob | DropCluster


_seq = itertools.count()


def next_seq() -> int:
    return next(_seq)


def advance_seq(past: int) -> None:
    """Continue numbering after ``past`` (a restored journal's jobs and clusters keep theirs)."""
    global _seq
    _seq = itertools.count(max(next(_seq), past + 1))
