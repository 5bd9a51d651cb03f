"""Which nodes a cluster uses, and how (docs/api.md §3, docs/architecture.md §2.1).

Every node a cluster could use is offered to its client (``NODE_EVENT
discovered``); the client decides (``NODE_ALLOCATE``: CPUs for this cluster,
per-node setup arguments and files) and only then is the node set up.
Later the client can change its mind per node (``NODE_CONTROL``: cpus,
deallocate, allocate, close, resetup) and send it files (``FILE_PUT``).

A cluster's state on a node (``NodeRecord.setup``)::

    offered -> pending (SETUP sent) -> ready -> deallocated <-> ready
       |                                  |-> closing -> closed   (once its jobs there ended)
       +-> rejected                       |-> resetup -> pending  (once its jobs there ended)
"""

from __future__ import annotations

from typing import Any

from gridlib.protocol.codec import Message, new_message, reply
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.messages import opt

from .records import ClusterRecord, NodeRecord
from .state import CLIENT, NODE, Peer, SchedulerState

__all__ = ["NodeAllocation", "TAKES_JOBS"]

TAKES_JOBS = "ready"
_DRAINING = ("closing", "resetup")


class NodeAllocation(SchedulerState):
    """Node offers, allocation and per-node operations."""

    def _offer(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        """Ask the cluster's client whether (and how) to use ``node``."""
        node.setup[cluster.cluster_id] = "offered"
        self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "discovered", "cluster_id": cluster.cluster_id, "node": node.public()}))

    def _setup_node(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        node.setup[cluster.cluster_id] = "pending"
        extra = node.extra_setup.get(cluster.cluster_id)
        fields = {"cluster_id": cluster.cluster_id, "kind": cluster.kind, **cluster.options,
                  "cpus": node.cluster_cpus.get(cluster.cluster_id, node.cpus)}
        frames, labels = list(cluster.frames), list(cluster.labels)
        if extra is not None:
            fields.update(extra.fields)
            fields["files"] = [*(cluster.options.get("files") or []), *extra.fields.get("files", [])]
            frames += extra.frames
            labels += extra.labels
        self._send(NODE, node.route, new_message("SETUP", fields, frames, labels))

    def handle_node_allocate(self, peer: Peer, msg: Message, now: float) -> None:
        cluster = self._cluster_for(peer, str(msg.fields["cluster_id"]))
        node = self.nodes.get(str(msg.fields["node_id"]))
        if node is None or node.setup.get(cluster.cluster_id) not in ("offered", "rejected", "closed"):
            return  # the node left meanwhile, or it is already in use
        cpus = int(msg.fields["cpus"])
        if cpus <= 0:
            node.setup[cluster.cluster_id] = "rejected"
            return
        node.cluster_cpus[cluster.cluster_id] = min(cpus, node.cpus)
        files = opt(msg.fields, "files", list, [])
        if len(files) != len(msg.frames):
            raise ProtocolError("NODE_ALLOCATE: one file entry per frame")
        extra: dict[str, Any] = {"files": files}
        if isinstance(msg.get("setup_args"), list):
            extra["setup_args"] = msg.fields["setup_args"]
        node.extra_setup[cluster.cluster_id] = Message("", extra, list(msg.labels), list(msg.frames))
        self._setup_node(cluster, node)

    def _find_node(self, cluster: ClusterRecord, spec: str) -> NodeRecord:
        for node in self.nodes.values():
            if spec in (node.node_id, node.name, node.ip_addr) and cluster.cluster_id in node.setup:
                return node
        raise ProtocolError(f"no node {spec!r} serves this cluster", NOT_FOUND)

    def handle_node_control(self, peer: Peer, msg: Message, now: float) -> None:
        cluster = self._cluster_for(peer, str(msg.fields["cluster_id"]))
        node = self._find_node(cluster, str(msg.fields["node"]))
        cid, op, state = cluster.cluster_id, str(msg.fields["op"]), node.setup[cluster.cluster_id]
        if op == "cpus" and not self.options.cooperative:
            raise ProtocolError("this scheduler is not cooperative: clients cannot change node CPUs",
                                ILLEGAL_STATE)
        if op == "cpus":
            node.cluster_cpus[cid] = max(0, min(int(opt(msg.fields, "cpus", int, 0)), node.cpus))
        elif op == "deallocate" and state == TAKES_JOBS:
            node.setup[cid] = "deallocated"
        elif op == "allocate" and state == "deallocated":
            node.setup[cid] = TAKES_JOBS
        elif op in _DRAINING and state in (TAKES_JOBS, "deallocated", "pending"):
            node.setup[cid] = op
            if op == "closing" or msg.get("terminate"):
                self._cancel_on(node, cid, bool(msg.get("terminate")))
        elif op not in ("cpus", "deallocate", "allocate", *_DRAINING):
            raise ProtocolError(f"unknown node operation {op!r}")
        self._dirty = True
        self._send(CLIENT, peer.route, reply(msg, "OK", {
            "cpus": node.cluster_cpus.get(cid, 0), "state": node.setup[cid]}))

    def _cancel_on(self, node: NodeRecord, cluster_id: str, terminate: bool) -> None:
        if not terminate:
            return
        ids = [j for j in node.inflight if self.jobs.get(j) and self.jobs[j].cluster_id == cluster_id]
        if ids:
            self._send(NODE, node.route, new_message("JOB_CANCEL", {"job_ids": ids}))

    def _drain(self) -> None:
        """Close or set up again the nodes whose jobs for a cluster have all ended."""
        for node in self.nodes.values():
            for cid, state in list(node.setup.items()):
                if state not in _DRAINING or self._busy_for(node, cid):
                    continue
                cluster = self.clusters.get(cid)
                # a resetup keeps the cluster's files (depends, files sent since) for the new setup
                self._send(NODE, node.route, new_message("TEARDOWN", {
                    "cluster_id": cid, "keep_files": state == "resetup" and cluster is not None}))
                if cluster is None:
                    continue
                if state == "closing":
                    node.setup[cid] = "closed"
                    self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                        "event": "closed", "cluster_id": cid, "node": self._node_info(node, cid),
                        "reason": "closed by the client"}))
                else:
                    self._setup_node(cluster, node)

    def _busy_for(self, node: NodeRecord, cluster_id: str) -> int:
        return sum(1 for j in node.inflight if (job := self.jobs.get(j)) and job.cluster_id == cluster_id)

    def handle_file_put(self, peer: Peer, msg: Message, now: float) -> None:
        """A client's file for a node's cluster directory: forwarded, and the node's answer relayed."""
        cluster = self._cluster_for(peer, str(msg.fields["cluster_id"]))
        node = self._find_node(cluster, str(msg.fields["node"]))
        if len(msg.frames) != 1:
            raise ProtocolError("FILE_PUT carries exactly one frame")
        forward = new_message("FILE_PUT", {k: v for k, v in msg.fields.items() if k != "node"},
                              msg.frames, msg.labels)
        if len(self.pending_replies) >= 10_000:  # unanswered requests do not pile up for ever
            self.pending_replies.pop(next(iter(self.pending_replies)))
        self.pending_replies[forward.mid] = (peer.route, msg.mid, node.node_id)
        self._send(NODE, node.route, forward)

    def handle_node_reply(self, peer: Peer, msg: Message, now: float) -> None:
        """OK or ERROR from a node answering something a client asked (FILE_PUT)."""
        waiting = self.pending_replies.get(msg.ref) if msg.ref else None
        if msg.ref is None or waiting is None or waiting[2] != self.node_by_route.get(peer.route):
            if msg.type == "ERROR":
                self.log.warning("event=node_error code=%s reason=%r", msg.get("code"), msg.get("reason"))
            return
        del self.pending_replies[msg.ref]
        route, ref, _ = waiting
        self._send(CLIENT, route, new_message(msg.type, dict(msg.fields), ref=ref))

    def _node_info(self, node: NodeRecord, cluster_id: str) -> dict[str, Any]:
        """What a cluster's client is told about a node: its CPUs for that cluster."""
        info = node.public()
        info["node_cpus"] = node.cpus
        info["cpus"] = node.cluster_cpus.get(cluster_id, node.cpus)
        return info

    def _announce_avail(self, node: NodeRecord) -> None:
        for cid, state in node.setup.items():
            cluster = self.clusters.get(cid)
            if cluster is not None and state == TAKES_JOBS:
                self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                    "event": "avail", "cluster_id": cid, "node": self._node_info(node, cid)}))
