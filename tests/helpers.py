"""Test helpers: free ports, polling with a deadline, node daemons stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil


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


def run_script(args: list[str], timeout: float,
               leftovers: Callable[[int], list[psutil.Process]]) -> tuple[int, str, str, bool]:
    """Run ``python ARGS`` in its own session; (exit status, stdout, stderr, nothing left).

    Past ``timeout`` its whole process group is killed and the test fails.
    ``leftovers(pid)`` names processes the script should have stopped (e.g. its
    private node): they get 15 s to go by themselves, then are killed by PID.
    """
    import pytest

    proc = subprocess.Popen([sys.executable, *args], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{args[0]} did not finish in {timeout} s\n{stdout}\n{stderr}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        gone = wait_for(lambda: not leftovers(proc.pid), timeout=15)
        for stray in leftovers(proc.pid):
            stray.kill()
    return proc.returncode, stdout, stderr, gone


LIVE: list[NodeProcess | SchedulerProcess] = []  # stopped at the end of the session at the latest


class _Daemon:
    """A daemon process whose output goes to a log file we can read."""

    log_path: Path
    _log: Any
    proc: subprocess.Popen[bytes]
    pid: int

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _launch(self, cmd: list[str], started: str, what: str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> None:
        """Start ``cmd`` and wait (with a deadline) for one more ``started`` line in the log."""
        starts = self.log().count(started)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.pid = self.proc.pid
        ok = wait_for(lambda: self.log().count(started) > starts or self.proc.poll() is not None, 30)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"{what} did not start:\n" + self.log())

    def _start(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Kill it (as a crash would) if it runs, then start it again with the same options."""
        if self.proc.poll() is None:
            self.kill()
        self._start()

    def _terminate(self) -> None:
        """SIGTERM, and SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NodeProcess(_Daemon):
    """A ``gridlib node`` daemon started as a real process; stopped by PID.

    ``restart()`` starts it again with the same port and directory (so the
    same node id and result spool); every process it ever had, workers
    included, is tracked and killed at ``stop()`` if still alive.  ``cwd``
    is the daemon's working directory (default: the test's own).
    """

    def __init__(self, port: int, tmp: Path, *extra: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.port, self.tmp, self.extra, self.env, self.cwd = port, tmp, extra, env, cwd
        self.log_path = tmp / f"node-{port}.log"
        self.prefix = tmp / f"node-{port}"
        self._seen: dict[int, psutil.Process] = {}
        self.orphans: list[int] = []
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        LIVE.append(self)
        self._start()

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "gridlib.daemons.node", "--host", "127.0.0.1",
               "--port", str(self.port), "--dest-path-prefix", str(self.prefix),
               "--log-level", "info", *self.extra]
        self._launch(cmd, "event=node_started", "node", env={**os.environ, **(self.env or {})},
                     cwd=self.cwd)
        self._seen[self.pid] = psutil.Process(self.pid)

    def track(self) -> None:
        """Remember the node's current descendants (workers, forkserver)."""
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                self._seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def signal(self, sig: int) -> None:
        self.track()
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        self.signal(signal.SIGKILL)
        self.proc.wait(15)

    def stop(self) -> None:
        """SIGTERM; then give every process it had 10 s to exit by itself.

        Survivors are recorded in ``orphans`` (a test asserts there are none)
        and then killed, by PID, so that no test leaves processes behind.
        """
        self.track()
        self._terminate()
        wait_for(lambda: not self.leftovers(), 10, interval=0.05)
        self.orphans = self.leftovers()
        for pid in self.orphans:
            try:
                self._seen[pid].kill()
            except psutil.NoSuchProcess:
                pass
        self._log.close()

    def leftovers(self) -> list[int]:
        """PIDs of this node's processes still alive (should be none after stop)."""
        alive = []
        for proc in self._seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        return alive


class SchedulerProcess(_Daemon):
    """A ``gridlib scheduler`` daemon as a real process on loopback; stopped by PID."""

    def __init__(self, tmp: Path, *extra: str, nodes: list[str] | None = None,
                 journal: Path | None = None) -> None:
        self.port, self.node_port = free_port(), free_port()
        self.tmp, self.extra, self.nodes, self.journal = tmp, extra, nodes or [], journal
        self.log_path = tmp / f"scheduler-{self.port}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        LIVE.append(self)
        self._start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "gridlib.daemons.scheduler", "--host", "127.0.0.1",
               "--port", str(self.port), "--node-port", str(self.node_port), "--log-level", "info",
               *(a for n in self.nodes for a in ("--node", n)), *self.extra]
        if self.journal is not None:
            cmd += ["--journal", str(self.journal)]
        self._launch(cmd, "event=scheduler_started", "scheduler")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(15)

    def stop(self) -> None:
        self._terminate()
        self._log.close()
