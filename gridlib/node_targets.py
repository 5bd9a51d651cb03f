"""Which nodes a cluster asks for: ``nodes=`` as addresses to announce the scheduler to,
dispy's ``"*"``, and whether this host's (private) node is wanted (docs/api.md §1.1)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from gridlib.nodes import NodeAllocate

__all__ = ["dispy_wildcards", "node_specs", "wants_local_node", "is_loopback"]


def dispy_wildcards(nodes: Any) -> Any:
    """dispy programs write ``nodes="*"`` or ``nodes=["*"]`` for "any node": the same as
    ``NodeAllocate("*")`` here (there is no broadcast: this host's node)."""
    if nodes == "*":
        return [NodeAllocate("*")]
    if isinstance(nodes, (list, tuple)) and "*" in nodes:
        return [NodeAllocate("*") if item == "*" else item for item in nodes]
    return nodes


def node_specs(nodes: Sequence[Any] | str | None) -> list[str]:
    """The addresses ``nodes=`` names, to announce the scheduler to."""
    if nodes is None:
        return ["127.0.0.1"]
    if isinstance(nodes, (str, NodeAllocate)):
        nodes = [nodes]
    specs = []
    for item in nodes:
        if isinstance(item, NodeAllocate):
            if item.host != "*":  # a rule for any node, not an address to announce to
                specs.append(f"{item.host}:{item.port}" if item.port else item.host)
        else:
            specs.append(str(item))
    if not specs and nodes and all(isinstance(i, NodeAllocate) for i in nodes):
        # only "*" rules (dispy's "any node" -- it broadcast to find them): there is no
        # multicast here, so they apply to this host's node, as nodes=None would
        return ["127.0.0.1"]
    return specs


def wants_local_node(nodes: Any, targets: list[tuple[str, int]], node_port: int) -> bool:
    """The embedded default: this host's node, started privately if none runs.

    ``nodes=None`` asks for it, and so do NodeAllocate rules for this host
    only (which is how to allocate the private node's CPUs or data).
    """
    if nodes is None:
        return True
    items = [nodes] if isinstance(nodes, (str, NodeAllocate)) else list(nodes)
    return bool(items) and all(isinstance(i, NodeAllocate) for i in items) \
        and targets == [("127.0.0.1", node_port)]


def is_loopback(host: str) -> bool:
    """``host`` is this machine (a loopback address, or ``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
