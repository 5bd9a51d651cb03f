"""What the scheduler core does when things die (docs/reliability.md, docs/architecture.md §6).

A lost node's jobs run again (``reentrant``) or end ``abandoned``; a job
that lost its node on every attempt ends ``terminated`` and named.  A node
that registers again, or a client that recovers, gets a grace period in
which nodes report the jobs they still hold (``SETUP_OK`` lists running jobs
and spooled results): those jobs carry on where they are, stale copies are
cancelled, and jobs nobody reports are settled when the grace ends.

:class:`Faults` works on the store, and offers nodes again through
:class:`~.allocation.Allocation` when a restored client comes back.
"""

from __future__ import annotations

from gridlib.protocol.codec import new_message

from .allocation import Allocation
from .records import (
    ClientRecord,
    ClusterRecord,
    JobRecord,
    JobState,
    NodeRecord,
    SetupState,
    advance_seq,
)
from .state import NODE, SchedulerState

__all__ = ["Faults"]


class Faults:
    """Lost nodes, adoption of reported jobs, recovery of a crashed client's jobs."""

    def __init__(self, store: SchedulerState, allocation: Allocation) -> None:
        self.store = store
        self.allocation = allocation  # offers nodes again to a restored client

    def restore(self, clusters: list[ClusterRecord], jobs: list[JobRecord], now: float) -> None:
        """After a restart: the journaled clusters and jobs, each job waiting for a node
        to report it (nodes reconnect first) before it is run again."""
        store = self.store
        grace = store.policy.interval * (store.policy.lost_after + 3)
        for cluster in clusters:
            store.clusters[cluster.cluster_id] = cluster
            client = store.clients.setdefault(cluster.client, ClientRecord(
                cluster.client, cluster.user, "restored", seen=False))
            client.clusters.add(cluster.cluster_id)
            store.client_liveness.touch(cluster.client, now)
        for job in jobs:
            owner = store.clusters.get(job.cluster_id)
            if owner is None:
                continue
            store.jobs[job.job_id] = job
            owner.jobs.add(job.job_id)
            job.recovered, job.state = True, JobState.ADOPTING
            store.adopting[job.job_id] = now + grace
        advance_seq(max([c.created for c in clusters] + [j.seq for j in jobs] + [0]))
        store.log.info("event=journal_restored clusters=%d jobs=%d", len(clusters), len(store.jobs))

    def client_back(self, client: ClientRecord) -> None:
        """A restored client spoke: offer it again the nodes it could not hear about."""
        client.seen = True
        for cluster_id in client.clusters:
            cluster = self.store.clusters.get(cluster_id)
            for node in self.store.nodes.values():
                if cluster is not None and node.setup.get(cluster_id) == SetupState.OFFERED:
                    self.allocation.offer(cluster, node)

    def recover(self, cluster: ClusterRecord, job: JobRecord, now: float) -> None:
        """A job of a crashed client: claim it where a node has it, else wait, then run it."""
        job.recovered = True
        job.state = JobState.ADOPTING  # never queued: claiming it must not count it out
        reported = cluster.reported.pop(job.job_id, None)
        node = self.store.nodes.get(reported[0]) if reported else None
        if reported is not None and node is not None:
            self._claim(job, node, reported[1], reported[2])
        else:
            self.store.adopting[job.job_id] = now + self.store.adopt_grace

    def reconcile(self, cluster: ClusterRecord, node: NodeRecord, job_id: str, attempt: int,
                  running: bool, now: float) -> None:
        """A node reports a job it runs (or a result it spooled) for ``cluster``."""
        job = self.store.jobs.get(job_id)
        if job is None or job.cluster_id != cluster.cluster_id:
            if cluster.recovering and len(cluster.reported) < 1_000_000:
                cluster.reported[job_id] = (node.node_id, attempt, running, now)
            else:
                self._drop_copy(node, job_id, running)
        elif job.state in (JobState.QUEUED, JobState.ADOPTING):
            self._claim(job, node, attempt, running)
        elif job.node_id == node.node_id and job.attempt == attempt:
            pass  # already assigned there
        elif job.state is JobState.DONE and job.result_node == node.node_id:
            pass  # the client's acknowledgement will release it
        else:
            self._drop_copy(node, job_id, running)  # superseded by another attempt

    def requeue_dropped(self, cluster: ClusterRecord, node: NodeRecord, job_id: str,
                        attempt: int) -> None:
        """A node fenced (dropped unstarted) a job of ours after a freeze: run it elsewhere."""
        job = self.store.jobs.get(job_id)
        if job is None or job.cluster_id != cluster.cluster_id or job.attempt != attempt:
            return  # settled meanwhile, or already given out again
        if job.state is JobState.ADOPTING or (job.state is JobState.DISPATCHED
                                              and job.node_id == node.node_id):
            self.store.release(node, job_id)
            self.store.adopting.pop(job_id, None)
            job.node_id = None
            self.store.enqueue(cluster, job)

    def _claim(self, job: JobRecord, node: NodeRecord, attempt: int, running: bool) -> None:
        if job.state is JobState.QUEUED:
            self.store.clusters[job.cluster_id].queued -= 1
        self.store.adopting.pop(job.job_id, None)
        job.state = JobState.RUNNING if running else JobState.DISPATCHED
        job.node_id, job.attempt = node.node_id, attempt
        node.inflight[job.job_id] = attempt

    def _drop_copy(self, node: NodeRecord, job_id: str, running: bool) -> None:
        """Tell a node to let go of a job copy nobody waits for."""
        if running:
            self.store.send(NODE, node.route, new_message("JOB_CANCEL", {"job_ids": [job_id]}))
        else:
            self.store.send(NODE, node.route, new_message("RESULT_ACK", {"job_ids": [job_id]}))

    def expire_adoptions(self, now: float) -> None:
        """Settle the jobs nobody reported within the grace; drop reported copies nobody claimed."""
        store = self.store
        for job_id, deadline in list(store.adopting.items()):
            if deadline > now:
                continue
            del store.adopting[job_id]
            job = store.jobs.get(job_id)
            if job is not None and job.state is JobState.ADOPTING:
                self._settle_orphan(job, None, "no node reported it after a reconnect")
        for cluster in store.clusters.values():
            for job_id, (node_id, _, running, when) in list(cluster.reported.items()):
                if now - when >= store.adopt_grace:
                    del cluster.reported[job_id]
                    node = store.nodes.get(node_id)
                    if node is not None:
                        self._drop_copy(node, job_id, running)

    def node_lost(self, node_id: str, reason: str, adopt_until: float | None = None) -> None:
        """Forget a node; settle its jobs now, or (``adopt_until``) let it reclaim them."""
        store = self.store
        node = store.nodes.pop(node_id, None)
        if node is None:
            return
        store.node_by_route.pop(node.route, None)
        store.node_liveness.forget(node_id)
        store.log.warning("event=node_lost node=%s name=%s reason=%r jobs=%d",
                          node_id, node.name, reason, len(node.inflight))
        ahead: dict[str, int] = {}  # cluster id -> its unfinished jobs dispatched earlier here
        for job_id in node.inflight:  # (in dispatch order)
            job = store.jobs.get(job_id)
            if job is None or job.state is JobState.DONE:
                continue
            earlier = ahead.get(job.cluster_id, 0)
            ahead[job.cluster_id] = earlier + 1
            if adopt_until is not None and job.state is not JobState.CANCELLING:
                job.state, job.node_id = JobState.ADOPTING, None
                store.adopting[job_id] = adopt_until
            else:
                # a node starts a cluster's jobs in the order they came, on at most that
                # cluster's CPUs there, each with the jobs ahead it was granted (LOOKAHEAD):
                # a job behind that many unfinished ones never started
                cpus = node.cluster_cpus.get(job.cluster_id, node.cpus)
                started_at_most = cpus * (1 + node.lookahead.get(job.cluster_id, 0))
                never_started = job.state is JobState.DISPATCHED and earlier >= started_at_most
                self._settle_orphan(job, node.name, f"node {node.name} lost: {reason}", never_started)
        store.tell_clients_of(node, "closed", reason)

    def _settle_orphan(self, job: JobRecord, node_name: str | None, reason: str,
                       never_started: bool = False) -> None:
        """A job whose node is gone: run it again, or give the client its final state.

        A job that surely never started (``never_started``) runs again even if its
        cluster is not reentrant: running it elsewhere cannot run it twice.
        """
        store = self.store
        cluster = store.clusters[job.cluster_id]
        job.node_id = None
        pinned = bool(job.pin)
        if job.state is JobState.CANCELLING:
            store.finish(job, {"status": "cancelled", "reason": reason}, [], [])
        elif never_started and not pinned:
            store.log.info("event=job_requeued job=%s reason=%r never_started=true", job.job_id, reason)
            store.enqueue(cluster, job)
        elif (cluster.reentrant or job.recovered) and not pinned \
                and job.attempt < cluster.max_attempts:
            store.enqueue(cluster, job)
        elif cluster.reentrant and not pinned:
            message = (f"job lost its node on all {job.attempt} attempts (max_attempts); "
                       f"it may be what kills its nodes")
            store.finish(job, {"status": "terminated", "node": node_name, "reason": message,
                               "exception": {"type": "JobLostNodes", "message": message,
                                             "traceback": ""}}, [], [])
        else:
            store.finish(job, {"status": "abandoned", "node": node_name, "reason": reason}, [], [])
