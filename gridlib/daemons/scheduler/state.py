"""The scheduler core's state and the helpers every part of it uses.

:class:`SchedulerState` holds clients, clusters, nodes and jobs and the
outgoing messages; the behaviour lives in :mod:`.core` (messages and
dispatch), :mod:`.faults` (lost nodes, reconciliation, recovery) and
:mod:`.allocation` (which nodes a cluster uses and how).  No I/O, no zmq.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE, Message, new_message
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.liveness import LivenessPolicy, LivenessTracker
from gridlib.protocol.messages import opt

from .records import ClientRecord, ClusterRecord, JobQueue, JobRecord, JobState, NodeRecord, Route

__all__ = ["CLIENT", "NODE", "Peer", "Send", "SchedulerState"]

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
        prefetch: int = 1,
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
        # durable-state changes for the shell's journal: ("cluster"|"job"|"drop_job"|"drop_cluster", ...)
        self.persist: list[tuple[str, Any]] = []
        self.client_liveness: LivenessTracker[Route] = LivenessTracker(liveness or LivenessPolicy())
        self._unacked: dict[str, float] = {}  # job id -> when its result was (last) sent
        self.job_time = float("inf")  # recent average job run time (seconds), for the prefetch
        self.policy = liveness or LivenessPolicy()
        self.prefetch = prefetch
        self.log = log or logging.getLogger("gridlib.scheduler")
        self.clients: dict[Route, ClientRecord] = {}
        self.clusters: dict[str, ClusterRecord] = {}
        self.nodes: dict[str, NodeRecord] = {}
        self.node_by_route: dict[Route, str] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.node_liveness: LivenessTracker[str] = LivenessTracker(self.policy)
        self.out: list[Send] = []
        self._replies_after_dispatch: list[Send] = []  # JOB_SUBMIT's OKs: sent after the jobs
        self.duplicates = 0
        self._dirty = False  # something may be dispatchable
        # forwarded message id -> (client route, client message id), for node answers
        self.pending_replies: dict[bytes, tuple[Route, bytes, str]] = {}
        self._adopting: dict[str, float] = {}  # job id -> when it is settled if unclaimed
        self.adopt_grace = self.policy.interval * 3

    def _offer(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        raise NotImplementedError  # allocation.NodeAllocation

    def _node_lost(self, node_id: str, reason: str, adopt_until: float | None = None) -> None:
        raise NotImplementedError  # faults.FaultHandling

    def _send(self, to: str, route: Route, msg: Message) -> None:
        self.out.append(Send(to, route, msg))

    def _cluster_for(self, peer: Peer, cluster_id: str) -> ClusterRecord:
        cluster = self.clusters.get(cluster_id)
        if cluster is None or cluster.user != peer.user:
            raise ProtocolError(f"unknown cluster {cluster_id}", NOT_FOUND)
        return cluster

    def _touch_node(self, peer: Peer, now: float) -> None:
        node_id = self.node_by_route.get(peer.route)
        if node_id is not None:
            self.node_liveness.touch(node_id, now)

    def _node_of(self, peer: Peer) -> NodeRecord:
        node_id = self.node_by_route.get(peer.route)
        if node_id is None:
            raise ProtocolError("node has not sent READY", ILLEGAL_STATE)
        return self.nodes[node_id]

    def _enqueue(self, cluster: ClusterRecord, job: JobRecord) -> None:
        pin = opt(job.spec, "node", str)
        if pin:
            cluster.pinned.setdefault(pin, JobQueue()).push(job)
        else:
            cluster.queue.push(job)
        cluster.queued += 1
        job.state = JobState.QUEUED
        self._dirty = True

    def _finish(self, job: JobRecord, fields: dict[str, Any], frames: list[Any],
                labels: list[str], node_id: str | None = None) -> None:
        """Deliver a job's one final result to its client and keep it until acked."""
        job.state = JobState.DONE
        self.clusters[job.cluster_id].done += 1
        job.result_node = node_id
        job.frames = []  # the arguments are no longer needed
        fields["job_id"] = job.job_id
        fields.setdefault("attempts", job.attempt)
        job.result = new_message("JOB_RESULT", fields, frames, labels)
        self._unacked[job.job_id] = self.now
        self._send(CLIENT, self.clusters[job.cluster_id].client, job.result)
