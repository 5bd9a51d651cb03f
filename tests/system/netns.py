"""Test hosts in network namespaces that the test itself creates.

Hosts get addresses in 198.51.100.0/24 and 203.0.113.0/24 only.  Each
subnet is a bridge inside a private "switch" namespace; each host is a
namespace joined to one or more bridges by veth pairs.  Every process a
test starts in a host is tracked by PID and killed at cleanup, and every
namespace is deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import stop_process_trees

__all__ = ["Lab", "netns_unavailable"]


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def netns_unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"glprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace: {exc}"
    return ""


class Lab:
    """A set of namespaced hosts and subnets, removed at ``cleanup()``."""

    def __init__(self, tmp: Path) -> None:
        self.tag = f"g{os.getpid() % 100000}"
        self.tmp = tmp
        self.switch = f"{self.tag}-sw"
        self.namespaces: list[str] = []
        self.processes: list[psutil.Process] = []
        self._links = 0
        self._add_ns(self.switch)

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "set", "lo", "up", ns=name)

    def subnet(self, name: str) -> str:
        bridge = f"br{name}"
        _ip("link", "add", bridge, "type", "bridge", ns=self.switch)
        _ip("link", "set", bridge, "up", ns=self.switch)
        return bridge

    def host(self, name: str, *links: tuple[str, str], gateway: str | None = None) -> str:
        """A host with one interface per (bridge, "address/prefix")."""
        ns = f"{self.tag}-{name}"
        self._add_ns(ns)
        for i, (bridge, address) in enumerate(links):
            self._links += 1
            outer, inner = f"{self.tag}v{self._links}", f"{self.tag}h{self._links}"
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", outer, "netns", self.switch)
            _ip("link", "set", outer, "master", bridge, ns=self.switch)
            _ip("link", "set", outer, "up", ns=self.switch)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", inner, "name", f"eth{i}", ns=ns)
            _ip("addr", "add", address, "dev", f"eth{i}", ns=ns)
            _ip("link", "set", f"eth{i}", "up", ns=ns)
        if gateway:
            _ip("route", "add", "default", "via", gateway, ns=ns)
        return ns

    def sh(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                              timeout=60, check=check)

    def start(self, ns: str, args: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        """Run ``python args...`` in host ``ns``, output to ``log``; tracked by PID."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *args],
                                    stdout=out, stderr=subprocess.STDOUT, **kw)
        self.processes.append(psutil.Process(proc.pid))
        return proc

    def node(self, ns: str, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{name}.log"
        proc = self.start(ns, ["-m", "gridlib.daemons.node", "--name", name, "--cpus", "1",
                               "--dest-path-prefix", str(self.tmp / name), *extra], log)
        return proc, log

    def stop_processes(self) -> None:
        """Stop every process started in the lab so far, and its children, by PID: all of
        them signalled first, then 10 s for all of them together, then SIGKILL."""
        stop_process_trees(self.processes, 10.0)  # our daemons and all they started, by PID
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop_processes()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
