"""The node's clusters, workers and jobs, as pure state (docs/architecture.md §5).

At most ``cpus`` jobs run at once across all clusters.  A cluster's workers
are started once its directory is prepared (setup runs once in each); a job
goes to an idle worker of its cluster.  Cancel and timeout kill the worker's
process group and a fresh worker replaces it.  Nothing here touches a
process or a file: the runner appends effects (``SpawnWorker``,
``WorkerSend``, ``KillWorker``, timers) to the core's outbox and reports
answers through :class:`Answers`, which the core turns into messages.

Jobs ahead.  A cluster whose jobs are short (``SHORT_JOB``) gets up to
``cluster.ahead`` more jobs written to each busy worker behind the one it runs,
so the worker goes from one job to the next without waiting for its node.  A
job ahead starts only when the worker *claims* it (a sequence number in memory
shared with the node, under a lock); the node takes unclaimed ones back
(``RevokeAhead``) to cancel one, before a kill, on a fence, a pause or a
teardown, and learns exactly which had started.  A scheduler grants the depth
first (``LOOKAHEAD``): from then on it counts jobs ahead as ones that may have
started when it settles a lost node's jobs.

A cluster's phase on this node::

    preparing (directory, files) -> starting (workers run setup) -> ready
        |                               |-> failed (setup failed: every job here ends with its reason)
        +-> (refused: the directory could not be made; the cluster is forgotten)
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridlib.protocol.bodies import Setup

from .events import (
    AheadRevoked,
    CancelTimer,
    Effect,
    KillWorker,
    PrepareCluster,
    RemoveClusterDir,
    RevokeAhead,
    SetTimer,
    SpawnWorker,
    WorkerSend,
)

__all__ = ["Answers", "Assignment", "ClusterPhase", "ClusterState", "JobRunner", "STARTED_DELAY",
           "MAX_FAILED_STARTS", "STOP_GRACE", "LOOKAHEAD", "SHORT_JOB", "AHEAD_BYTES"]

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


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"status": "terminated", "exception": {"type": kind, "message": message, "traceback": ""}}


class JobRunner:
    """Clusters, their worker processes (as records) and their jobs on one node."""

    def __init__(self, cpus: int, out: list[Effect], answers: Answers,
                 init: tuple[str, str] | None = None, log: logging.Logger | None = None,
                 max_output: int = 4 * 1024 * 1024) -> None:
        self.cpus, self.out, self.answers, self.init = cpus, out, answers, init
        self.max_output = max_output
        self.log = log or logging.getLogger("gridlib.node")
        self.paused = False  # jobs wait, none starts (the node is draining or out of service)
        self.clusters: dict[str, ClusterState] = {}
        self.retired: dict[str, ClusterState] = {}  # torn down, workers still exiting
        self.workers: dict[int, WorkerState] = {}
        self.running = 0
        self.now = 0.0
        self._next_wid = 1
        self._rr: deque[str] = deque()  # round robin over clusters with pending jobs

    # -- clusters ---------------------------------------------------------------------
    def setup(self, link: str, owner: bytes, setup: Setup,
              files: list[tuple[str, int, Any]], blob: bytes) -> ClusterState:
        """A new cluster: its directory is prepared first (``prepared``), then workers start."""
        cluster_id = setup.cluster_id
        retired = self.retired.get(cluster_id)
        if retired is not None:  # set up again (resetup): its old workers must not remove the files
            retired.keep_files = True
        dest = setup.dest_path or cluster_id
        cluster = ClusterState(cluster_id, link, owner, dest, blob, setup)
        self.clusters[cluster_id] = cluster
        self.out.append(PrepareCluster(cluster_id, dest, files))
        return cluster

    def adopt(self, cluster: ClusterState, link: str) -> None:
        """A cluster set up here before is claimed again (its scheduler reconnected)."""
        cluster.link = link
        cluster.orphaned_since = None
        for job in self._jobs_of(cluster):
            job.link = link

    def prepared(self, cluster_id: str, directory: str) -> None:
        cluster = self.clusters.get(cluster_id)
        if cluster is None or cluster.phase is not ClusterPhase.PREPARING:
            return
        cluster.directory = directory
        cluster.phase = ClusterPhase.STARTING
        for _ in range(cluster.wanted_workers(self.cpus)):
            self._spawn(cluster)

    def fail(self, cluster: ClusterState, reason: str) -> None:
        """Setup cannot succeed here: answer SETUP_FAIL and end the jobs waiting with ``reason``."""
        cluster.phase, cluster.fail_reason = ClusterPhase.FAILED, reason
        self.answers.setup_answer(cluster)
        while cluster.pending:
            self._finish(cluster.pending.popleft(), _failure("SetupError", reason))
        cluster.idle.clear()
        for worker in list(cluster.workers.values()):
            if worker.job is None:
                self._stop_worker(worker)

    def jobs_of(self, cluster_id: str) -> list[list[Any]]:
        """[job id, attempt] of every job of the cluster running or waiting here."""
        cluster = self.clusters.get(cluster_id)
        return [[j.job_id, j.attempt] for j in self._jobs_of(cluster)] if cluster else []

    @staticmethod
    def _jobs_of(cluster: ClusterState) -> list[Assignment]:
        """Running, then held ahead by a worker (may have started), then waiting."""
        workers = cluster.workers.values()
        return [*(w.job for w in workers if w.job), *(j for w in workers for j in w.ahead),
                *cluster.pending]

    def teardown(self, cluster_id: str, keep_files: bool = False) -> None:
        """Stop a cluster's workers; its directory goes with the last of them unless
        ``keep_files`` (a resetup: the same cluster is set up again with those files)."""
        cluster = self.clusters.pop(cluster_id, None)
        if cluster is None:
            return
        if keep_files:
            cluster.keep_files = True
        cluster.pending.clear()  # their scheduler settles them (it asked for the teardown)
        for worker in list(cluster.workers.values()):
            self._revoke(worker, ("drop",))
            if worker.job is not None:
                self._job_off(worker)
            self._stop_worker(worker)
        self.retired[cluster_id] = cluster
        self._remove_if_drained(cluster)
        self._start_jobs()

    def _stop_worker(self, worker: WorkerState) -> None:
        if worker.stopping:
            return
        worker.stopping = True
        if worker.ready:  # a graceful stop runs cleanup(); a kill follows if it hangs
            self.out.append(WorkerSend(worker.wid, "stop"))
            self.out.append(SetTimer(("kill", worker.wid), self.now + STOP_GRACE))
        else:
            self.out.append(KillWorker(worker.wid))

    def _remove_if_drained(self, cluster: ClusterState) -> None:
        if cluster.workers or self.retired.get(cluster.cluster_id) is not cluster:
            return
        del self.retired[cluster.cluster_id]
        if cluster.cleanup and cluster.directory:
            self.out.append(RemoveClusterDir(cluster.directory))

    def leave(self, kill_running: bool) -> None:
        """Tear every cluster down (the node leaves the grid); ``kill_running`` kills busy
        workers at once instead of letting their jobs run on until the stop grace.
        Jobs still waiting are dropped without a result: the node's DISCONNECT settles them."""
        for cluster in list(self.clusters.values()):
            if kill_running:
                for worker in cluster.workers.values():
                    if worker.job is not None:
                        self.out.append(KillWorker(worker.wid))
            self.teardown(cluster.cluster_id)

    def kill_all(self) -> None:
        """Every worker killed (the node stops now)."""
        for wid in self.workers:
            self.out.append(KillWorker(wid))

    def pause(self, paused: bool) -> None:
        """Hold every job that has not started (True), or start them again (False)."""
        self.paused = paused
        if not paused:
            self._start_jobs()
            return
        for worker in self.workers.values():  # jobs ahead have not started either: they wait too
            self._revoke(worker, ("pause",))

    def quiet(self) -> bool:
        """No cluster and no worker process left."""
        return not self.clusters and not self.retired

    def drop_pending(self, link: str) -> int:
        """Forget the jobs of ``link``'s clusters that have not started (fencing); how many."""
        count = 0
        for cluster in self.clusters.values():
            if cluster.link != link:
                continue
            while cluster.pending:
                job = cluster.pending.popleft()
                cluster.dropped.append([job.job_id, job.attempt])
                count += 1
            for worker in cluster.workers.values():  # and the jobs ahead its workers did not start
                self._revoke(worker, ("fence",))
        return count

    def orphan(self, link: str, now: float) -> list[ClusterState]:
        """Mark the clusters of a lost scheduler link."""
        lost = [c for c in self.clusters.values() if c.link == link]
        for cluster in lost:
            cluster.orphaned_since = now
        return lost

    # -- jobs -------------------------------------------------------------------------
    def assign(self, job: Assignment) -> None:
        cluster = self.clusters.get(job.cluster_id)
        if cluster is None:
            self._finish(job, _failure("SetupError", "the cluster is not set up on this node"))
            return
        if cluster.phase is ClusterPhase.FAILED:
            self._finish(job, _failure("SetupError", cluster.fail_reason))
            return
        cluster.pending.append(job)
        if job.cluster_id not in self._rr:
            self._rr.append(job.cluster_id)
        self._start_jobs()

    def cancel(self, job_id: str, link: str) -> bool:
        """Cancel a job of ``link``'s clusters; False if this node does not hold it."""
        for cluster in self.clusters.values():
            if cluster.link != link:
                continue  # a scheduler cancels only its own clusters' jobs
            for job in cluster.pending:
                if job.job_id == job_id:
                    cluster.pending.remove(job)
                    self._finish(job, {"status": "cancelled"})
                    return True
            for worker in cluster.workers.values():
                if worker.job is not None and worker.job.job_id == job_id:
                    worker.job.outcome = {"status": "cancelled"}
                    self._kill(worker)
                    return True
                for job in worker.ahead:
                    if job.job_id == job_id:  # not started unless the worker has claimed it
                        job.outcome = {"status": "cancelled"}
                        self._revoke(worker, ("cancel", job_id))
                        return True
        return False

    def _start_jobs(self) -> None:
        while self._rr and self.running < self.cpus and not self.paused:
            cluster_id = self._rr.popleft()
            cluster = self.clusters.get(cluster_id)
            if cluster is None or not cluster.pending:
                continue
            if not cluster.idle:
                if (len(cluster.workers) < self.cpus and cluster.phase is not ClusterPhase.FAILED
                        and cluster.phase is not ClusterPhase.PREPARING):
                    self._spawn(cluster)
                continue  # the cluster rejoins the rotation when a worker is ready
            worker = self.workers[cluster.idle.popleft()]
            job = cluster.pending.popleft()
            self._hand(worker, job)  # (idle: it becomes the worker's job)
            self._started(worker, job)
            self._top_up(worker, cluster)
            if cluster.pending:
                self._rr.append(cluster_id)

    def _hand(self, worker: WorkerState, job: Assignment) -> None:
        """Write ``job`` to ``worker``: as the job it runs, or (it has one) ahead of time."""
        worker.seq += 1
        job.seq = worker.seq
        fields: dict[str, Any] = {"job_id": job.job_id, "attempt": job.attempt, "seq": job.seq}
        if job.label is not None:
            fields["label"] = job.label
        self.out.append(WorkerSend(worker.wid, "job", fields, job.frames))
        if worker.job is None:
            worker.job = job
            job.frames = []
        else:  # its frames stay until it starts: taken back, it must be able to run elsewhere
            worker.ahead.append(job)
            worker.ahead_bytes += job.size

    def _started(self, worker: WorkerState, job: Assignment) -> None:
        """``job`` is the worker's now (handed to it idle, or the next one ahead): it counts as
        running, and its timers start."""
        self.running += 1
        job.start_time = self.now
        self.out.append(SetTimer(("started", worker.wid, job.job_id), self.now + STARTED_DELAY))
        if job.timeout:
            self.out.append(SetTimer(("timeout", worker.wid, job.job_id), self.now + float(job.timeout)))

    def _top_up(self, worker: WorkerState, cluster: ClusterState) -> None:
        """Hand ``worker`` jobs ahead while its cluster's jobs are short and nobody else waits."""
        if (cluster.ahead <= 0 or cluster.job_time > SHORT_JOB or worker.job is None or self.paused
                or worker.stopping or worker.killing or not cluster.pending
                or self.now - worker.job.start_time >= STARTED_DELAY
                or any(cid != cluster.cluster_id for cid in self._rr)):
            return
        while cluster.pending and len(worker.ahead) < cluster.ahead:
            job = cluster.pending[0]
            job.size = sum(memoryview(f).nbytes for f in job.frames)
            if worker.ahead and worker.ahead_bytes + job.size > AHEAD_BYTES:
                break
            cluster.pending.popleft()
            self._hand(worker, job)

    def _kill(self, worker: WorkerState) -> None:
        """Kill the worker for its job's sake (cancel, time limit); its jobs ahead it has not
        claimed are taken back first, and it is spared if it has moved past that job."""
        if worker.killing:
            return
        worker.killing = True
        if worker.ahead:
            self._revoke(worker, ("kill",))
        else:
            self.out.append(KillWorker(worker.wid))

    def _revoke(self, worker: WorkerState, why: tuple[str, ...]) -> None:
        if worker.ahead:
            keep = worker.job.seq if worker.job is not None else 0
            self.out.append(RevokeAhead(worker.wid, worker.seq, keep, why))

    def ahead_revoked(self, event: AheadRevoked) -> None:
        """The jobs ahead the worker had not claimed are back: each goes where ``why`` says."""
        worker = self.workers.get(event.wid)
        if worker is None:
            return  # it exited: its jobs ahead were put back then
        back = [j for j in worker.ahead if event.claimed < j.seq <= event.upto]
        if event.stuck:
            back = []  # unknown whether it claimed one: it is killed, and they go back when it exits
        for job in back:
            worker.ahead.remove(job)
            worker.ahead_bytes -= job.size
        cluster = self._cluster_of(worker)
        why = event.why[0]
        if why == "kill":
            head = worker.job
            if event.stuck or (head is not None and event.claimed <= head.seq):
                self.out.append(KillWorker(worker.wid))
            else:  # it had finished that job (its result is on its way): no kill after all
                worker.killing = False
                if head is None and cluster is not None:
                    self._next(worker, cluster)
        live = cluster is not None and self.clusters.get(cluster.cluster_id) is cluster
        for job in reversed(back):
            if why == "cancel" and job.job_id == event.why[1]:
                self._finish(job, {"status": "cancelled"})
            elif why == "fence" and cluster is not None:
                cluster.dropped.append([job.job_id, job.attempt])
            elif why != "drop" and live and cluster is not None:
                cluster.pending.appendleft(job)  # never started: first in line again
        if live and cluster is not None and cluster.pending and cluster.cluster_id not in self._rr:
            self._rr.append(cluster.cluster_id)
        self._start_jobs()

    def _job_off(self, worker: WorkerState) -> Assignment | None:
        """Take the job off its worker (it ended, or its cluster went)."""
        job, worker.job = worker.job, None
        if job is not None:
            self.running -= 1
            self.out.append(CancelTimer(("started", worker.wid, job.job_id)))
            if job.timeout:
                self.out.append(CancelTimer(("timeout", worker.wid, job.job_id)))
        return job

    def _finish(self, job: Assignment, fields: dict[str, Any], frames: list[Any] | None = None,
                labels: list[str] | None = None) -> None:
        fields = {**fields, "job_id": job.job_id, "attempt": job.attempt, "cluster_id": job.cluster_id}
        self.answers.job_result(job, fields, frames or [], labels or [])

    # -- timers -----------------------------------------------------------------------
    def timer(self, key: tuple[Any, ...]) -> bool:
        """A timer of the runner fired; False if the key is not the runner's."""
        kind = key[0]
        if kind == "kill":
            worker = self.workers.get(key[1])
            if worker is not None:
                self.out.append(KillWorker(worker.wid))
            return True
        if kind not in ("started", "timeout"):
            return False
        worker = self.workers.get(key[1])
        job = worker.job if worker is not None else None
        if worker is None or job is None or job.job_id != key[2]:
            return True  # it ended meanwhile
        if kind == "started":
            self.answers.job_report(job, "JOB_STARTED", {"job_id": job.job_id, "attempt": job.attempt,
                                                         "start_time": job.start_time}, [], [])
            # not a short job after all: the ones behind it must not wait for it (another
            # worker, or this one when it is done, takes them)
            self._revoke(worker, ("slow",))
        else:
            job.outcome = _failure("TimeoutError", f"job exceeded its time limit of {job.timeout} s")
            self._kill(worker)
        return True

    # -- workers ----------------------------------------------------------------------
    def _spawn(self, cluster: ClusterState) -> None:
        wid, self._next_wid = self._next_wid, self._next_wid + 1
        worker = WorkerState(wid, cluster.cluster_id)
        self.workers[wid] = worker
        cluster.workers[wid] = worker
        setup = {"setup_args": cluster.setup.setup_args or [],
                 "init": list(self.init) if self.init else None, "max_output": self.max_output}
        self.out.append(SpawnWorker(wid, cluster.cluster_id, cluster.directory, setup, cluster.blob))

    def _cluster_of(self, worker: WorkerState) -> ClusterState | None:
        cid = worker.cluster_id
        return self.clusters.get(cid) or self.retired.get(cid)

    def worker_ready(self, wid: int) -> None:
        worker = self.workers.get(wid)
        cluster = self._cluster_of(worker) if worker else None
        if worker is None or cluster is None:
            return
        worker.ready = True
        if worker.stopping:  # torn down while it started: already killed
            return
        if cluster.phase is ClusterPhase.FAILED:
            self._stop_worker(worker)
            return
        cluster.failed_starts = 0
        if cluster.phase is ClusterPhase.STARTING:
            cluster.phase = ClusterPhase.READY
            self.answers.setup_answer(cluster)
        self._idle(worker, cluster)

    def worker_setup_failed(self, wid: int, reason: str) -> None:
        worker = self.workers.get(wid)
        cluster = self._cluster_of(worker) if worker else None
        if worker is None or cluster is None:
            return
        cluster.failed_starts += 1
        cluster.last_failure = reason
        worker.failed = True
        self.log.warning("event=setup_failed cluster=%s reason=%r", cluster.cluster_id, reason)
        # the worker exits by itself after reporting; its exit is handled in worker_exited
        if cluster.phase is ClusterPhase.STARTING or (
                cluster.phase is ClusterPhase.READY and cluster.failed_starts >= MAX_FAILED_STARTS
                and not any(w.ready for w in cluster.workers.values() if w is not worker)):
            self.fail(cluster, reason)

    def worker_result(self, wid: int, fields: dict[str, Any], frames: list[Any]) -> None:
        worker = self.workers.get(wid)
        if worker is None or worker.job is None:
            return
        if fields.get("job_id") != worker.job.job_id:
            self.log.warning("event=worker_out_of_step worker=%d expected=%s got=%r", wid,
                             worker.job.job_id, fields.get("job_id"))
            return
        job = self._job_off(worker)
        if job is None:
            return
        cluster = self._cluster_of(worker)
        if job.outcome is not None:
            # its time ran out, or it was cancelled, just before it finished: that decision
            # is the answer (and a worker whose kill is on its way takes no new job: it is
            # replaced when it exits)
            self._finish(job, job.outcome)
        else:
            if cluster is not None:
                ran = max(0.0, self.now - job.start_time)
                cluster.job_time = ran if cluster.job_time == float("inf") \
                    else 0.8 * cluster.job_time + 0.2 * ran
            labels = list(fields.pop("labels", []))
            self._finish(job, fields, frames, labels)
        if cluster is not None and not worker.killing:
            self._next(worker, cluster)
            self._ask_ahead(cluster)

    def _next(self, worker: WorkerState, cluster: ClusterState) -> None:
        """The worker's job ended: the next one it holds ahead is its job now, else it is idle."""
        if not worker.ahead:
            self._idle(worker, cluster)
            return
        job = worker.ahead.popleft()
        worker.ahead_bytes -= job.size
        job.frames = []
        worker.job = job
        self._started(worker, job)
        if job.outcome is not None:  # cancelled while ahead, after the worker had claimed it
            self._kill(worker)
            return
        self._top_up(worker, cluster)

    def _ask_ahead(self, cluster: ClusterState) -> None:
        """Short jobs with more waiting: ask the scheduler for jobs ahead (once)."""
        if not cluster.ahead_asked and cluster.job_time <= SHORT_JOB and cluster.pending \
                and self.clusters.get(cluster.cluster_id) is cluster:
            cluster.ahead_asked = True
            self.answers.want_lookahead(cluster, LOOKAHEAD)

    def grant_ahead(self, cluster_id: str, link: str, depth: int) -> None:
        """The scheduler counts ``depth`` jobs ahead per worker of the cluster as maybe started."""
        cluster = self.clusters.get(cluster_id)
        if cluster is None or cluster.link != link:
            return
        cluster.ahead = max(0, min(depth, LOOKAHEAD))
        for worker in cluster.workers.values():
            self._top_up(worker, cluster)

    def forget_ahead(self, link: str) -> None:
        """A new registration with ``link``'s scheduler: what it granted is gone (ask again),
        and the jobs its workers hold ahead are taken back (that scheduler no longer counts
        them as maybe started)."""
        for cluster in self.clusters.values():
            if cluster.link == link:
                cluster.ahead, cluster.ahead_asked = 0, False
                for worker in cluster.workers.values():
                    self._revoke(worker, ("pause",))

    def worker_report(self, wid: int, kind: str, fields: dict[str, Any], frames: list[Any]) -> None:
        worker = self.workers.get(wid)
        if worker is None or worker.job is None or kind not in ("provisional", "file"):
            return
        job = worker.job
        if fields.get("job_id") != job.job_id:  # (records come in order: never, short of a bug)
            self.log.warning("event=worker_out_of_step worker=%d expected=%s got=%r", wid,
                             job.job_id, fields.get("job_id"))
            return
        self.out.append(CancelTimer(("started", wid, job.job_id)))
        self.timer(("started", wid, job.job_id))  # a job that reports is running: say so first
        if kind == "provisional":
            self.answers.job_report(job, "JOB_PROVISIONAL", fields, frames, ["result"] * len(frames))
        else:
            self.answers.job_report(job, "JOB_FILE", fields, frames, ["file"])

    def _idle(self, worker: WorkerState, cluster: ClusterState) -> None:
        if self.clusters.get(cluster.cluster_id) is not cluster or worker.stopping:
            return
        cluster.idle.append(worker.wid)
        if cluster.pending and cluster.cluster_id not in self._rr:
            self._rr.append(cluster.cluster_id)
        self._start_jobs()

    def worker_exited(self, wid: int, exitcode: int | None, reason: str = "") -> None:
        worker = self.workers.pop(wid, None)
        if worker is None:
            return
        self.out.append(CancelTimer(("kill", wid)))
        cluster = self._cluster_of(worker)
        job = self._job_off(worker)
        if cluster is None:
            return
        cluster.workers.pop(wid, None)
        if wid in cluster.idle:
            cluster.idle.remove(wid)
        self._remove_if_drained(cluster)
        if job is not None:
            why = reason or f"the job's worker process died (exit code {exitcode})"
            self._finish(job, job.outcome or _failure("WorkerDied", why))
        if self.clusters.get(cluster.cluster_id) is not cluster:
            return
        # its jobs ahead never started (it claims one only after its result is written, and
        # every result it wrote was read before its end): first in line again
        for ahead in reversed(worker.ahead):
            if ahead.outcome is not None:
                self._finish(ahead, ahead.outcome)
            else:
                cluster.pending.appendleft(ahead)
        worker.ahead.clear()
        if not worker.ready and not worker.failed and not worker.stopping:
            # it died before it could say (fork failed, an import crashed the interpreter)
            cluster.failed_starts += 1
            cluster.last_failure = reason or (f"a worker exited during setup (exit code {exitcode}); "
                                              f"what it printed is in the node's log")
            if cluster.phase is ClusterPhase.STARTING and cluster.failed_starts >= MAX_FAILED_STARTS:
                self.fail(cluster, cluster.last_failure)
                return
        if cluster.phase is not ClusterPhase.FAILED:
            if len(cluster.workers) < cluster.wanted_workers(self.cpus) \
                    and cluster.failed_starts < MAX_FAILED_STARTS:
                self._spawn(cluster)  # keep the pool warm after a kill or a crash
            elif not cluster.workers and cluster.pending:  # nobody left to run them
                self.fail(cluster, cluster.last_failure or "its workers keep failing to start")
                return
            if cluster.pending and cluster.cluster_id not in self._rr:
                self._rr.append(cluster.cluster_id)
            self._start_jobs()
