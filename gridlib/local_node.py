"""The private local node a ``JobCluster`` starts when no node answers on this host.

It is a real ``gridlib node`` process that dials the embedded scheduler
directly (no beacon needed), uses all CPUs, keeps its files (and its log) in
a temporary directory, and exits by itself if the client process dies.  If
it exits while the cluster runs (or cannot start at all), :meth:`exited`
says so with the last lines of its log, and the cluster ends the jobs that
were waiting for it with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from gridlib.protocol.sockets import zeromq_greets

__all__ = ["LocalNode", "node_listening"]


def node_listening(host: str = "127.0.0.1", port: int = 51352, timeout: float = 0.5,
                   greeting_timeout: float = 2.0) -> bool:
    """True if a ZeroMQ socket -- a node's beacon port -- accepts connections at ``host:port``
    (not merely something accepting TCP: ``protocol.sockets.zeromq_greets``)."""
    return not zeromq_greets(host, port, timeout, greeting_timeout)


class LocalNode:
    """A node process owned by one cluster."""

    def __init__(self, endpoint: str, scheduler_key: bytes, cpus: int = 0,
                 secret: str | None = None, keys: str | None = None, name: str = "") -> None:
        self.directory = tempfile.mkdtemp(prefix="gridlib-local-node-")
        self.log_path = Path(self.directory) / "node.log"
        cmd = [
            sys.executable, "-m", "gridlib.daemons.node",
            "--port", "0", "--host", "127.0.0.1",
            "--scheduler", endpoint, "--scheduler-key", scheduler_key.decode(),
            "--dest-path-prefix", str(Path(self.directory) / "node"), "--parent-pid", str(os.getpid()),
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
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=self.directory)
        self.pid = self.process.pid
        self.stopping = False

    def exited(self) -> str | None:
        """None while the node runs; once it has exited, why (its exit status and last log lines)."""
        code = self.process.poll()
        if code is None or self.stopping:
            return None
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the private local node (pid {self.pid}) exited ({status}){self.last_lines()}"

    def last_lines(self, count: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return (": " + " | ".join(line.strip() for line in lines[-count:])) if lines else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node (SIGTERM, then SIGKILL) and remove its files."""
        self.stopping = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
