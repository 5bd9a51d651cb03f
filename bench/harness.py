"""What the measurement scripts share: finding a run's stray processes, node addresses."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from tests.helpers import NodeProcess

__all__ = ["strays", "node_address"]


def strays(tmp: Path) -> list[str]:
    """Processes still alive that belong to a run (its directory in argv or environment).

    Forkservers and resource trackers do not name the directory on their
    command line, but inherit ``GRIDLIB_CONFIG_DIR`` from their node.
    """
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid == os.getpid() or proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info.get("cmdline") or [])
        try:
            env = proc.environ().get("GRIDLIB_CONFIG_DIR", "")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            env = ""
        if str(tmp) in cmdline or env.startswith(str(tmp)):
            found.append(f"{proc.pid}: {cmdline[:120]}")
    return found


def node_address(node: NodeProcess) -> str:
    return f"127.0.0.1:{node.port}"
