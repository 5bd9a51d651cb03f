"""Which nodes a cluster uses, and how (API.md ``NodeAllocate``; DESIGN §3).

Every node a cluster could use is offered to its client (``NODE_EVENT
discovered``); the client decides (``NODE_ALLOCATE``: CPUs for this cluster,
per-node setup arguments and files) and only then is the node set up.
Clients can later change their mind per node (``NODE_CONTROL``) and send it
files (``FILE_PUT``).
"""

from __future__ import annotations

from gridlib.protocol.codec import new_message

from .records import ClusterRecord, NodeRecord
from .state import NODE, SchedulerState

__all__ = ["NodeAllocation"]


class NodeAllocation(SchedulerState):
    """Node offers, allocation and per-node operations."""

    def _setup_node(self, cluster: ClusterRecord, node: NodeRecord) -> None:
        node.setup[cluster.cluster_id] = "pending"
        fields = {"cluster_id": cluster.cluster_id, "kind": cluster.kind, **cluster.options}
        self._send(NODE, node.route, new_message("SETUP", fields, cluster.frames, cluster.labels))
