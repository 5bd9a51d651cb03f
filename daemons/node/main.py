"""Running a node daemon in this process: context, reactor, signals."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

from .service import NodeConfig, NodeService

__all__ = ["run_node"]


def run_node(config: NodeConfig, identity: Identity,
             reload: Callable[[], Identity] | None = None) -> int:
    """Run a node until SIGINT/SIGTERM or, for a private node, until its parent exits.

    SIGHUP reloads the allowlists through ``reload`` (keys trusted from now on).
    """
    log = logging.getLogger("gridlib.node")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    node = NodeService(reactor, context, identity, config, log)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        reactor.call_soon_threadsafe(node.stop)

    def on_hup(_signum: int, _frame: object) -> None:
        if reload is not None:
            reactor.call_soon_threadsafe(lambda: node.reload(reload()))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        node.start()
        reactor.run()
    finally:
        node.stop()
        reactor.close()
        context.destroy(linger=0)
    return 0
