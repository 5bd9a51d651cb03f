"""The node's clusters, workers and jobs, as pure state (docs/architecture.md §5).

At most ``cpus`` jobs run at once across all clusters.  A cluster's workers
are started once its directory is prepared (setup runs once in each); a job
goes to an idle worker of its cluster.  Cancel and timeout kill the worker's
process group and a fresh worker replaces it.  Nothing here touches a
process or a file: the runner appends effects (``SpawnWorker``,
``WorkerSend``, ``KillWorker``, timers) to the core's outbox and reports
answers through :class:`Answers`, which the core turns into messages.

Jobs ahead (a short-job cluster's workers hold jobs behind the one they
run) are :class:`~.ahead.JobsAhead`, mixed in; the records and limits are in
``job_state.py``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from gridlib.protocol.bodies import Setup

from .ahead import JobsAhead
from .events import (
    CancelTimer,
    Effect,
    KillWorker,
    PrepareCluster,
    RemoveClusterDir,
    SetTimer,
    SpawnWorker,
    WorkerSend,
)
from .job_state import (
    AHEAD_BYTES,
    LOOKAHEAD,
    MAX_FAILED_STARTS,
    SHORT_JOB,
    STARTED_DELAY,
    STOP_GRACE,
    Answers,
    Assignment,
    ClusterPhase,
    ClusterState,
    WorkerState,
    failure,
)

# (the records and limits are job_state.py's; importers of this module find them here too)
__all__ = ["Answers", "Assignment", "ClusterPhase", "ClusterState", "JobRunner", "STARTED_DELAY",
           "MAX_FAILED_STARTS", "STOP_GRACE", "LOOKAHEAD", "SHORT_JOB", "AHEAD_BYTES"]


class JobRunner(JobsAhead):
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
            self._finish(cluster.pending.popleft(), failure("SetupError", reason))
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
            self._finish(job, failure("SetupError", "the cluster is not set up on this node"))
            return
        if cluster.phase is ClusterPhase.FAILED:
            self._finish(job, failure("SetupError", cluster.fail_reason))
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
            job.outcome = failure("TimeoutError", f"job exceeded its time limit of {job.timeout} s")
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
            self._finish(job, job.outcome or failure("WorkerDied", why))
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
