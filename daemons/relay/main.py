"""Running a relay in this process: context, ZAP handler, reactor, signals."""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.selftest import prove_fails_closed
from gridlib.protocol.zap import ZapHandler, ZapPolicy

from ..signals import handle_signals
from .service import RelayConfig, RelayService

__all__ = ["run_relay"]


def run_relay(config: RelayConfig, identity: Identity,
              reload: Callable[[], Identity] | None = None) -> int:
    """Run a relay until SIGINT/SIGTERM; SIGHUP reloads its allowlists through ``reload``."""
    log = logging.getLogger("gridlib.relay")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    policy = ZapPolicy()
    zap = ZapHandler(context, policy, log)
    prove_fails_closed(context, zap, identity.keypair)
    reactor.add_reader(zap.socket, zap.handle_ready)
    relay = RelayService(reactor, context, identity, policy, config, log)

    handle_signals(reactor, relay.stop, relay.reload, reload, log)
    try:
        relay.start()
        reactor.run()
    finally:
        zap.close()
        reactor.close()
        context.destroy(linger=0)
    return 0
