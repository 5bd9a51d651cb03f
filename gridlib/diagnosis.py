"""Why no node runs a cluster's jobs, in words a user can act on (docs/reliability.md §7).

When a cluster's jobs wait with no node able to run them, the scheduler
says so (``CLUSTER_EVENT waiting`` / ``no_nodes``); the client turns that
into one WARNING (and, with ``node_wait``, into the ``NoNodesError`` its
jobs end with) naming where it announced itself, what each address
answered, and the likely causes with the command that fixes each.
"""

from __future__ import annotations

__all__ = ["describe_no_nodes"]


def _target(endpoint: str) -> str:
    return endpoint.removeprefix("tcp://")


def describe_no_nodes(waited: float, queued: int, reach: dict[str, str] | None, client_key: str,
                      scheduler: str | None = None, known_nodes: int = 0, rejected: int = 0,
                      private_node: bool = False) -> str:
    """One paragraph: what waits, where we looked, what each place said, how to fix it."""
    head = f"{queued} job(s) waited {waited:.0f} s and no node can run them."
    allow = (f"`gridlib keys allow {client_key} --as client` on that host, then `kill -HUP` the node "
             f"(or restart it)")
    if scheduler is not None:
        lines = [f"The scheduler at {scheduler} knows {known_nodes} node(s) and none can run this "
                 f"cluster; see `gridlib status --scheduler {scheduler}`.",
                 "Likely causes: no node registered with the scheduler (start `gridlib node` on the "
                 "nodes, or give the scheduler --node patterns that reach them); the nodes do not "
                 "trust the scheduler's key (`gridlib keys allow SCHEDULER_KEY --as client` on each); "
                 "or `nodes=` of this cluster matches none of them."]
        return " ".join([head, *lines])
    parts = []
    listening, silent = [], []
    for endpoint, state in sorted((reach or {}).items()):
        where = _target(endpoint)
        if state == "connected":
            listening.append(where)
            parts.append(f"{where}: a node listens there but did not register")
        elif state == "refused":
            silent.append(where)
            parts.append(f"{where}: nothing listens there (connection refused or host unreachable)")
        else:
            silent.append(where)
            parts.append(f"{where}: no answer yet (host down, or a firewall drops the packets)")
    lines = [head]
    if parts:
        lines.append("Announced to " + "; ".join(parts[:10])
                     + (f"; and {len(parts) - 10} more" if len(parts) > 10 else "") + ".")
    if private_node:
        lines.append("The private local node this cluster started has not registered; see the "
                     "warnings above for its log.")
    causes = []
    if listening:
        causes.append(f"the node at {listening[0]} does not trust this client's key: run {allow}; "
                      f"or it was started with a different secret= / --secret-file than this client")
    if silent:
        causes.append(f"no `gridlib node` runs at {silent[0]} (start one there, check the host and "
                      f"the port: a node's port is its --port, default 51352)")
    if rejected:
        causes.append(f"{rejected} node(s) were refused by this cluster's own NodeAllocate rules or "
                      f"closed by it")
    if not causes:
        causes.append("no node was announced to; pass nodes=[...] with the nodes' addresses")
    lines.append("Likely cause: " + "; or ".join(causes) + ".")
    lines.append("Set node_wait=SECONDS to end the jobs with NoNodesError instead of waiting.")
    return " ".join(lines)
