"""Nodes as the user sees them (docs/api.md §3)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["DispyNodeAvailInfo", "NodeStatus", "NodeAvailInfo", "Node", "DispyNode", "NodeAllocate", "ClusterStatus"]


class NodeStatus(enum.IntEnum):
    """Node lifecycle events passed to ``cluster_status``, with dispy's numbers."""

    Initialized = 4  #: the node set up the computation and takes jobs
    Closed = 16  #: the node left the cluster (closed, lost or failed set-up)
    AvailInfo = 17  #: fresh availability figures (``Node.avail_info``)


class NodeAvailInfo(NamedTuple):
    """Free resources of a node: CPU percent idle, bytes of memory and disk, swap percent used."""

    cpu: float
    memory: float
    disk: float
    swap: float


@dataclass
class Node:
    """A node serving this cluster, with its statistics for this cluster."""

    Initialized = NodeStatus.Initialized
    Closed = NodeStatus.Closed
    AvailInfo = NodeStatus.AvailInfo

    node_id: str
    name: str
    ip_addr: str
    cpus: int
    avail_cpus: int = 0
    busy: int = 0
    jobs_done: int = 0
    cpu_time: float = 0.0
    tx: int = 0
    rx: int = 0
    update_time: float = 0.0
    platform: str = ""
    avail_info: NodeAvailInfo | None = None
    status: NodeStatus = NodeStatus.Initialized

    def update(self, info: dict[str, Any], now: float) -> None:
        self.name = str(info.get("name") or self.name)
        self.ip_addr = str(info.get("ip_addr") or self.ip_addr)
        cpus = info.get("cpus")
        self.cpus = int(cpus) if cpus is not None else self.cpus
        self.avail_cpus = int(info.get("node_cpus") or self.avail_cpus or self.cpus)
        self.platform = str(info.get("platform") or self.platform)
        avail = info.get("avail")
        if isinstance(avail, dict) and avail:
            self.avail_info = NodeAvailInfo(*(float(avail.get(k, 0.0)) for k in ("cpu", "memory", "disk", "swap")))
        self.update_time = now


DispyNode = Node
DispyNodeAvailInfo = NodeAvailInfo


@dataclass
class NodeAllocate:
    """Which nodes to use and how: a host pattern, a port, CPUs, per-node set-up.

    Subclass and override :meth:`allocate` to decide per node (return the
    number of CPUs to use; 0 rejects the node).
    """

    host: str
    port: int | None = None
    cpus: int = 0
    depends: Sequence[Any] = field(default_factory=tuple)
    setup_args: Sequence[Any] = field(default_factory=tuple)

    def allocate(self, cluster: Any, ip_addr: str, name: str, cpus: int,
                 avail_info: NodeAvailInfo | None = None, platform: str = "") -> int:
        if self.cpus > 0:
            return min(self.cpus, cpus)
        if self.cpus < 0:
            return max(cpus + self.cpus, 0)
        return cpus


@dataclass
class ClusterStatus:
    """``cluster.status()``: the nodes and how many jobs wait."""

    nodes: list[Node]
    jobs_pending: int
