"""``--daemon``: run the node in the background, detached from the terminal.

The classic double fork: the first child starts a new session (no
controlling terminal), the second -- the daemon -- can never acquire one.
The daemon's stdin is ``/dev/null`` and its stdout and stderr (so its log)
go to a file.  The command the user typed waits until the daemon reports
its PID (printed with the log's path) and that it started, so a node that
cannot start still fails in the terminal with a non-zero status.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["detach"]

_START_WAIT = 120.0  # seconds the terminal waits for the daemon to say it started


def detach(log_path: Path, what: str = "gridlib node") -> Callable[[str], None]:
    """Become a daemon logging to ``log_path``; returns ``started(error="")``.

    The calling process never returns from here: it prints the daemon's PID
    and log path, waits for ``started`` to be called (or the daemon to die)
    and exits 0 on success, 1 otherwise.  Call before any thread or zmq
    context exists; paths in the configuration must be absolute (the daemon
    works in ``/``).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        _wait_for_daemon(first, read_fd, log_path, what)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.write(write_fd, f"pid {os.getpid()}\n".encode())
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)

    def started(error: str = "") -> None:
        nonlocal write_fd
        if write_fd < 0:
            return
        try:
            os.write(write_fd, (f"error {error}\n" if error else "ok\n").encode())
        except OSError:
            pass  # the terminal side is gone: nobody to tell
        os.close(write_fd)
        write_fd = -1

    return started


def _wait_for_daemon(child: int, read_fd: int, log_path: Path, what: str) -> None:
    """The terminal side: relay what the daemon says, then exit with its verdict."""
    os.waitpid(child, 0)  # the first child exits as soon as it has forked the daemon
    status, buffer = 1, b""
    deadline = time.monotonic() + _START_WAIT
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([read_fd], [], [], left)[0]:
            print(f"{what}: the daemon has not reported after {_START_WAIT:.0f} s; it may still "
                  f"be starting: see {log_path}", file=sys.stderr, flush=True)
            os._exit(1)
        chunk = os.read(read_fd, 4096)
        if not chunk:  # EOF: the daemon closed its end, or died
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            word, _, rest = line.decode(errors="replace").strip().partition(" ")
            if word == "pid":
                print(f"{what}: daemon pid {rest}, log {log_path}", flush=True)
            elif word == "ok":
                os._exit(0)
            elif word == "error":
                print(f"{what}: {rest}", file=sys.stderr, flush=True)
    print(f"{what}: the daemon did not start; see {log_path}", file=sys.stderr, flush=True)
    os._exit(status)
