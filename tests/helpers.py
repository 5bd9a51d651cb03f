"""Test helpers: free ports, polling with a deadline, node daemons stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout``; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class NodeProcess:
    """A ``gridlib node`` daemon started as a real process; stopped by PID."""

    def __init__(self, port: int, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log_path = tmp / f"node-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", "gridlib.daemons.node", "--host", "127.0.0.1",
               "--port", str(port), "--dest-path-prefix", str(tmp / f"node-{port}"),
               "--log-level", "info", *extra]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.pid = self.proc.pid
        if not wait_for(lambda: "event=node_started" in self.log() or self.proc.poll() is not None, 30):
            raise RuntimeError("node did not start:\n" + self.log())
        if self.proc.poll() is not None:
            raise RuntimeError("node exited:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
