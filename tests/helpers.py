"""Test helpers: polling with a deadline, daemons started on ports the OS chooses (read from
their ``--port-file``) and stopped by PID, scripts run with a deadline."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil


def free_port() -> int:
    """A port nothing listens on right now (it may be taken by the time it is used).

    Only for what must have a number before anything binds it: an address where
    nothing should listen, a client's fixed ``scheduler_port``, a ``node_port``
    where no node may answer.  A daemon never gets one: it binds port 0 and reports
    the port it got (``--port-file``; see :class:`NodeProcess`).
    """
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


def is_private_node_of(cmdline: list[str], pid: int) -> bool:
    """Whether ``cmdline`` is a node a cluster in process ``pid`` started (``--parent-pid PID``)."""
    return "--parent-pid" in cmdline and cmdline[cmdline.index("--parent-pid") + 1:][:1] == [str(pid)]


def private_nodes_of(pid: int) -> list[psutil.Process]:
    """The node processes a cluster in process ``pid`` started (``run_script``'s ``leftovers``)."""
    return [proc for proc in psutil.process_iter(["cmdline"])
            if is_private_node_of(proc.info["cmdline"] or [], pid)]


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


LIVE: list[_Daemon] = []  # stopped at the end of the session at the latest
_SERIAL = itertools.count(1)  # names a daemon's log (and a node's directory) before its ports are known
PORT_FILE_WAIT = 60.0  # seconds a daemon gets to bind its sockets and write its port file


def read_port_file(path: Path, proc: subprocess.Popen[Any], what: str = "daemon",
                   output: Callable[[], str] = lambda: "",
                   timeout: float = PORT_FILE_WAIT) -> dict[str, Any]:
    """Wait for the ``--port-file`` of ``proc`` and return it: ``{"pid": PID, "ports": {...}}``.

    The daemon writes it (atomically, so it is never seen half-written) once every socket
    it binds is bound and its start line is logged.  If ``proc`` exits first, or nothing
    comes within ``timeout`` s, this fails with ``output()`` (the daemon's log).
    """
    def ready() -> bool:
        return proc.poll() is not None or _port_file_of(path, proc.pid) is not None

    wait_for(ready, timeout, interval=0.02)
    found = _port_file_of(path, proc.pid)
    if found is None:
        status = proc.poll()
        why = (f"exited with status {status}" if status is not None else
               f"wrote no port file in {timeout:.0f} s")
        raise RuntimeError(f"{what} (pid {proc.pid}) {why} before reporting its ports in "
                           f"{path}:\n{output()}")
    return found


def _port_file_of(path: Path, pid: int) -> dict[str, Any] | None:
    """The port file at ``path`` if process ``pid`` wrote it (a restart's old one is not)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("pid") == pid else None


class _Daemon:
    """A daemon process whose output goes to a log file we can read, started with
    ``--port-file``: its ports are read from there, never guessed in advance."""

    log_path: Path
    port_file: Path
    ports: dict[str, Any]
    port: int
    _log: Any
    proc: subprocess.Popen[bytes]
    pid: int

    def _files(self, tmp: Path, kind: str) -> int:
        """Its log and port file under ``tmp`` (named ``kind-N``), tracked in ``LIVE``; returns N."""
        serial = next(_SERIAL)
        self.log_path = tmp / f"{kind}-{serial}.log"
        self.port_file = tmp / f"{kind}-{serial}.ports.json"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        LIVE.append(self)
        return serial

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _launch(self, cmd: list[str], what: str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> None:
        """Start ``cmd --port-file F`` and wait (with a deadline) for F; fail with the log if
        the process exits first."""
        try:
            self.port_file.unlink()  # a previous run's (a restart): never read it
        except FileNotFoundError:
            pass
        self.proc = subprocess.Popen([*cmd, "--port-file", str(self.port_file)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.pid = self.proc.pid
        try:
            self.ports = read_port_file(self.port_file, self.proc, what, self.log)["ports"]
        except RuntimeError:
            if self.proc.poll() is None:  # stuck: by PID, like every clean-up here
                self.proc.kill()
                self.proc.wait()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._terminate()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(15)

    def restart(self) -> None:
        """Kill it (as a crash would) if it runs, then start it again with the same options
        and on the same ports (clients and nodes know them)."""
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

    ``NodeProcess(tmp, *options)`` starts it with ``--port 0``: the node binds a beacon
    port the OS chooses and reports it in its port file; ``port`` is that port (0 for a
    node that only dials out: ``--port 0 --scheduler ...``).  ``restart()`` starts it
    again on the same port and directory (so the same node id and result spool); every
    process it ever had, workers included, is tracked and killed at ``stop()`` if still
    alive.  ``cwd`` is the daemon's working directory (default: the test's own);
    ``prefix`` its ``--dest-path-prefix`` (default: a fresh ``tmp/node-N``).

    The older form ``NodeProcess(PORT, tmp, *options)`` (bench/ uses it) asks for that port.
    """

    def __init__(self, tmp: Path | int, *extra: str, port: int = 0,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 prefix: Path | None = None) -> None:
        if isinstance(tmp, int):  # NodeProcess(PORT, tmp, *options)
            port, tmp, extra = tmp, Path(extra[0]), extra[1:]
        self.port, self.tmp, self.extra, self.env, self.cwd = port, tmp, extra, env, cwd
        serial = self._files(tmp, "node")
        self.prefix = prefix or tmp / f"node-{serial}"
        self._seen: dict[int, psutil.Process] = {}
        self.orphans: list[int] = []
        self._start()

    def _command(self) -> list[str]:
        """How the node is started (the module; a subclass may use the console script)."""
        return [sys.executable, "-m", "gridlib.daemons.node"]

    def _start(self) -> None:
        cmd = [*self._command(), "--host", "127.0.0.1", "--port", str(self.port),
               "--dest-path-prefix", str(self.prefix), "--log-level", "info", *self.extra]
        self._launch(cmd, "node", env={**os.environ, **(self.env or {})}, cwd=self.cwd)
        self.port = int(self.ports.get("beacon") or 0)  # the next start asks for the same one
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
    """A ``gridlib scheduler`` daemon as a real process on loopback; stopped by PID.

    It binds its client and node ports (and, with ``--httpd``, the monitor's unless
    ``--http-port`` is given) where the OS chooses and reports them in its port file:
    ``port``, ``node_port`` and ``http_port``.  ``restart()`` asks for the same ones
    again (its clients reconnect there).  ``nodes`` are announced to: start those
    nodes first and pass their addresses.
    """

    def __init__(self, tmp: Path, *extra: str, nodes: list[str] | None = None,
                 journal: Path | None = None) -> None:
        self.port, self.node_port, self.http_port = 0, 0, 0
        self.tmp, self.extra, self.nodes, self.journal = tmp, extra, nodes or [], journal
        self._files(tmp, "scheduler")
        self._start()

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "gridlib.daemons.scheduler", "--host", "127.0.0.1",
               "--port", str(self.port), "--node-port", str(self.node_port), "--log-level", "info",
               *(a for n in self.nodes for a in ("--node", n))]
        if "--httpd" in self.extra:
            cmd += ["--http-port", str(self.http_port)]  # (an --http-port in extra wins)
        cmd += self.extra
        if self.journal is not None:
            cmd += ["--journal", str(self.journal)]
        self._launch(cmd, "scheduler")
        self.port, self.node_port = int(self.ports["client"]), int(self.ports["node"])
        self.http_port = int(self.ports.get("http") or 0)


class RelayProcess(_Daemon):
    """A ``gridlib relay`` on loopback; its beacon port (``port``) is chosen by the OS and
    read from its port file.  Stopped by PID."""

    def __init__(self, tmp: Path, *extra: str, nodes: list[str] | None = None) -> None:
        self.port, self.tmp, self.extra, self.nodes = 0, tmp, extra, nodes or []
        self._files(tmp, "relay")
        self._start()

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "gridlib.daemons.relay", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "info",
               *(a for n in self.nodes for a in ("--node", n)), *self.extra]
        self._launch(cmd, "relay")
        self.port = int(self.ports["beacon"])


@contextlib.contextmanager
def far_node(tmp: Path, *extra: str) -> Iterator[NodeProcess]:
    """A ``gridlib node`` whose working directory is an empty directory of its own (a job
    finds nothing of the client's there: code and files must be shipped), stopped by PID at
    the end; none of its processes may outlive it."""
    home = tmp / "node-home"
    home.mkdir()
    node = NodeProcess(tmp, *extra, cwd=home)
    try:
        yield node
    finally:
        node.stop()
    assert not node.orphans, f"processes of the node outlived it: {node.orphans}"


def stop_process_trees(processes: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGTERM to each process and its descendants (by PID), all signalled first; those still
    alive ``grace`` seconds later get SIGKILL."""
    everyone: list[psutil.Process] = []
    for proc in processes:
        try:
            everyone += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for member in everyone:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(everyone, timeout=grace)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
