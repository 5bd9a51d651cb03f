"""Running a node daemon in this process: context, reactor, signals, the prefix lock."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

from ..signals import handle_signals
from .config import NodeConfig
from .memory import retain_large_buffers
from .prefix import PrefixLock, prepare_prefix
from .shell import NodeService

__all__ = ["run_node", "confine_imports"]

_SAFEPATH_MARK = "GRIDLIB_NODE_SET_PYTHONSAFEPATH"  # the node set PYTHONSAFEPATH: workers unset it


def confine_imports(workdir: Path) -> None:
    """Nothing is imported from the directory the node was started in (docs/security.md §3).

    The forkserver that starts workers runs ``python -c``, which puts its
    working directory first on ``sys.path``: a ``msgpack.py`` or a ``gridlib/``
    planted where an operator starts a node would run in every worker.  So
    the node works in its own state directory (0700, only its user writes
    there), drops the start directory from its own path, and (Python 3.11+)
    sets ``PYTHONSAFEPATH`` so that no child puts its working directory on
    ``sys.path``; workers unset it again before they run jobs, so a program
    job imports its siblings as usual.
    """
    try:
        start = os.getcwd()
    except OSError:
        start = ""
    sys.path[:] = [p for p in sys.path if p not in ("", ".", start)]
    if "PYTHONSAFEPATH" not in os.environ:
        os.environ["PYTHONSAFEPATH"] = "1"
        os.environ[_SAFEPATH_MARK] = "1"
    os.chdir(workdir)


def run_node(config: NodeConfig, identity: Identity,
             reload: Callable[[], Identity] | None = None, lock: PrefixLock | None = None,
             started: Callable[[str], None] | None = None) -> int:
    """Run a node until it is stopped; returns the exit status.

    SIGTERM stops it at once (running jobs are killed); SIGINT drains it
    (running jobs finish, no new ones start) and then stops it, and a second
    SIGINT stops it at once.  A client's private node (``parent_pid``) stops
    at once on either, and when its parent exits.  SIGHUP reloads the
    allowlists through ``reload``.  ``lock`` (already acquired) is released
    at the end; ``started("")`` is called once the node runs, or
    ``started(reason)`` if it cannot start (``--daemon`` reports it).
    """
    log = logging.getLogger("gridlib.node")
    retain_large_buffers()
    prefix = config.prefix_path()
    prepare_prefix(prefix)
    confine_imports(prefix)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    node: NodeService | None = None
    try:
        node = NodeService(reactor, context, identity, config, log)
        handle_signals(reactor, node.stop, node.reload, reload, log,
                       interrupt=node.interrupt)
        node.start()
        if started is not None:
            started("")
        gc.freeze()  # start-up objects live forever: the collector need not scan them again
        reactor.run()
    except Exception as exc:
        if started is not None:
            started(f"{type(exc).__name__}: {exc}")  # a no-op once it was called with ""
        raise
    finally:
        if node is not None:
            node.stop()
        reactor.close()
        context.destroy(linger=0)
        if lock is not None:
            lock.release()
    return 0
