"""How ``gridlib ssh`` tells what happens: each node up (its address and key), each host
that failed or lost its node, and a last summary -- as text lines, or one JSON object a line
(``--json``).  The runner (:mod:`gridlib.ssh_tool`) calls a :class:`Report`; it prints nothing
itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["NodeUp", "node_address", "Report", "TextReport", "JsonReport", "write_line"]


def node_address(address: str, port: int | None) -> str:
    """``ADDR:PORT`` for ``JobCluster(nodes=[...])`` (``[v6]:PORT``; no port for a node
    without a beacon port)."""
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if port else host


@dataclass
class NodeUp:
    """A node that runs: what a client needs to use it."""

    host: str  # as given on the command line
    address: str  # the host's address as the ssh client reached it
    port: int | None  # the beacon port (None: a dial-out node without one)
    pid: int  # the node's process id on the host
    key: str  # the node's public key (Z85)
    hostname: str  # the host's own name
    directory: str  # the run directory on the host (removed when the node stops)
    python: str
    gridlib: str

    @property
    def node(self) -> str:
        return node_address(self.address, self.port)


class Report:
    """What :class:`SshRun` tells the user (the command prints it as text or JSON)."""

    def up(self, node: NodeUp) -> None: ...
    def failed(self, host: str, reason: str) -> None: ...
    def lost(self, host: str, reason: str) -> None: ...
    def stopped(self, host: str, pid: int | None, confirmed: bool) -> None: ...
    def note(self, host: str, text: str) -> None: ...
    def summary(self, nodes: list[NodeUp], hosts: int, trust_dir: Path | None) -> None: ...


class TextReport(Report):
    """Nodes up on ``out`` (one line each); failures, notes and the summary on ``err``."""

    def __init__(self, out: Callable[[str], None], err: Callable[[str], None]) -> None:
        self.out, self.err = out, err

    def up(self, node: NodeUp) -> None:
        where = f"at {node.node}" if node.port else f"on {node.address}, dialing its --scheduler"
        self.out(f"{node.host}: node up {where} (pid {node.pid} on {node.hostname}; "
                 f"node key '{node.key}')")

    def failed(self, host: str, reason: str) -> None:
        self.err(f"{host}: {reason}")

    def lost(self, host: str, reason: str) -> None:
        self.err(f"{host}: node lost: {reason}")

    def stopped(self, host: str, pid: int | None, confirmed: bool) -> None:
        if confirmed:
            self.err(f"{host}: node stopped (pid {pid})")
        else:
            self.err(f"{host}: ssh ended; the node (pid {pid}) stops with its session")

    def note(self, host: str, text: str) -> None:
        self.err(f"{host}: {text}")

    def summary(self, nodes: list[NodeUp], hosts: int, trust_dir: Path | None) -> None:
        if not nodes:
            return
        listed = ", ".join(json.dumps(n.node) for n in nodes if n.port)
        trust = (f"; their keys are in {trust_dir / 'nodes'} while they run" if trust_dir
                 else "; trust their keys first: gridlib keys allow 'KEY' --as node")
        use = (f"JobCluster(compute, nodes=[{listed}])" if all(n.port for n in nodes) else
               f"JobCluster(compute, nodes=[{listed}], scheduler_port=PORT), PORT as in "
               f"--scheduler")
        self.err(f"gridlib ssh: {len(nodes)} of {hosts} nodes up{trust}. Use them with "
                 f"{use}. Ctrl-C or SIGTERM stops them.")


class JsonReport(TextReport):
    """One JSON object per line on ``out`` for each host's changes; the rest as text."""

    def up(self, node: NodeUp) -> None:
        self.out(json.dumps({"host": node.host, "status": "up", "node": node.node,
                             "address": node.address, "port": node.port, "pid": node.pid,
                             "key": node.key, "hostname": node.hostname, "dir": node.directory,
                             "python": node.python, "gridlib": node.gridlib}))

    def failed(self, host: str, reason: str) -> None:
        self.out(json.dumps({"host": host, "status": "failed", "reason": reason}))
        super().failed(host, reason)

    def lost(self, host: str, reason: str) -> None:
        self.out(json.dumps({"host": host, "status": "lost", "reason": reason}))
        super().lost(host, reason)

    def stopped(self, host: str, pid: int | None, confirmed: bool) -> None:
        self.out(json.dumps({"host": host, "status": "stopped", "pid": pid,
                             "confirmed": confirmed}))


def write_line(stream: IO[str]) -> Callable[[str], None]:
    """A writer that prints whole lines and flushes (for pipes read line by line)."""
    lock = threading.Lock()

    def write(text: str) -> None:
        with lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass
    return write
