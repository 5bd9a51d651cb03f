"""Running a node daemon in this process: context, reactor, signals, the prefix lock."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

from ..signals import handle_signals
from .config import NodeConfig
from .memory import retain_large_buffers
from .prefix import PrefixLock
from .shell import NodeService

__all__ = ["run_node"]


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
