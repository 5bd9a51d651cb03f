"""A cluster's say over its nodes (docs/api.md §1.4, §3).

The scheduler offers every node it meets; the cluster answers on its
delivery thread, where ``NodeAllocate.allocate`` (user code) may run: how
many CPUs, which per-node files and setup arguments, or 0 to refuse the
node.  The node operations (``allocate_node`` ... ``send_file``) are
requests to the scheduler, answered ``OK`` or with a clear error.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridlib.daemons.runtime.payload import files_of
from gridlib.nodes import Node, NodeAllocate, NodeStatus
from gridlib.protocol.addresses import expand_targets
from gridlib.protocol.bodies import NodeEvent
from gridlib.protocol.codec import Message, new_message
from gridlib.protocol.errors import GridError, SerializationError

__all__ = ["NodeControl", "host_matches"]

log = logging.getLogger("gridlib.client")


def host_matches(pattern: str, ip_addr: str, name: str) -> bool:
    """Does a NodeAllocate host (IP, name, ``a.b.c.*``, CIDR or ``*``) name this node?"""
    if pattern in ("*", "", ip_addr, name):
        return True
    try:
        ip = ipaddress.ip_address(ip_addr)
    except ValueError:
        return False
    if pattern.endswith(".*"):
        pattern = pattern[:-2] + ".0/24"
    try:
        return ip in ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return False


class _Refuse(NodeAllocate):
    def allocate(self, cluster: Any, ip_addr: str, name: str, cpus: int,
                 avail_info: Any = None, platform: str = "") -> int:
        return 0


class NodeControl:
    """Mixed into ``JobCluster``: node offers, events and operations."""

    # provided by JobCluster
    cluster_id: str
    _conn: Any
    _nodes: dict[str, Node]
    _node_names: dict[str, Node]  # the same nodes by name (results name their node)
    _allocations: list[NodeAllocate]
    _node_port: int
    _only_listed: list[str] | None = None  # SharedJobCluster(nodes=...): use only these

    def _notify(self, status: Any, node: Node | None, job: Any) -> None:
        raise NotImplementedError

    # -- offers and events (delivery thread) -------------------------------------
    def _allocation_for(self, ip_addr: str, name: str, port: int = 0) -> NodeAllocate:
        for allocation in self._allocations:
            if host_matches(allocation.host, ip_addr, name) and (
                    not allocation.port or allocation.port == port):
                return allocation
        if self._only_listed is not None and not any(
                host_matches(p, ip_addr, name) for p in self._only_listed):
            return _Refuse("*")  # a shared scheduler's node this cluster did not ask for
        return NodeAllocate("*")  # a node that dialed in: use all its CPUs

    def _offered(self, info: dict[str, Any]) -> None:
        ip_addr, name = str(info.get("ip_addr") or ""), str(info.get("name") or "")
        cpus = int(info.get("cpus") or 0)
        allocation = self._allocation_for(ip_addr, name, int(info.get("port") or 0))
        avail = Node(str(info.get("node_id")), name, ip_addr, cpus)
        avail.update(info, time.time())
        fields: dict[str, Any] = {"cluster_id": self.cluster_id, "node_id": str(info.get("node_id"))}
        try:
            fields["cpus"] = int(allocation.allocate(self, ip_addr, name, cpus, avail.avail_info,
                                                     avail.platform))
            files, objects = files_of(allocation.depends)
            if objects:
                raise SerializationError("NodeAllocate.depends takes files and modules only")
        except Exception:
            log.exception("event=allocate_failed node=%s", name)
            fields["cpus"], files = 0, []
        if allocation.setup_args:
            fields["setup_args"] = list(allocation.setup_args)
        fields["files"] = [{"name": n, "mode": m} for n, _, m in files]
        self._conn.post(new_message("NODE_ALLOCATE", fields, [d for _, d, _ in files],
                                    ["file"] * len(files)))

    def _apply_node_event(self, msg: Message) -> None:
        node_event = msg.as_(NodeEvent)
        info, event = node_event.node, node_event.event
        if event == "discovered":
            self._offered(info)
            return
        node_id = str(info.get("node_id"))
        node = self._nodes.get(node_id)
        if node is None:
            node = Node(node_id, str(info.get("name")), str(info.get("ip_addr")), int(info.get("cpus") or 0))
            self._nodes[node_id] = node
        node.update(info, time.time())
        self._node_names[node.name] = node
        if event == "initialized":
            node.status = NodeStatus.Initialized
            self._notify(NodeStatus.Initialized, node, None)
        elif event == "avail":
            self._notify(NodeStatus.AvailInfo, node, None)
        elif event in ("closed", "setup_failed"):
            node.status = NodeStatus.Closed
            if event == "setup_failed":
                log.warning("event=node_setup_failed node=%s reason=%r", node.name, node_event.reason)
            self._notify(NodeStatus.Closed, node, None)

    # -- operations (user threads) ---------------------------------------------------
    @staticmethod
    def _node_key(node: Node | str) -> str:
        return node.node_id if isinstance(node, Node) else str(node)

    def _control(self, node: Node | str, op: str, **extra: Any) -> Message:
        return self._conn.request(new_message("NODE_CONTROL", {  # type: ignore[no-any-return]
            "cluster_id": self.cluster_id, "node": self._node_key(node), "op": op, **extra}))

    def discover_nodes(self, nodes: Sequence[Any] | str) -> None:
        """Announce this cluster to more nodes (host, ``a.b.c.*``, CIDR or NodeAllocate)."""
        items = [nodes] if isinstance(nodes, (str, NodeAllocate)) else list(nodes)
        specs = []
        for item in items:
            if isinstance(item, NodeAllocate):
                self._allocations.append(item)
                if item.host != "*":  # a rule for any node, not an address to announce to
                    specs.append(f"{item.host}:{item.port}" if item.port else item.host)
            else:
                specs.append(str(item))
        try:
            targets = expand_targets(specs, self._node_port)
        except ValueError as exc:
            raise GridError(str(exc)) from None
        self._conn.call(lambda: self._conn.scheduler.announce_to(targets))

    def allocate_node(self, node: Node | str | NodeAllocate) -> int:
        """Use ``node`` (again); a NodeAllocate also discovers it.  Returns the CPUs used."""
        if isinstance(node, NodeAllocate):
            self.discover_nodes([node])
            return 0
        answer = self._control(node, "allocate")
        return int(answer.get("cpus") or 0)

    def deallocate_node(self, node: Node | str) -> int:
        """Send no new jobs of this cluster to ``node`` (its running jobs go on)."""
        self._control(node, "deallocate")
        return 0

    def close_node(self, node: Node | str, terminate_pending: bool = False) -> int:
        """Stop using ``node``: after its jobs end (or cancel them), clean up there."""
        self._control(node, "closing", terminate=bool(terminate_pending))
        return 0

    def resetup_node(self, node: Node | str) -> int:
        """Run cleanup and setup again on ``node`` once its running jobs end."""
        self._control(node, "resetup")
        return 0

    def set_node_cpus(self, node: Node | str, cpus: int) -> int:
        """How many of the node's CPUs this cluster may use; returns what was set."""
        return int(self._control(node, "cpus", cpus=int(cpus)).get("cpus") or 0)

    def send_file(self, path: str | Path, node: Node | str) -> int:
        """Copy a file into this cluster's directory on ``node``; raises if refused."""
        source = Path(path)
        if not source.is_file():
            raise GridError(f"send_file: {str(path)!r} is not a file")
        self._conn.request(new_message("FILE_PUT", {
            "cluster_id": self.cluster_id, "node": self._node_key(node), "name": source.name,
            "mode": source.stat().st_mode & 0o777}, [source.read_bytes()], ["file"]))
        return 0
