"""What the measurement scripts share: a run's directory and stray processes, node addresses,
the JSON report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import NodeProcess, wait_for

__all__ = ["strays", "node_address", "revision", "isolated_run", "end_run", "write_json"]


def revision() -> str:
    """The repository's commit, "+changes" if the working tree differs (or "unknown")."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def isolated_run(prefix: str) -> Path:
    """A temporary directory for one run, with a throwaway key (never the user's own)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["GRIDLIB_CONFIG_DIR"] = str(tmp / "config")
    os.environ.pop("GRIDLIB_SECRET", None)
    return tmp


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


def end_run(tmp: Path) -> list[str]:
    """The run's processes still alive 15 s after it ended (each "PID: command"); its
    directory is removed."""
    wait_for(lambda: not strays(tmp), 15, interval=0.1)
    left = strays(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    return left


def write_json(path: str | None, report: Any) -> None:
    """``report`` to ``path`` (indented, a newline at the end); nothing without a path."""
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def node_address(node: NodeProcess) -> str:
    return f"127.0.0.1:{node.port}"
