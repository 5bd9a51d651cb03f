"""What nodes tell the scheduler core (docs/architecture.md §2, §6).

``READY`` (registration, or registration again), ``SETUP_OK``/``SETUP_FAIL``,
``NODE_ALERT``, ``HEARTBEAT`` (with AvailInfo), ``DISCONNECT`` and a job's
``JOB_STARTED``, ``JOB_PROVISIONAL``, ``JOB_FILE`` and ``JOB_RESULT``.

:class:`NodeReports` works on the store and calls
:class:`~.allocation.Allocation` (offers, node info, AvailInfo),
:class:`~.faults.Faults` (a node lost or registering again, the jobs a
node reports), :class:`~.waiting.Waiting` (a failed setup may leave jobs no
node can run) and :class:`~.dispatch.Dispatch` (job run times, for the
prefetch).
"""

from __future__ import annotations

from typing import Any

from gridlib.protocol.bodies import (
    Heartbeat,
    JobFile,
    JobProvisional,
    JobResult,
    JobStarted,
    Lookahead,
    NodeAlert,
    Ready,
    SetupFail,
    SetupOk,
)
from gridlib.protocol.codec import Message, error_reply, new_message, reply
from gridlib.protocol.errors import ILLEGAL_STATE, ProtocolError
from gridlib.protocol.result_batches import split_results

from .allocation import Allocation
from .dispatch import Dispatch
from .faults import Faults
from .records import JobRecord, JobState, NodeRecord, SetupState
from .state import CLIENT, NODE, Peer, SchedulerState
from .waiting import Waiting

__all__ = ["NodeReports"]

MAX_LOOKAHEAD = 64  # jobs ahead per CPU a node is granted at most

#: READY fields kept as the node's info (``NodeRecord.info``; what clients are told of it)
_NODE_INFO = ("platform", "port", "pid", "python", "max_msg_size", "session", "batches")


def _job_entries(entries: Any) -> list[tuple[str, int]]:
    """``[[job id, attempt], ...]`` from a node, the malformed ones left out."""
    return [(e[0], e[1]) for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
            and isinstance(e[1], int) and not isinstance(e[1], bool)]


class NodeReports:
    """Node registration, setup answers, liveness messages and job reports."""

    def __init__(self, store: SchedulerState, allocation: Allocation, faults: Faults,
                 waiting: Waiting, dispatcher: Dispatch) -> None:
        self.store = store
        self.allocation = allocation
        self.faults = faults
        self.waiting = waiting
        self.dispatcher = dispatcher

    def _welcome(self, msg: Message) -> Message:
        store = self.store
        return reply(msg, "WELCOME", {
            "sid": store.scheduler_id, **store.policy.to_map(), "max_msg_size": store.max_msg_size,
            "batches": True, "lookahead": True})

    def handle_ready(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        ready = msg.as_(Ready)
        node_id, cpus = ready.node_id, ready.cpus
        if not 0 < cpus <= 4096 or not node_id:
            raise ProtocolError("READY: bad node id or cpu count")
        known = store.nodes.get(node_id)
        if known is not None and known.user != peer.user:
            raise ProtocolError("that node id belongs to another key", ILLEGAL_STATE)
        session = ready.session
        if (known is not None and session
                and known.info.get("session") == session and known.route == peer.route):
            # the same registration again: a retry of a READY whose WELCOME was slow to arrive
            store.send(NODE, peer.route, self._welcome(msg))
            return
        previous = store.node_by_route.get(peer.route)
        if previous is not None and previous != node_id:  # one connection, one node
            self.faults.node_lost(previous, "another node id on the same connection")
        if node_id in store.nodes:
            # a node that registers again reports what it still holds in SETUP_OK
            self.faults.node_lost(node_id, "node re-registered", adopt_until=now + store.adopt_grace)
        # the info fields the node sent (a nil one too: clients are told what it said)
        info: dict[str, Any] = {k: getattr(ready, k) for k in _NODE_INFO if k in msg.fields}
        ip_addr = ready.ip_addr or peer.address
        node = NodeRecord(node_id, peer.route, peer.user, ready.name, ip_addr, cpus, info, now)
        store.add_node(node)
        store.node_by_route[peer.route] = node_id
        store.node_liveness.touch(node_id, now)
        store.send(NODE, peer.route, self._welcome(msg))
        for cluster in store.clusters.values():
            self.allocation.offer(cluster, node)
        store.log.info("event=node_ready node=%s name=%s cpus=%d", node_id, node.name, cpus)

    def handle_setup_ok(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        ok = msg.as_(SetupOk)
        node = store.node_of(peer)
        cluster = store.clusters.get(ok.cluster_id)
        if cluster is None or node.setup.get(cluster.cluster_id) != SetupState.PENDING:
            return  # a cluster closed meanwhile
        node.setup[cluster.cluster_id] = SetupState.READY
        for entries, running in ((ok.running, True), (ok.results, False)):
            for job_id, attempt in _job_entries(entries):
                self.faults.reconcile(cluster, node, job_id, attempt, running, now)
        for job_id, attempt in _job_entries(ok.dropped):
            self.faults.requeue_dropped(cluster, node, job_id, attempt)
        store.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "initialized", "cluster_id": cluster.cluster_id,
            "node": self.allocation.node_info(node, cluster.cluster_id)}))
        store.dirty = True

    def handle_setup_fail(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        fail = msg.as_(SetupFail)
        node = store.node_of(peer)
        cluster = store.clusters.get(fail.cluster_id)
        if cluster is None:
            return
        reason = fail.reason[:4000]
        node.setup[cluster.cluster_id] = SetupState.FAILED
        node.setup_failures[cluster.cluster_id] = reason
        store.log.warning("event=setup_failed node=%s cluster=%s reason=%r",
                          node.name, cluster.cluster_id, reason)
        store.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "setup_failed", "cluster_id": cluster.cluster_id, "node": node.public(),
            "reason": reason}))
        self.waiting.settle_nodeless(cluster, now)  # was it the last node that could run it?

    def handle_node_alert(self, peer: Peer, msg: Message, now: float) -> None:
        """A node reports trouble its clients should hear of (its spool cannot be written)."""
        store = self.store
        reason = msg.as_(NodeAlert).reason[:2000]
        node = store.node_of(peer)
        store.log.warning("event=node_alert node=%s reason=%r", node.name, reason)
        store.tell_clients_of(node, "alert", reason)

    def handle_lookahead(self, peer: Peer, msg: Message, now: float) -> None:
        """A node asks to hand a cluster's workers jobs ahead: granted, and remembered for as
        long as the node is (node_lost counts them as jobs that may have started)."""
        store = self.store
        ask = msg.as_(Lookahead)
        node = store.node_of(peer)
        if ask.cluster_id not in store.clusters or ask.cluster_id not in node.setup:
            raise ProtocolError(f"LOOKAHEAD: cluster {ask.cluster_id} is not set up on this node")
        depth = max(0, min(int(ask.depth), MAX_LOOKAHEAD))
        node.lookahead[ask.cluster_id] = max(depth, node.lookahead.get(ask.cluster_id, 0))
        store.send(NODE, peer.route, reply(msg, "LOOKAHEAD_OK", {"cluster_id": ask.cluster_id,
                                                                 "depth": depth}))

    def handle_heartbeat(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        avail = msg.as_(Heartbeat).avail
        node_id = store.node_by_route.get(peer.route)
        if node_id is None:  # e.g. this scheduler restarted: the node must register again
            raise ProtocolError("node has not sent READY", ILLEGAL_STATE)
        if avail is not None:
            store.nodes[node_id].info["avail"] = avail
            self.allocation.announce_avail(store.nodes[node_id])

    def handle_disconnect(self, peer: Peer, msg: Message, now: float) -> None:
        node_id = self.store.node_by_route.get(peer.route)
        if node_id is not None:
            self.faults.node_lost(node_id, "node disconnected")

    def _job_from_node(self, peer: Peer, job_id: str,
                       attempt: int | None) -> tuple[NodeRecord, JobRecord | None]:
        """The node that reports on a job, and that job unless the report is stale."""
        node = self.store.node_of(peer)
        job = self.store.jobs.get(job_id)
        if (job is None or job.node_id != node.node_id or job.attempt != attempt
                or job.state is JobState.DONE):
            return node, None  # stale: an old attempt, a repeat, or a job closed meanwhile
        return node, job

    def handle_job_started(self, peer: Peer, msg: Message, now: float) -> None:
        started = msg.as_(JobStarted)
        node, job = self._job_from_node(peer, started.job_id, started.attempt)
        if job is None or job.state is not JobState.DISPATCHED:
            return
        job.state = JobState.RUNNING
        fields = {"job_id": job.job_id, "event": "running", "node": node.name,
                  "ip_addr": node.ip_addr, "start_time": started.start_time}
        self.store.send(CLIENT, self.store.clusters[job.cluster_id].client, new_message("JOB_EVENT", fields))

    def handle_job_provisional(self, peer: Peer, msg: Message, now: float) -> None:
        provisional = msg.as_(JobProvisional)
        node, job = self._job_from_node(peer, provisional.job_id, provisional.attempt)
        if job is None:
            return
        fields = {"job_id": job.job_id, "event": "provisional", "node": node.name}
        self.store.send(CLIENT, self.store.clusters[job.cluster_id].client,
                        new_message("JOB_EVENT", fields, msg.frames, msg.labels))

    def handle_job_file(self, peer: Peer, msg: Message, now: float) -> None:
        file = msg.as_(JobFile)
        node, job = self._job_from_node(peer, file.job_id, file.attempt)
        if job is None:
            return
        fields = {"job_id": job.job_id, "path": file.path, "node": node.name}
        self.store.send(CLIENT, self.store.clusters[job.cluster_id].client,
                        new_message("JOB_FILE", fields, msg.frames, msg.labels))

    def handle_jobs_result(self, peer: Peer, msg: Message, now: float) -> None:
        """Several JOB_RESULTs in one message: each handled as if it had come alone (a bad one
        is answered alone, the others count)."""
        for one in split_results(msg):
            try:
                self.handle_job_result(peer, one, now)
            except ProtocolError as exc:
                self.store.log.warning("event=bad_message kind=node type=JOB_RESULT reason=%r", exc.reason)
                self.store.send(NODE, peer.route, error_reply(one, exc.code, exc.reason))

    def handle_job_result(self, peer: Peer, msg: Message, now: float) -> None:
        store = self.store
        result = msg.as_(JobResult)
        job_id = result.job_id
        node, job = self._job_from_node(peer, job_id, result.attempt)
        if job is None:
            store.duplicates += 1
            if job_id not in store.jobs or store.jobs[job_id].state is JobState.DONE:
                # acknowledge so the node can drop its spooled copy
                store.send(NODE, node.route, new_message("RESULT_ACK", {"job_ids": [job_id]}))
            return
        store.release(node, job_id)
        node.jobs_done += 1
        start, end = result.start_time, result.end_time
        if start is not None and end is not None and end >= start:
            self.dispatcher.job_ran(end - start)
        # the result goes to the client as the node reported it (its fields, then ours)
        fields = {k: v for k, v in msg.fields.items() if k != "attempt"}
        fields.update(node=node.name, ip_addr=node.ip_addr, attempts=job.attempt)
        store.finish(job, fields, msg.frames, msg.labels, node.node_id)
        store.dirty = True
