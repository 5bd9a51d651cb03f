"""Running a relay in this process: context, ZAP handler, reactor, signals."""

from __future__ import annotations

import logging
import threading
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
        if relay.release():
            _terminate(context, log)
        else:  # every socket left is this thread's
            context.destroy(linger=0)
    return 0


def _terminate(context: zmq.Context[zmq.Socket[bytes]], log: logging.Logger,
               wait: float = 5.0) -> None:
    """End the context while a proxy thread still holds its sockets: destroying it would
    close them from this thread.  Terminating it instead makes the proxy return (ETERM) and
    close them itself; in a helper thread, so that a socket left open cannot hang the exit."""
    term = threading.Thread(target=context.term, name="gridlib-relay-term", daemon=True)
    term.start()
    term.join(wait)
    if term.is_alive():
        log.warning("event=context_not_terminated hint='a proxy thread did not stop'")
