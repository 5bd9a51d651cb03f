"""A node's state directory (``--dest-path-prefix``): who owns it, its node id, ``--clean``.

A node holds an exclusive ``flock`` on ``PREFIX/node.pid`` (which holds its
PID) for as long as it runs.  The kernel releases the lock when the process
dies, however it dies, so a lock that is held means a live node: a second
node on the same prefix refuses to start instead of sharing the spool and
the node id.  ``--clean`` stops that live node -- only after checking with
psutil that the holder really is a process of this user with that very file
open, so a PID written by a long-gone node and since reused is never
signalled -- then kills whatever job processes are still running in the
prefix's cluster directories and removes those directories.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import psutil

from gridlib.protocol.errors import GridError

__all__ = ["PID_FILE", "PrefixBusy", "PrefixLock", "prepare_prefix", "load_node_id", "clean_prefix"]

PID_FILE = "node.pid"
_STOP_WAIT = 10.0  # seconds a stale node gets to stop after SIGTERM, before SIGKILL


class PrefixBusy(GridError):
    """Another live node holds the prefix (or the prefix cannot be used)."""


def prepare_prefix(prefix: Path) -> None:
    """Create the prefix (0700) and refuse one that another user could tamper with."""
    try:
        prefix.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = prefix.stat()
    except OSError as exc:
        raise PrefixBusy(f"cannot use {prefix}: {exc.strerror}") from None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PrefixBusy(f"{prefix} must be owned by this user and not writable by others "
                         f"(it holds spooled results and job files)")


def load_node_id(prefix: Path) -> str:
    """The node's persistent id (``PREFIX/node_id``), created on first use."""
    path = prefix / "node_id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except OSError:
        pass
    value = uuid.uuid4().hex
    path.write_text(value)
    return value


class PrefixLock:
    """The ``node.pid`` lock of one prefix."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.path = prefix / PID_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our PID, or raise :class:`PrefixBusy` naming the holder."""
        prepare_prefix(self.prefix)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_pid(self.path)
            raise PrefixBusy(f"another node (pid {pid or '?'}) is running with --dest-path-prefix "
                             f"{self.prefix}; stop it, give this node another prefix (or "
                             f"--port), or start it with --clean to stop the old one") from None
        self.fd = fd
        self.write_pid()

    def write_pid(self) -> None:
        """Record this process's PID (again after ``--daemon`` forks: the lock is inherited)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Empty the file and drop the lock; the file stays, so no second node can
        lock a file that a third one has already replaced."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _locked(path: Path) -> bool:
    """Whether some process holds the lock on ``path`` now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def live_node(prefix: Path) -> psutil.Process | None:
    """The live node that holds ``prefix``, verified; None when no process holds it.

    Raises :class:`PrefixBusy` when the lock is held by a process we cannot
    prove is a gridlib node of this user with the PID file open.
    """
    path = prefix / PID_FILE
    if not _locked(path):
        return None
    pid = read_pid(path)
    try:
        if pid is None:
            raise psutil.NoSuchProcess(0)
        proc = psutil.Process(pid)
        if proc.uids().real != os.getuid():
            raise psutil.AccessDenied(pid)
        target = path.resolve()
        if not any(Path(f.path) == target for f in proc.open_files()):
            raise psutil.NoSuchProcess(pid)
    except (psutil.Error, OSError):
        raise PrefixBusy(f"{path} is locked, but not by a gridlib node of this user that psutil "
                         f"can verify (pid {pid or '?'}): not killing anything; stop the node "
                         f"that uses {prefix} by hand") from None
    return proc


def _stop_node(proc: psutil.Process, log: logging.Logger) -> list[int]:
    """SIGTERM the node (it kills its jobs), SIGKILL it and its processes if it lingers."""
    family = [proc]
    try:
        family += proc.children(recursive=True)
    except psutil.Error:
        pass
    log.warning("event=clean_stopping_node pid=%d processes=%d", proc.pid, len(family))
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        pass
    for p in _wait_gone([proc], _STOP_WAIT):
        _kill(p)
    for p in family:
        if _alive(p):  # is_running() inside rules out a reused PID
            _kill(p)
    _wait_gone(family, 5)
    return [p.pid for p in family]


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a dead process its parent has not reaped yet)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _kill(proc: psutil.Process) -> None:
    try:
        proc.kill()
    except psutil.Error:
        pass


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process is gone (zombies count as gone); returns the survivors."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)  # polling other users' children: nothing to wait on
        alive = [p for p in alive if _alive(p)]
    return alive


def _job_processes(clusters: Path) -> list[psutil.Process]:
    """This user's processes whose working directory is inside ``clusters``: jobs of a stale node."""
    found = []
    uid, me = os.getuid(), os.getpid()
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == me or proc.uids().real != uid:
                continue
            cwd = Path(proc.cwd().removesuffix(" (deleted)"))
        except (psutil.Error, OSError):
            continue
        if cwd == clusters or cwd.is_relative_to(clusters):
            found.append(proc)
    return found


def _kill_job_processes(prefix: Path, log: logging.Logger) -> list[int]:
    """Kill leftover job processes, each with its process group when it leads one (a worker)."""
    procs = _job_processes((prefix / "clusters").resolve())
    own_group = os.getpgrp()
    for proc in procs:
        log.warning("event=clean_killing_job_process pid=%d", proc.pid)
        try:
            group = os.getpgid(proc.pid)
            if group == proc.pid and group != own_group:
                os.killpg(group, signal.SIGKILL)  # a worker: its job's children go with it
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    _wait_gone(procs, 5)
    return [p.pid for p in procs]


def clean_prefix(prefix: Path, log: logging.Logger) -> list[int]:
    """``--clean``: stop the node holding ``prefix``, kill its leftover jobs, remove its job files.

    The node id and the result spool stay: a cleaned node is the same node,
    and results not yet acknowledged are still delivered.  Returns the PIDs
    signalled.
    """
    prepare_prefix(prefix)
    killed = []
    proc = live_node(prefix)
    if proc is not None:
        killed += _stop_node(proc, log)
    killed += _kill_job_processes(prefix, log)
    shutil.rmtree(prefix / "clusters", ignore_errors=True)
    log.info("event=cleaned prefix=%s processes=%d", prefix, len(killed))
    return killed
