"""What clients ask of the scheduler core (docs/architecture.md §2, §5).

``HELLO``, ``CLUSTER_OPEN``/``CLUSTER_CLOSE``, ``JOB_SUBMIT``, ``JOB_CANCEL``,
``RESULT_ACK`` and ``DISCONNECT``; results not acknowledged are sent again,
and a client silent for ``client_timeout`` is gone (its clusters closed).

:class:`ClientRequests` works on the store and calls
:class:`~.allocation.Allocation` (a new cluster is offered every node),
:class:`~.faults.Faults` (a recovering client's jobs are claimed where nodes
hold them) and :class:`~.waiting.Waiting` (jobs no node can run).
"""

from __future__ import annotations

from typing import Any

from gridlib.protocol.bodies import (
    ClusterClose,
    ClusterOpen,
    Hello,
    JobCancel,
    JobSubmit,
    ResultAck,
)
from gridlib.protocol.codec import Message, new_message, reply
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.liveness import Liveness
from gridlib.protocol.messages import opt

from .allocation import Allocation
from .faults import Faults
from .records import (
    ClientRecord,
    ClusterRecord,
    DropCluster,
    DropJob,
    JobRecord,
    JobState,
    Route,
    SaveCluster,
    SaveJob,
    next_seq,
)
from .state import CLIENT, NODE, Peer, SchedulerState, Send
from .waiting import Waiting

__all__ = ["ClientRequests"]


def _valid_job_spec(spec: Any) -> dict[str, Any]:
    """Check one job of a JOB_SUBMIT before anything is stored."""
    if not isinstance(spec, dict):
        raise ProtocolError("JOB_SUBMIT: each job must be a map")
    job_id = opt(spec, "id", str)
    count = opt(spec, "n", int, 1)
    if not job_id or len(job_id) > 128 or count < 0:
        raise ProtocolError("JOB_SUBMIT: each job needs an id and a frame count")
    opt(spec, "priority", int, 0)
    opt(spec, "node", str)
    label = opt(spec, "label", str)
    if label is not None and len(label) > 128:
        raise ProtocolError("JOB_SUBMIT: a job's label is at most 128 characters")
    timeout = opt(spec, "timeout", (int, float))
    if timeout is not None and timeout <= 0:
        raise ProtocolError("JOB_SUBMIT: timeout must be positive")
    return {**spec, "id": job_id, "n": count}


class ClientRequests:
    """Clients' sessions, clusters, jobs and the acknowledgement of their results."""

    def __init__(self, store: SchedulerState, allocation: Allocation, faults: Faults,
                 waiting: Waiting) -> None:
        self.store = store
        self.allocation = allocation
        self.faults = faults
        self.waiting = waiting

    def handle_hello(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        hello = msg.as_(Hello)
        known = store.clients.get(peer.route)
        if known is None or known.user != peer.user:  # a reconnecting client keeps its clusters
            store.clients[peer.route] = ClientRecord(peer.route, peer.user, hello.name)
        store.clients[peer.route].batches = bool(hello.batches)
        store.client_liveness.touch(peer.route, now)
        store.send(CLIENT, peer.route, reply(msg, "WELCOME", {
            "sid": store.scheduler_id, **store.policy.to_map(), "max_msg_size": store.max_msg_size,
            "nodes": [n.public() for n in store.nodes.values()],
        }))

    def handle_cluster_open(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        opening = msg.as_(ClusterOpen)
        client = store.clients.get(peer.route)
        if client is None:
            raise ProtocolError("HELLO first", ILLEGAL_STATE)
        cluster_id = opening.cluster_id
        if cluster_id in store.clusters:
            raise ProtocolError(f"cluster {cluster_id} is already open", ILLEGAL_STATE)
        # every other field is an option carried into each node's SETUP, as the client sent it
        options = {k: v for k, v in msg.fields.items() if k not in ("cluster_id", "kind")}
        if store.options.cleanup_nodes:
            options["cleanup"] = True
        cluster = ClusterRecord(cluster_id, peer.route, peer.user, opening.kind,
                                options, list(msg.labels), list(msg.frames))
        store.clusters[cluster_id] = cluster
        client.clusters.add(cluster_id)
        store.persist.append(SaveCluster(cluster))
        store.send(CLIENT, peer.route, reply(msg, "OK", {"cluster_id": cluster_id}))
        for node in store.nodes.values():
            self.allocation.offer(cluster, node)

    def handle_job_submit(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        submit = msg.as_(JobSubmit)
        cluster = store.cluster_for(peer, submit.cluster_id)
        specs = [_valid_job_spec(spec) for spec in submit.jobs]
        if sum(int(spec["n"]) for spec in specs) != len(msg.frames):
            raise ProtocolError("JOB_SUBMIT: job frame counts do not match the frames")
        offset = 0
        if cluster.queued <= 0:
            cluster.queued_since = now
        for spec in specs:
            job_id, count = str(spec["id"]), int(spec["n"])
            frames = msg.frames[offset: offset + count]
            labels = msg.labels[offset: offset + count]
            offset += count
            if job_id in store.jobs:
                store.duplicates += 1  # a resubmission of a known id is idempotent
                continue
            job = JobRecord.from_spec(job_id, cluster.cluster_id, spec, labels, frames, next_seq())
            job.size = sum(memoryview(f).nbytes for f in frames)
            store.jobs[job_id] = job
            cluster.jobs.add(job_id)
            if spec.get("recover") is True:
                self.faults.recover(cluster, job, now)
            else:
                store.enqueue(cluster, job)
            store.persist.append(SaveJob(job))
        if cluster.no_node_since is not None:  # no node can run them: say so now, not later
            self.waiting.settle_nodeless(cluster, now)
        # after the shell journaled them, and after this turn's dispatch: the jobs first
        store.replies_after_dispatch.append(Send(CLIENT, peer.route, reply(msg, "OK")))

    def handle_job_cancel(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        foreign = []
        for job_id in msg.as_(JobCancel).job_ids:
            job = store.jobs.get(job_id)
            if job is None or store.clusters[job.cluster_id].user != peer.user:
                foreign.append(job_id)
            else:
                self.cancel_job(job)
        if foreign:  # another client's jobs are not yours to cancel, nor to see
            raise ProtocolError(f"no such job of yours: {', '.join(foreign[:5])}", NOT_FOUND)

    def cancel_job(self, job: JobRecord) -> bool:
        """Cancel one job: at once if queued, through its node if dispatched or running.

        False if it is already final (its result stands); True if it is cancelled
        or on its way to be.
        """
        store = self.store
        if job.state in (JobState.QUEUED, JobState.ADOPTING):
            if job.state is JobState.QUEUED:
                store.clusters[job.cluster_id].queued -= 1
            store.adopting.pop(job.job_id, None)  # a node reporting it later is told to drop it
            store.finish(job, {"status": "cancelled"}, [], [])
            return True
        if job.state in (JobState.DISPATCHED, JobState.RUNNING) and job.node_id:
            job.state = JobState.CANCELLING
            node = store.nodes[job.node_id]
            store.send(NODE, node.route, new_message("JOB_CANCEL", {"job_ids": [job.job_id],
                                                                    "attempts": [job.attempt]}))
            return True
        return job.state is JobState.CANCELLING

    def handle_result_ack(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        for job_id in msg.as_(ResultAck).job_ids:
            job = store.jobs.get(job_id)
            if job is None or job.state is not JobState.DONE:
                continue
            if store.clusters[job.cluster_id].user != peer.user:
                continue
            del store.jobs[job_id]
            store.unacked.pop(job_id, None)
            store.clusters[job.cluster_id].jobs.discard(job_id)
            store.persist.append(DropJob(job_id))
            if job.result_node:  # the node may drop its copy (sent in batches: SchedulerState.ack_nodes)
                store.ack_later(job.result_node, job)

    def handle_cluster_close(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        cluster = store.cluster_for(peer, msg.as_(ClusterClose).cluster_id)
        for job_id in list(cluster.jobs):
            job = store.jobs[job_id]
            if job.state in (JobState.DISPATCHED, JobState.RUNNING, JobState.CANCELLING) and job.node_id:
                store.release(store.nodes[job.node_id], job_id)
            del store.jobs[job_id]
        for node in store.nodes.values():
            node.lookahead.pop(cluster.cluster_id, None)
            if node.setup.pop(cluster.cluster_id, None) is not None:
                store.send(NODE, node.route, new_message("TEARDOWN", {"cluster_id": cluster.cluster_id}))
        del store.clusters[cluster.cluster_id]
        store.persist.append(DropCluster(cluster.cluster_id))
        client = store.clients.get(peer.route)
        if client:
            client.clusters.discard(cluster.cluster_id)
        store.send(CLIENT, peer.route, reply(msg, "OK"))
        store.dirty = True

    def handle_heartbeat(self, peer: Peer, msg: Message, now: float) -> None:
        """Nothing more to do: every message from a client counts as its heartbeat."""

    def handle_disconnect(self, peer: Peer, msg: Message, now: float) -> None:
        self._client_gone(peer.route)

    def _client_gone(self, route: Route) -> None:
        store = self.store
        client = store.clients.pop(route, None)
        if client is None:
            return
        for cluster_id in list(client.clusters):
            cluster = store.clusters.get(cluster_id)
            if cluster is not None:
                fake = new_message("CLUSTER_CLOSE", {"cluster_id": cluster_id})
                self.handle_cluster_close(Peer(CLIENT, route, client.user), fake, 0.0)
        store.out = [s for s in store.out if not (s.to == CLIENT and s.route == route)]
        store.replies_after_dispatch = [s for s in store.replies_after_dispatch if s.route != route]

    def resend_results(self, now: float) -> None:
        """Results not acknowledged for 3 intervals are sent again (a client may have
        reconnected, and a ROUTER drops what it sends to a peer that is away).

        ``unacked`` is kept in send order, so a pass stops at the first result
        that is not late.  A client that is not heard from gets nothing resent
        (its results wait, rotating, until it speaks again).
        """
        store = self.store
        late = now - 3 * store.policy.interval
        while store.unacked:
            job_id, sent = next(iter(store.unacked.items()))
            if sent > late:
                break
            del store.unacked[job_id]
            job = store.jobs.get(job_id)
            if job is None or job.result is None:
                continue
            store.unacked[job_id] = now  # to the end: the dict stays in send order
            client = store.clusters[job.cluster_id].client
            if store.client_liveness.state(client, now) is Liveness.ALIVE:
                store.send(CLIENT, client, job.result)

    def expire_clients(self, now: float) -> None:
        """A client silent for ``client_timeout``: gone, its clusters closed."""
        store = self.store
        for route in store.client_liveness.lost(now):
            if now - store.client_liveness.last(route) >= store.options.client_timeout:
                store.log.warning("event=client_gone reason=timeout")
                store.client_liveness.forget(route)
                self._client_gone(route)
