"""Running a node daemon in this process: context, reactor, signals."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

from ..signals import handle_signals
from .memory import retain_large_buffers
from .service import NodeConfig, NodeService

__all__ = ["run_node"]


def run_node(config: NodeConfig, identity: Identity,
             reload: Callable[[], Identity] | None = None) -> int:
    """Run a node until SIGINT/SIGTERM or, for a private node, until its parent exits.

    SIGHUP reloads the allowlists through ``reload`` (keys trusted from now on).
    """
    log = logging.getLogger("gridlib.node")
    retain_large_buffers()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    node = NodeService(reactor, context, identity, config, log)

    handle_signals(reactor, node.stop, node.reload, reload, log)
    try:
        node.start()
        gc.freeze()  # start-up objects live forever: the collector need not scan them again
        reactor.run()
    finally:
        node.stop()
        reactor.close()
        context.destroy(linger=0)
    return 0
