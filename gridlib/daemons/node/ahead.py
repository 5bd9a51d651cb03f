"""Jobs ahead: a worker of a short-job cluster holds jobs behind the one it runs (docs/architecture.md §2 step 11).

A cluster whose jobs are short (``SHORT_JOB``) gets up to ``cluster.ahead``
more jobs written to each busy worker behind the one it runs, so the worker
goes from one job to the next without waiting for its node.  A job ahead
starts only when the worker *claims* it (a sequence number in memory shared
with the node, under a lock: ``claims.py``); the node takes unclaimed ones
back (``RevokeAhead``) to cancel one, before a kill, on a fence, a pause, a
teardown or a new registration, and learns exactly which had started.  A
scheduler grants the depth first (``LOOKAHEAD``): from then on it counts jobs
ahead as ones that may have started when it settles a lost node's jobs.
:class:`JobsAhead` is mixed into ``JobRunner`` (jobs.py), whose state it uses.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .events import AheadRevoked, Effect, KillWorker, RevokeAhead
from .job_state import (
    AHEAD_BYTES,
    LOOKAHEAD,
    SHORT_JOB,
    STARTED_DELAY,
    Answers,
    Assignment,
    ClusterState,
    WorkerState,
)

__all__ = ["JobsAhead"]


class JobsAhead:
    """Handing jobs ahead, taking them back, and the scheduler's grant."""

    # provided by JobRunner
    out: list[Effect]
    answers: Answers
    paused: bool
    now: float
    clusters: dict[str, ClusterState]
    workers: dict[int, WorkerState]
    _rr: deque[str]

    def _hand(self, worker: WorkerState, job: Assignment) -> None:
        raise NotImplementedError

    def _next(self, worker: WorkerState, cluster: ClusterState) -> None:
        raise NotImplementedError

    def _finish(self, job: Assignment, fields: dict[str, Any], frames: list[Any] | None = None,
                labels: list[str] | None = None) -> None:
        raise NotImplementedError

    def _start_jobs(self) -> None:
        raise NotImplementedError

    def _cluster_of(self, worker: WorkerState) -> ClusterState | None:
        raise NotImplementedError

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
