"""Runs jobs on a node: one warm pool of worker processes per cluster (DESIGN §6).

At most ``cpus`` jobs run at once across all clusters.  A cluster's workers
are started at ``SETUP`` (setup runs once in each); a job goes to an idle
worker of its cluster.  Cancel and timeout kill the worker's process group
and a fresh worker replaces it.  The executor reports through ``emit``,
which the node's service turns into protocol messages.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gridlib.protocol.errors import UNAUTHORIZED, ProtocolError
from gridlib.protocol.paths import safe_join, write_file
from gridlib.protocol.reactor import Reactor, Timer

from . import pipes
from .worker_entry import start_worker

__all__ = ["Assignment", "ClusterState", "JobExecutor"]

Emit = Callable[[str, str, dict[str, Any], list[Any], list[str]], None]
_MP = multiprocessing.get_context("forkserver")
_MP.set_forkserver_preload(["gridlib.daemons.node.worker", "gridlib.payload"])
# A job still running this long after it started is announced (JOB_STARTED); a shorter
# one is not: its result carries its start time, and the client, the scheduler and the
# node are each spared a message per job.
STARTED_DELAY = 0.01


@dataclass
class Assignment:
    """A job given to this node by a scheduler."""

    link: str
    cluster_id: str
    job_id: str
    attempt: int
    timeout: float | None
    frames: list[Any]
    timer: Timer | None = None
    started: Timer | None = None  # announces JOB_STARTED unless the job ends first
    outcome: dict[str, Any] | None = None  # set when we kill the worker on purpose


@dataclass
class Worker:
    cluster: ClusterState
    process: Any
    conn: Connection
    ready: bool = False
    job: Assignment | None = None


@dataclass
class ClusterState:
    cluster_id: str
    link: str
    owner: bytes  # the Curve key of the scheduler that set it up
    directory: Path
    blob: bytes
    options: dict[str, Any]
    workers: list[Worker] = field(default_factory=list)
    idle: deque[Worker] = field(default_factory=deque)
    pending: deque[Assignment] = field(default_factory=deque)
    setup_reported: bool = False
    failed: bool = False
    orphaned_since: float | None = None  # its scheduler link was lost at this time
    failed_starts: int = 0  # workers in a row whose setup failed: stop replacing them at 3


class JobExecutor:
    """Clusters and their worker processes on one node."""

    def __init__(self, reactor: Reactor, cpus: int, prefix: Path, node_name: str, ip_addr: str,
                 emit: Emit, max_file_size: int, log: logging.Logger | None = None,
                 init: tuple[str, str] | None = None) -> None:
        self.reactor, self.cpus, self.prefix = reactor, cpus, prefix
        self.node_name, self.ip_addr, self.emit = node_name, ip_addr, emit
        self.max_file_size = max_file_size
        self.log = log or logging.getLogger("gridlib.node")
        self.init = init  # the --init file (path, source), run in every worker
        self.paused = False  # True: jobs wait, none starts (the node is draining or out of service)
        self.clusters: dict[str, ClusterState] = {}
        self._retired: dict[str, ClusterState] = {}  # torn down, workers still exiting
        self.running = 0
        self._rr: deque[str] = deque()  # round robin over clusters with pending jobs

    # -- clusters -----------------------------------------------------------
    def setup(self, link: str, owner: bytes, cluster_id: str, options: dict[str, Any],
              frames: list[Any], labels: list[str]) -> bool:
        """Create the cluster's directory and files and start its workers.

        A cluster this node already runs (its scheduler reconnected, or a
        recovering client took over with the same key) is adopted instead:
        returns True when it was already set up and ready.
        """
        existing = self.clusters.get(cluster_id)
        if existing is not None:
            if existing.owner != owner:
                raise ProtocolError("that cluster belongs to another scheduler key", UNAUTHORIZED)
            existing.link = link
            existing.orphaned_since = None
            for job in [*existing.pending, *(w.job for w in existing.workers if w.job)]:
                job.link = link
            return existing.setup_reported and not existing.failed
        retired = self._retired.get(cluster_id)
        if retired is not None:  # set up again (resetup): its old workers must not remove the files
            retired.options = {**retired.options, "cleanup": False}
        # clusters live apart from the node's own files (node_id, spool/)
        (self.prefix / "clusters").mkdir(mode=0o700, exist_ok=True)
        directory = safe_join(self.prefix / "clusters", str(options.get("dest_path") or cluster_id))
        directory.mkdir(parents=True, exist_ok=True)
        files = options.get("files") or []
        blob = b""
        for label, frame, spec in zip(labels, frames, [None, *files], strict=False):
            if label == "computation":
                blob = bytes(memoryview(frame))
            elif label == "file" and isinstance(spec, dict):
                write_file(directory, str(spec.get("name")), memoryview(frame),
                           int(spec.get("mode") or 0o600), self.max_file_size)
        cluster = ClusterState(cluster_id, link, owner, directory, blob, options)
        self.clusters[cluster_id] = cluster
        wanted = options.get("cpus")
        for _ in range(min(self.cpus, wanted) if isinstance(wanted, int) and wanted > 0 else self.cpus):
            self._spawn(cluster)
        return False

    def jobs_of(self, cluster_id: str) -> list[list[Any]]:
        """[job id, attempt] of every job of the cluster running or waiting here."""
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            return []
        jobs = [*(w.job for w in cluster.workers if w.job), *cluster.pending]
        return [[job.job_id, job.attempt] for job in jobs]

    def teardown(self, cluster_id: str, keep_files: bool = False) -> None:
        """Stop a cluster's workers; its directory goes with the last of them unless
        ``keep_files`` (a resetup: the same cluster is set up again with those files)."""
        cluster = self.clusters.pop(cluster_id, None)
        if cluster is None:
            return
        if keep_files:
            cluster.options = {**cluster.options, "cleanup": False}
        for job in cluster.pending:
            self._cancel_timer(job)
        for worker in list(cluster.workers):
            if worker.job is not None:
                self.running -= 1
                self._cancel_timer(worker.job)
                worker.job = None
            if worker.ready:  # a graceful stop runs cleanup(); a kill follows if it hangs
                try:
                    pipes.send(worker.conn, "stop")
                except OSError:
                    pass
                self.reactor.call_later(5.0, lambda w=worker: self._kill(w))
            else:
                self._kill(worker)
        # the directory goes when the last worker has exited (_worker_gone)
        self._retired[cluster_id] = cluster
        self._remove_if_drained(cluster)
        self._start_jobs()

    def _remove_if_drained(self, cluster: ClusterState) -> None:
        if cluster.workers or self._retired.get(cluster.cluster_id) is not cluster:
            return
        del self._retired[cluster.cluster_id]
        if cluster.options.get("cleanup", True):
            shutil.rmtree(cluster.directory, ignore_errors=True)

    def leave(self, kill_running: bool) -> None:
        """Tear every cluster down (the node leaves the grid); ``kill_running`` kills busy
        workers at once instead of letting their jobs run on until the 5 s stop timeout.
        Jobs still waiting are dropped without a result: the node's DISCONNECT settles them."""
        for cluster in list(self.clusters.values()):
            if kill_running:
                for worker in cluster.workers:
                    if worker.job is not None:
                        self._kill(worker)
            self.teardown(cluster.cluster_id)

    def pause(self, paused: bool) -> None:
        """Hold every job that has not started (True), or start them again (False)."""
        self.paused = paused
        if not paused:
            self._start_jobs()

    def quiet(self) -> bool:
        """No cluster and no worker process left."""
        return not self.clusters and not self._retired

    def orphan(self, link: str, now: float) -> list[tuple[str, float]]:
        """Mark the clusters of a lost scheduler link; returns (cluster id, since) pairs."""
        lost = [c for c in self.clusters.values() if c.link == link]
        for cluster in lost:
            cluster.orphaned_since = now
        return [(c.cluster_id, now) for c in lost]

    # -- jobs ---------------------------------------------------------------
    def assign(self, job: Assignment) -> None:
        cluster = self.clusters.get(job.cluster_id)
        if cluster is None or cluster.failed:
            self._finish(job, {"status": "terminated", "exception": {
                "type": "SetupError", "message": "the cluster is not set up on this node",
                "traceback": ""}})
            return
        cluster.pending.append(job)
        if job.cluster_id not in self._rr:
            self._rr.append(job.cluster_id)
        self._start_jobs()

    def cancel(self, job_id: str, link: str) -> None:
        for cluster in self.clusters.values():
            if cluster.link != link:
                continue  # a scheduler cancels only its own clusters' jobs
            for job in cluster.pending:
                if job.job_id == job_id:
                    cluster.pending.remove(job)
                    self._finish(job, {"status": "cancelled"})
                    return
            for worker in cluster.workers:
                if worker.job is not None and worker.job.job_id == job_id:
                    worker.job.outcome = {"status": "cancelled"}
                    self._kill(worker)
                    return

    def _start_jobs(self) -> None:
        while self._rr and self.running < self.cpus and not self.paused:
            cluster_id = self._rr.popleft()
            cluster = self.clusters.get(cluster_id)
            if cluster is None or not cluster.pending:
                continue
            if not cluster.idle:
                if len(cluster.workers) < self.cpus and not cluster.failed:
                    self._spawn(cluster)
                continue  # the cluster rejoins the rotation when a worker is ready
            worker = cluster.idle.popleft()
            job = cluster.pending.popleft()
            self._run(worker, job)
            if cluster.pending:
                self._rr.append(cluster_id)

    def _run(self, worker: Worker, job: Assignment) -> None:
        worker.job = job
        self.running += 1
        try:
            pipes.send(worker.conn, "job", {"job_id": job.job_id, "attempt": job.attempt},
                       job.frames)
        except OSError:
            return  # the worker died; its pipe's EOF handler reports the job
        job.frames = []
        start_time = time.time()

        def announce() -> None:
            job.started = None
            if worker.job is job:
                self.emit(job.link, "JOB_STARTED", {"job_id": job.job_id, "attempt": job.attempt,
                                                    "start_time": start_time}, [], [])
        job.started = self.reactor.call_later(STARTED_DELAY, announce)
        if job.timeout:
            def expire() -> None:
                job.outcome = {"status": "terminated", "exception": {
                    "type": "TimeoutError", "traceback": "",
                    "message": f"job exceeded its time limit of {job.timeout} s"}}
                self._kill(worker)
            job.timer = self.reactor.call_later(float(job.timeout), expire)

    def _finish(self, job: Assignment, fields: dict[str, Any], frames: list[Any] | None = None,
                labels: list[str] | None = None) -> None:
        self._cancel_timer(job)
        fields = {**fields, "job_id": job.job_id, "attempt": job.attempt,
                  "cluster_id": job.cluster_id}
        fields.setdefault("end_time", time.time())
        self.emit(job.link, "JOB_RESULT", fields, frames or [], labels or [])

    @staticmethod
    def _cancel_timer(job: Assignment) -> None:
        for timer in (job.timer, job.started):
            if timer is not None:
                timer.cancel()
        job.timer = job.started = None

    # -- worker processes -----------------------------------------------------
    def _spawn(self, cluster: ClusterState) -> None:
        parent, child = _MP.Pipe()
        process = _MP.Process(target=start_worker, daemon=False, name=f"gridlib-worker-{cluster.cluster_id[:8]}",
                              args=(child, str(cluster.directory), self.node_name, self.ip_addr))
        process.start()
        child.close()
        worker = Worker(cluster, process, parent)
        cluster.workers.append(worker)
        pipes.send(parent, "setup", {"setup_args": cluster.options.get("setup_args") or [],
                                     "init": list(self.init) if self.init else None},
                   [cluster.blob])
        self.reactor.add_reader(parent.fileno(), lambda: self._on_worker(worker))

    def _on_worker(self, worker: Worker) -> None:
        try:
            kind, fields, frames = pipes.recv(worker.conn)
        except (EOFError, OSError):
            self._worker_gone(worker)
            return
        cluster = worker.cluster
        if kind == "ready":
            worker.ready = True
            cluster.failed_starts = 0
            if not cluster.setup_reported:
                cluster.setup_reported = True
                self.emit(cluster.link, "SETUP_OK", {"cluster_id": cluster.cluster_id}, [], [])
            self._worker_idle(worker)
        elif kind == "setup_failed":
            cluster.failed_starts += 1
            self.log.warning("event=setup_failed cluster=%s reason=%r", cluster.cluster_id, fields.get("reason"))
            if not cluster.setup_reported:
                cluster.setup_reported = cluster.failed = True
                self.emit(cluster.link, "SETUP_FAIL", {"cluster_id": cluster.cluster_id,
                                                       "reason": str(fields.get("reason"))}, [], [])
                for job in list(cluster.pending):
                    self._finish(job, {"status": "terminated", "exception": {
                        "type": "SetupError", "message": str(fields.get("reason")), "traceback": ""}})
                cluster.pending.clear()
        elif kind == "result" and worker.job is not None:
            job, worker.job = worker.job, None
            self.running -= 1
            labels = list(fields.pop("labels", []))
            self._finish(job, fields, frames, labels)
            self._worker_idle(worker)
        elif kind in ("provisional", "file") and worker.job is not None:
            started = worker.job.started
            if started is not None:  # a job that reports is running: say so first
                started.cancel()
                started.fn()
            mtype = "JOB_PROVISIONAL" if kind == "provisional" else "JOB_FILE"
            labels = ["result"] * len(frames) if kind == "provisional" else ["file"]
            self.emit(worker.job.link, mtype, fields, frames, labels)

    def _worker_idle(self, worker: Worker) -> None:
        cluster = worker.cluster
        if self.clusters.get(cluster.cluster_id) is not cluster:
            return
        cluster.idle.append(worker)
        if cluster.pending and cluster.cluster_id not in self._rr:
            self._rr.append(cluster.cluster_id)
        self._start_jobs()

    def _worker_gone(self, worker: Worker) -> None:
        self.reactor.remove_reader(worker.conn.fileno())
        worker.conn.close()
        worker.process.join(5)
        try:  # what its jobs left running in its process group goes with it (the group id
            os.killpg(worker.process.pid, signal.SIGKILL)  # is not reused while it has members)
        except (ProcessLookupError, PermissionError, TypeError):
            pass
        cluster = worker.cluster
        if worker in cluster.workers:
            cluster.workers.remove(worker)
        if worker in cluster.idle:
            cluster.idle.remove(worker)
        self._remove_if_drained(cluster)
        job, worker.job = worker.job, None
        if job is not None:
            self.running -= 1
            outcome = job.outcome or {"status": "terminated", "exception": {
                "type": "WorkerDied", "traceback": "",
                "message": f"the job's worker process died (exit code {worker.process.exitcode})"}}
            self._finish(job, outcome)
        if self.clusters.get(cluster.cluster_id) is cluster and not cluster.failed:
            if len(cluster.workers) < self.cpus and cluster.failed_starts < 3:
                self._spawn(cluster)  # keep the pool warm after a kill or a crash
            if cluster.pending and cluster.cluster_id not in self._rr:
                self._rr.append(cluster.cluster_id)
            self._start_jobs()

    def _kill(self, worker: Worker) -> None:
        pid = worker.process.pid
        if pid is None or worker.process.exitcode is not None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def shutdown(self) -> None:
        """Kill every worker (the node is stopping)."""
        clusters = [*self.clusters.values(), *self._retired.values()]
        for cluster in clusters:
            for worker in cluster.workers:
                self._kill(worker)
        for cluster in clusters:
            for worker in cluster.workers:
                worker.process.join(5)
                self.reactor.remove_reader(worker.conn.fileno())
                worker.conn.close()
            if cluster.options.get("cleanup", True):
                shutil.rmtree(cluster.directory, ignore_errors=True)
        self.clusters.clear()
        self._retired.clear()
