"""Everything a job starts ends with it (docs/security.md §3).

A job may start processes that leave its process group (``setsid``,
``start_new_session=True``, a daemon that double-forks).  Two kernel tools
keep them from outliving the job, without cgroups:

- the worker is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): whatever
  the job starts stays the worker's descendant even when its parent exits;
- when a job ends, the worker sweeps its descendants (:func:`sweep`); when
  the node kills a worker (cancel, timeout, teardown), it first freezes and
  kills the worker's whole tree (:func:`kill_tree`).

Linux only; elsewhere these are no-ops and only the process group is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["become_subreaper", "sweep", "kill_tree", "descendants"]

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (one pass)."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first)."""
    tree = _children_map()
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(pid: int, include_root: bool = True) -> int:
    """SIGKILL ``pid``'s descendants (and ``pid``): frozen first so none forks away meanwhile.

    Returns how many descendants were found.
    """
    seen: set[int] = set()
    for _ in range(5):  # a process may fork between a scan and its SIGSTOP: scan again
        fresh = [p for p in descendants(pid) if p not in seen]
        if not fresh:
            break
        _signal_all(fresh, signal.SIGSTOP)
        seen.update(fresh)
    _signal_all(list(seen), signal.SIGKILL)
    if include_root:
        _signal_all([pid], signal.SIGKILL)
    return len(seen)


def sweep() -> int:
    """In a worker, after a job: kill whatever the job left running, and reap it.

    Costs one ``waitpid`` when the job started nothing that is still around.
    """
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return 0  # no child at all: nothing to sweep
    killed = kill_tree(os.getpid(), include_root=False)
    while True:  # reap what we killed (and what had already exited)
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    return killed
