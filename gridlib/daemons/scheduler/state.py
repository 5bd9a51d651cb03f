"""The scheduler core's store: its records, its outbox and the helpers every part uses.

:class:`SchedulerState` is plain data -- clients, clusters, nodes and jobs,
the liveness trackers, the options and the messages to send -- plus the few
helpers that every part of the core needs (send a message, find a caller's
cluster or node, queue a job, deliver a job's final result).  It has no
behaviour of its own: the parts are collaborators constructed with it
(:mod:`.allocation`, :mod:`.dispatch`, :mod:`.faults`, :mod:`.waiting`,
:mod:`.status`, :mod:`.client_requests`, :mod:`.node_reports`) and
:class:`~.core.SchedulerCore` puts them together.  No I/O, no zmq.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE, Message, new_message
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.liveness import LivenessPolicy, LivenessTracker
from gridlib.protocol.result_batches import payload_size

from .records import (
    Change,
    ClientRecord,
    ClusterRecord,
    JobQueue,
    JobRecord,
    JobState,
    NodeRecord,
    Route,
)

__all__ = ["CLIENT", "NODE", "POLICIES", "Peer", "Send", "SchedulerOptions", "SchedulerState"]

CLIENT = "client"
NODE = "node"


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent a message: which side, its route stack and its ZAP user id."""

    kind: str
    route: Route
    user: str = ""
    address: str = ""  # the peer's IP address as the socket saw it


@dataclass(frozen=True, slots=True)
class Send:
    """Command: send ``msg`` to the peer at ``route`` on the ``to`` side."""

    to: str
    route: Route
    msg: Message


POLICIES = ("fifo", "fair", "early")
ACK_BATCH = 256  # results acknowledged to a busy node in one RESULT_ACK
ACK_BYTES = 8 << 20  # or fewer, when they hold this many bytes (a node holds them until told)


@dataclass(slots=True)
class PendingAcks:
    """Results of one node that its clients have acknowledged, not yet told to the node."""

    job_ids: list[str] = field(default_factory=list)
    size: int = 0  # bytes of their frames


@dataclass(frozen=True)
class SchedulerOptions:
    """How a scheduler shares its nodes (``gridlib scheduler`` options)."""

    policy: str = "fifo"  #: fifo: earliest job first; fair: least recently served cluster; early: oldest cluster
    cooperative: bool = True  #: clients may change how many CPUs of a node they use
    cleanup_nodes: bool = False  #: every cluster's files are removed from nodes at close
    client_timeout: float = 3600.0  #: a silent client's clusters are closed after this long


class SchedulerState:
    """Records of the grid and the outbox; see :class:`~.core.SchedulerCore`."""

    def __init__(
        self,
        scheduler_id: str,
        liveness: LivenessPolicy | None = None,
        log: logging.Logger | None = None,
        options: SchedulerOptions | None = None,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
    ) -> None:
        self.scheduler_id = scheduler_id
        self.max_msg_size = max_msg_size  # what nodes may send us (told them in WELCOME)
        self.options = options or SchedulerOptions()
        if self.options.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        self.now = 0.0  # the time of the message or timer being handled
        # durable changes for the shell's journal (SaveCluster, SaveJob, DropJob, DropCluster), in order
        self.persist: list[Change] = []
        self.client_liveness: LivenessTracker[Route] = LivenessTracker(liveness or LivenessPolicy())
        self.unacked: dict[str, float] = {}  # job id -> when its result was (last) sent, in send order
        self.policy = liveness or LivenessPolicy()
        self.log = log or logging.getLogger("gridlib.scheduler")
        self.clients: dict[Route, ClientRecord] = {}
        self.clusters: dict[str, ClusterRecord] = {}
        self.nodes: dict[str, NodeRecord] = {}
        self.node_by_route: dict[Route, str] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.node_liveness: LivenessTracker[str] = LivenessTracker(self.policy)
        self.out: list[Send] = []
        self.replies_after_dispatch: list[Send] = []  # JOB_SUBMIT's OKs: sent after the jobs
        self.duplicates = 0
        self.dirty = False  # something may be dispatchable
        # ids of the nodes that may have credit: every node with credit is here (dispatch.py)
        self.hungry: set[str] = set()
        self.rescan = True  # the next dispatch looks at every node, not only the hungry ones
        self.node_acks: dict[str, PendingAcks] = {}  # node id -> results the clients have, to tell it
        self.acks_due: set[str] = set()  # nodes whose acks the next flush looks at (not every node)
        # forwarded message id -> (client route, client message id, node id), for node answers
        self.pending_replies: dict[bytes, tuple[Route, bytes, str]] = {}
        self.adopting: dict[str, float] = {}  # job id -> when it is settled if unclaimed
        self.adopt_grace = self.policy.interval * 3

    def send(self, to: str, route: Route, msg: Message) -> None:
        self.out.append(Send(to, route, msg))

    def cluster_for(self, peer: Peer, cluster_id: str) -> ClusterRecord:
        """The caller's cluster ``cluster_id`` (another user's is as good as unknown)."""
        cluster = self.clusters.get(cluster_id)
        if cluster is None or cluster.user != peer.user:
            raise ProtocolError(f"unknown cluster {cluster_id}", NOT_FOUND)
        return cluster

    def touch_node(self, peer: Peer, now: float) -> None:
        node_id = self.node_by_route.get(peer.route)
        if node_id is not None:
            self.node_liveness.touch(node_id, now)

    def node_of(self, peer: Peer) -> NodeRecord:
        node_id = self.node_by_route.get(peer.route)
        if node_id is None:
            raise ProtocolError("node has not sent READY", ILLEGAL_STATE)
        return self.nodes[node_id]

    def ack_later(self, node_id: str, job: JobRecord) -> None:
        """The client has ``job``'s result: its node may drop its copy (see :meth:`ack_nodes`)."""
        pending = self.node_acks.get(node_id)
        if pending is None:
            pending = self.node_acks[node_id] = PendingAcks()
        pending.job_ids.append(job.job_id)
        self.acks_due.add(node_id)
        if job.result is not None:
            pending.size += payload_size(job.result)

    def ack_nodes(self, every: bool) -> None:
        """Tell nodes which of their results the clients have (RESULT_ACK), so they drop them.

        Acknowledgements travel in batches: a node is told once ``ACK_BATCH`` of
        its results (or ``ACK_BYTES`` of them) are acknowledged, or when it holds
        no job (nothing to batch with), or on ``every`` (the scheduler's check, a
        few times a heartbeat interval).  A node keeps an acknowledged result in
        memory a little longer; a busy grid sends a message per ``ACK_BATCH`` jobs
        instead of one per client acknowledgement.
        """
        due, self.acks_due = (list(self.node_acks) if every else self.acks_due), set()
        for node_id in due:
            node = self.nodes.get(node_id)
            pending = self.node_acks.get(node_id)
            if pending is None:
                continue
            if node is None:
                del self.node_acks[node_id]  # gone: a node that comes back is told again
            elif every or not node.inflight or len(pending.job_ids) >= ACK_BATCH \
                    or pending.size >= ACK_BYTES:
                del self.node_acks[node_id]
                self.send(NODE, node.route, new_message("RESULT_ACK", {"job_ids": pending.job_ids}))

    def tell_clients_of(self, node: NodeRecord, event: str, reason: str) -> None:
        """NODE_EVENT ``event`` about ``node`` to the client of each cluster set up there."""
        for cluster_id in node.setup:
            cluster = self.clusters.get(cluster_id)
            if cluster is not None:
                self.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                    "event": event, "cluster_id": cluster_id, "node": node.public(),
                    "reason": reason}))

    def add_node(self, node: NodeRecord) -> None:
        """A node joins: it has all its credit."""
        self.nodes[node.node_id] = node
        self.hungry.add(node.node_id)

    def release(self, node: NodeRecord, job_id: str) -> None:
        """``node`` no longer holds ``job_id``: it has credit again."""
        if node.inflight.pop(job_id, None) is not None:
            self.hungry.add(node.node_id)
            if not node.inflight and node.node_id in self.node_acks:
                self.acks_due.add(node.node_id)  # idle: nothing to batch its acks with
            self.dirty = True

    def busy_for(self, node: NodeRecord, cluster_id: str) -> int:
        """How many of ``cluster_id``'s jobs ``node`` holds."""
        return sum(1 for j in node.inflight if (job := self.jobs.get(j)) and job.cluster_id == cluster_id)

    def enqueue(self, cluster: ClusterRecord, job: JobRecord) -> None:
        """Queue a job (pinned to a node if its spec says so) for the next dispatch."""
        pin = job.pin
        if pin:
            cluster.pinned.setdefault(pin, JobQueue()).push(job)
        else:
            cluster.queue.push(job)
        cluster.queued += 1
        job.state = JobState.QUEUED
        self.dirty = True

    def finish(self, job: JobRecord, fields: dict[str, Any], frames: list[Any],
               labels: list[str], node_id: str | None = None) -> None:
        """Deliver a job's one final result to its client and keep it until acked."""
        job.state = JobState.DONE
        self.clusters[job.cluster_id].done += 1
        job.result_node = node_id
        job.frames = []  # the arguments are no longer needed
        fields["job_id"] = job.job_id
        fields.setdefault("attempts", job.attempt)
        job.result = new_message("JOB_RESULT", fields, frames, labels)
        self.unacked[job.job_id] = self.now
        self.send(CLIENT, self.clusters[job.cluster_id].client, job.result)
