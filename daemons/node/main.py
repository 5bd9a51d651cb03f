"""Running a node daemon in this process: context, reactor, signals."""

from __future__ import annotations

import logging
import signal

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

from .service import NodeConfig, NodeService

__all__ = ["run_node"]


def run_node(config: NodeConfig, identity: Identity) -> int:
    """Run a node until SIGINT/SIGTERM or, for a private node, until its parent exits."""
    log = logging.getLogger("gridlib.node")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    node = NodeService(reactor, context, identity, config, log)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        reactor.call_soon_threadsafe(node.stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        node.start()
        reactor.run()
    finally:
        node.stop()
        reactor.close()
        context.term()
    return 0
