"""Which nodes a cluster uses, and how (docs/api.md §3, docs/architecture.md §2.1).

Every node a cluster could use is offered to its client (``NODE_EVENT
discovered``); the client decides (``NODE_ALLOCATE``: CPUs for this cluster,
per-node setup arguments and files) and only then is the node set up.
Later the client can change its mind per node (``NODE_CONTROL``: cpus,
deallocate, allocate, close, resetup) and send it files (``FILE_PUT``).

A cluster's state on a node (``NodeRecord.setup``, a :class:`~.records.SetupState`)::

    offered -> pending (SETUP sent) -> ready -> deallocated <-> ready
       |                                  |-> closing -> closed   (once its jobs there ended)
       +-> rejected                       |-> resetup -> pending  (once its jobs there ended)

:class:`Allocation` works on the store alone; no other part of the core is
called from here.
"""

from __future__ import annotations

from typing import Any

from gridlib.protocol.bodies import Error, FilePut, NodeAllocate, NodeControl
from gridlib.protocol.codec import Message, new_message, reply
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError

from .records import ClusterRecord, NodeRecord, SetupState
from .state import CLIENT, NODE, Peer, SchedulerState

__all__ = ["Allocation"]

_DRAINING = (SetupState.CLOSING, SetupState.RESETUP)  # left once the cluster's jobs there ended
_DRAINING_OPS = ("closing", "resetup")  # the NODE_CONTROL ops that enter them


class Allocation:
    """Node offers, allocation and per-node operations, on the store's records."""

    def __init__(self, store: SchedulerState) -> None:
        self.store = store

    def offer(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        """Ask the cluster's client whether (and how) to use ``node``."""
        node.setup[cluster.cluster_id] = SetupState.OFFERED
        self.store.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "discovered", "cluster_id": cluster.cluster_id, "node": node.public()}))

    def _setup_node(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        node.setup[cluster.cluster_id] = SetupState.PENDING
        extra = node.extra_setup.get(cluster.cluster_id)
        fields = {"cluster_id": cluster.cluster_id, "kind": cluster.kind, **cluster.options,
                  "cpus": node.cluster_cpus.get(cluster.cluster_id, node.cpus)}
        frames, labels = list(cluster.frames), list(cluster.labels)
        if extra is not None:
            fields.update(extra.fields)
            fields["files"] = [*(cluster.options.get("files") or []), *extra.fields.get("files", [])]
            frames += extra.frames
            labels += extra.labels
        self.store.send(NODE, node.route, new_message("SETUP", fields, frames, labels))

    def handle_node_allocate(self, peer: Peer, msg: Message, now: float) -> None:
        allocate = msg.as_(NodeAllocate)
        cluster = self.store.cluster_for(peer, allocate.cluster_id)
        node = self.store.nodes.get(allocate.node_id)
        if node is None or node.setup.get(cluster.cluster_id) not in (
                SetupState.OFFERED, SetupState.REJECTED, SetupState.CLOSED):
            return  # the node left meanwhile, or it is already in use
        cpus = allocate.cpus
        if cpus <= 0:
            node.setup[cluster.cluster_id] = SetupState.REJECTED
            return
        node.cluster_cpus[cluster.cluster_id] = min(cpus, node.cpus)
        files = allocate.files if allocate.files is not None else []
        if len(files) != len(msg.frames):
            raise ProtocolError("NODE_ALLOCATE: one file entry per frame")
        extra: dict[str, Any] = {"files": files}
        if allocate.setup_args is not None:
            extra["setup_args"] = allocate.setup_args
        node.extra_setup[cluster.cluster_id] = Message("", extra, list(msg.labels), list(msg.frames))
        self._setup_node(cluster, node)

    def _find_node(self, cluster: ClusterRecord, spec: str) -> NodeRecord:
        for node in self.store.nodes.values():
            if spec in (node.node_id, node.name, node.ip_addr) and cluster.cluster_id in node.setup:
                return node
        raise ProtocolError(f"no node {spec!r} serves this cluster", NOT_FOUND)

    def handle_node_control(self, peer: Peer, msg: Message, now: float) -> None:
        control = msg.as_(NodeControl)
        cluster = self.store.cluster_for(peer, control.cluster_id)
        node = self._find_node(cluster, control.node)
        cid, op, state = cluster.cluster_id, control.op, node.setup[cluster.cluster_id]
        if op == "cpus" and not self.store.options.cooperative:
            raise ProtocolError("this scheduler is not cooperative: clients cannot change node CPUs",
                                ILLEGAL_STATE)
        if op == "cpus":
            node.cluster_cpus[cid] = max(0, min(control.cpus or 0, node.cpus))
        elif op == "deallocate" and state == SetupState.READY:
            node.setup[cid] = SetupState.DEALLOCATED
        elif op == "allocate" and state == SetupState.DEALLOCATED:
            node.setup[cid] = SetupState.READY
        elif op in _DRAINING_OPS and state in (SetupState.READY, SetupState.DEALLOCATED, SetupState.PENDING):
            node.setup[cid] = SetupState(op)
            if op == "closing" or control.terminate:
                self._cancel_on(node, cid, bool(control.terminate))
        elif op not in ("cpus", "deallocate", "allocate", *_DRAINING_OPS):
            raise ProtocolError(f"unknown node operation {op!r}")
        self.store.dirty = True
        self.store.send(CLIENT, peer.route, reply(msg, "OK", {
            "cpus": node.cluster_cpus.get(cid, 0), "state": node.setup[cid].value}))

    def _cancel_on(self, node: NodeRecord, cluster_id: str, terminate: bool) -> None:
        if not terminate:
            return
        jobs = self.store.jobs
        ids = [j for j in node.inflight if jobs.get(j) and jobs[j].cluster_id == cluster_id]
        if ids:
            self.store.send(NODE, node.route, new_message("JOB_CANCEL", {"job_ids": ids}))

    def drain(self) -> None:
        """Close or set up again the nodes whose jobs for a cluster have all ended."""
        store = self.store
        for node in store.nodes.values():
            for cid, state in list(node.setup.items()):
                if state not in _DRAINING or store.busy_for(node, cid):
                    continue
                cluster = store.clusters.get(cid)
                # a resetup keeps the cluster's files (depends, files sent since) for the new setup
                store.send(NODE, node.route, new_message("TEARDOWN", {
                    "cluster_id": cid, "keep_files": state == SetupState.RESETUP and cluster is not None}))
                if cluster is None:
                    continue
                if state == SetupState.CLOSING:
                    node.setup[cid] = SetupState.CLOSED
                    store.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                        "event": "closed", "cluster_id": cid, "node": self.node_info(node, cid),
                        "reason": "closed by the client"}))
                else:
                    self._setup_node(cluster, node)

    def handle_file_put(self, peer: Peer, msg: Message, now: float) -> None:
        """A client's file for a node's cluster directory: forwarded, and the node's answer relayed."""
        put = msg.as_(FilePut)
        if put.node is None:  # (optional in the struct: a node's FILE_PUT has none)
            raise ProtocolError("FILE_PUT: missing field 'node'")
        cluster = self.store.cluster_for(peer, put.cluster_id)
        node = self._find_node(cluster, put.node)
        if len(msg.frames) != 1:
            raise ProtocolError("FILE_PUT carries exactly one frame")
        # forwarded to the node as the client sent it, less the node it was meant for
        forward = new_message("FILE_PUT", {k: v for k, v in msg.fields.items() if k != "node"},
                              msg.frames, msg.labels)
        pending = self.store.pending_replies
        if len(pending) >= 10_000:  # unanswered requests do not pile up for ever
            pending.pop(next(iter(pending)))
        pending[forward.mid] = (peer.route, msg.mid, node.node_id)
        self.store.send(NODE, node.route, forward)

    def handle_node_reply(self, peer: Peer, msg: Message, now: float) -> None:
        """OK or ERROR from a node answering something a client asked (FILE_PUT)."""
        store = self.store
        waiting = store.pending_replies.get(msg.ref) if msg.ref else None
        if msg.ref is None or waiting is None or waiting[2] != store.node_by_route.get(peer.route):
            if msg.type == "ERROR":
                error = msg.as_(Error)
                store.log.warning("event=node_error code=%s reason=%r", error.code, error.reason)
            return
        del store.pending_replies[msg.ref]
        route, ref, _ = waiting
        # relayed to the client that asked, as the node answered
        store.send(CLIENT, route, new_message(msg.type, dict(msg.fields), ref=ref))

    @staticmethod
    def node_info(node: NodeRecord, cluster_id: str) -> dict[str, Any]:
        """What a cluster's client is told about a node: its CPUs for that cluster."""
        info = node.public()
        info["node_cpus"] = node.cpus
        info["cpus"] = node.cluster_cpus.get(cluster_id, node.cpus)
        return info

    def announce_avail(self, node: NodeRecord) -> None:
        """A node's AvailInfo, to every cluster that has it ready."""
        for cid, state in node.setup.items():
            cluster = self.store.clusters.get(cid)
            if cluster is not None and state == SetupState.READY:
                self.store.send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                    "event": "avail", "cluster_id": cid, "node": self.node_info(node, cid)}))
