"""``gridlib status``: what a shared scheduler is doing (docs/tools.md §2).

The tool is a client of the scheduler like ``SharedJobCluster`` (a CURVE
DEALER to its client port, so its key must be on the scheduler's
allowlist), but it opens no cluster: it sends one ``STATUS`` and prints the
answer, ``SchedulerCore.snapshot``: the nodes, the asker's own clusters,
and other users' clusters as totals only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gridlib.client_io import ClientConnection
from gridlib.protocol.addresses import split_host_port
from gridlib.protocol.codec import new_message
from gridlib.protocol.errors import ConnectionLost, GridError
from gridlib.protocol.keys import Identity
from gridlib.protocol.sockets import parse_endpoint, tcp_endpoint, zeromq_greets
from gridlib.transports import SchedulerLink

__all__ = ["DEFAULT_SCHEDULER", "scheduler_endpoint", "probe_scheduler", "fetch_status",
           "render_status"]

DEFAULT_SCHEDULER = "127.0.0.1:51350"
_SCHEDULER_PORT = 51350  # gridlib.shared.DEFAULT_SCHEDULER_PORT, without importing cloudpickle

log = logging.getLogger("gridlib.status")


def scheduler_endpoint(address: str) -> str:
    """``host[:port]`` (client port, default 51350) -> ``tcp://host:port``."""
    try:
        host, port = split_host_port(address, _SCHEDULER_PORT)
        return str(tcp_endpoint(host, port))
    except ValueError as exc:
        raise GridError(f"bad scheduler address {address!r}: {exc}") from None


def probe_scheduler(address: str, timeout: float = 5.0) -> str:
    """The scheduler's endpoint, once a ZeroMQ socket accepts connections there.

    Fails at once when nothing listens, or something that is not ZeroMQ does
    (zmq would retry quietly until a request times out); says nothing about
    keys, which only a request proves.
    """
    endpoint = scheduler_endpoint(address)
    host, port = parse_endpoint(endpoint)
    why = zeromq_greets(host, port, timeout, greeting_timeout=timeout)
    if why:
        raise ConnectionLost(f"cannot reach the scheduler at {endpoint}: {why}; "
                             "is it running there?")
    return endpoint


def fetch_status(address: str, identity: Identity, scheduler_key: bytes | None = None,
                 timeout: float = 5.0) -> dict[str, Any]:
    """Ask the scheduler at ``address`` for its STATUS answer (its fields).

    Raises ``ConnectionLost`` naming the address when nothing accepts a
    connection there, or when no answer comes within ``timeout`` seconds
    in all: then the scheduler is not ours or this key is not on its
    allowlist (CURVE gives no other clue).
    """
    deadline = time.monotonic() + timeout
    endpoint = probe_scheduler(address, timeout)
    link = SchedulerLink(endpoint, scheduler_key or identity.keypair.public)
    conn = ClientConnection(identity, lambda msg: None, link, log=log)
    conn.start()
    try:
        answer = conn.request(new_message("STATUS"),
                              timeout=max(0.1, deadline - time.monotonic()))
    except ConnectionLost:
        raise ConnectionLost(
            f"no answer from the scheduler at {endpoint} within {timeout:g} s: is it running, "
            f"and is this client's key ({identity.keypair.public.decode()}) on its allowlist "
            f"(gridlib keys allow KEY --as client)?") from None
    finally:
        conn.close()
    return dict(answer.fields)


def _size(value: Any) -> str:
    """Bytes as a short human figure (binary units)."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return "-"


def _node_row(node: dict[str, Any]) -> list[str]:
    avail: dict[str, Any] = node["avail"] if isinstance(node.get("avail"), dict) else {}
    port = node.get("port")
    address = f"{node.get('ip_addr', '')}:{port}" if port else str(node.get("ip_addr", ""))
    cpu = avail.get("cpu")
    return [
        str(node.get("name", "")), address, str(node.get("cpus", "")), str(node.get("busy", "")),
        str(node.get("jobs_done", "")), "-" if cpu is None else f"{float(cpu):.0f} %",
        _size(avail.get("memory")) if "memory" in avail else "-",
        _size(avail.get("disk")) if "disk" in avail else "-",
        f"{float(node.get('last_heard', 0.0)):.1f} s ago", "yes" if node.get("suspect") else "no",
    ]


def render_status(answer: dict[str, Any], console: Any) -> None:
    """Print the nodes and clusters tables and the other users' totals on a rich console."""
    from rich.table import Table

    nodes = list(answer.get("nodes") or [])
    policy = answer.get("policy")
    table = Table(title=f"Nodes ({len(nodes)})" + (f", policy {policy}" if policy else ""),
                  title_justify="left")
    for name, right in (("name", False), ("address", False), ("CPUs", True), ("busy", True),
                        ("jobs done", True), ("avail CPU", True), ("avail memory", True),
                        ("avail disk", True), ("last heartbeat", True), ("suspect", False)):
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for node in sorted(nodes, key=lambda n: str(n.get("name", ""))):
        table.add_row(*_node_row(node), style="red" if node.get("suspect") else None)
    if nodes:
        console.print(table)
    else:
        console.print("No nodes have joined this scheduler.")
    clusters = list(answer.get("clusters") or [])
    if clusters:
        table = Table(title=f"Your clusters ({len(clusters)})", title_justify="left")
        for name in ("id", "kind", "queued", "running", "done"):
            table.add_column(name, justify="left" if name in ("id", "kind") else "right",
                             no_wrap=True)
        for c in clusters:
            kind = str(c.get("kind", "")) + (" (exclusive)" if c.get("exclusive") else "")
            table.add_row(str(c.get("cluster_id", "")), kind, str(c.get("queued", 0)),
                          str(c.get("running", 0)), str(c.get("done", 0)))
        console.print(table)
    else:
        console.print("You have no clusters open at this scheduler.")
    others = answer.get("others") or {}
    count = others.get("clusters", 0)
    console.print(f"Other users: {count} cluster{'' if count == 1 else 's'}, "
                  f"{others.get('queued', 0)} jobs queued, {others.get('running', 0)} running, "
                  f"{others.get('done', 0)} done.")
