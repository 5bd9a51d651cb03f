"""The private local node a ``JobCluster`` starts when no node answers on this host.

It is a real ``gridlib node`` process that dials the embedded scheduler
directly (no beacon needed), uses all CPUs, keeps its files in a temporary
directory, and exits by itself if the client process dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

__all__ = ["LocalNode", "node_listening"]


def node_listening(host: str = "127.0.0.1", port: int = 51352, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on a node's beacon port here."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalNode:
    """A node process owned by one cluster."""

    def __init__(self, endpoint: str, scheduler_key: bytes, cpus: int = 0,
                 secret: str | None = None, keys: str | None = None, name: str = "") -> None:
        self.directory = tempfile.mkdtemp(prefix="gridlib-local-node-")
        cmd = [
            sys.executable, "-m", "gridlib.daemons.node",
            "--port", "0", "--host", "127.0.0.1",
            "--scheduler", endpoint, "--scheduler-key", scheduler_key.decode(),
            "--dest-path-prefix", self.directory, "--parent-pid", str(os.getpid()),
            "--cpus", str(cpus), "--name", name or socket.gethostname(),
            "--log-level", "warning",
        ]
        env = dict(os.environ)
        env.pop("GRIDLIB_SECRET", None)
        if secret:
            env["GRIDLIB_SECRET"] = secret  # never on the command line
        if keys:
            cmd += ["--keys", str(keys)]
        # its own session: a Ctrl-C meant for the client's terminal is not the node's to take
        # (it still exits with the client: --parent-pid)
        self.process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node (SIGTERM, then SIGKILL) and remove its files."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
