"""``gridlib scheduler``: the shared scheduler daemon (docs/operations.md §12).

The same :class:`~.service.SchedulerService` as a ``JobCluster`` embeds,
with clients on a CURVE TCP port (``gridlib.clients``), an optional journal,
and allowlists reloaded on SIGHUP.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from gridlib.protocol.keys import Identity
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.selftest import prove_fails_closed
from gridlib.protocol.zap import ZapHandler, ZapPolicy

from ..signals import handle_signals
from .journal import SchedulerJournal
from .service import CLIENTS_DOMAIN, NODES_DOMAIN, SchedulerService
from .state import SchedulerOptions

__all__ = ["SchedulerConfig", "run_scheduler"]


@dataclass
class SchedulerConfig:
    host: str = "0.0.0.0"
    client_port: int = 51350
    node_port: int = 51351
    node_targets: list[tuple[str, int]] = field(default_factory=list)
    options: SchedulerOptions = field(default_factory=SchedulerOptions)
    journal: str = ""
    heartbeat: float = 2.0
    httpd: bool = False  #: serve the web monitor (docs/monitor.md)
    http_host: str = "127.0.0.1"
    http_port: int = 8181
    #: called once every socket is bound, with the ports by name ("client", "node" and, with
    #: httpd, "http"; the ones the OS chose for a port 0): how --port-file learns them
    on_listening: Callable[[dict[str, int | None]], None] | None = None


def run_scheduler(config: SchedulerConfig, identity: Identity,
                  reload: Callable[[], Identity] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; SIGHUP reloads the allowlists through ``reload``."""
    log = logging.getLogger("gridlib.scheduler")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reactor = Reactor(log)
    policy = ZapPolicy()
    zap = ZapHandler(context, policy, log)
    journal = SchedulerJournal(config.journal) if config.journal else None
    monitor: Any = None
    try:
        prove_fails_closed(context, zap, identity.keypair)
        reactor.add_reader(zap.socket, zap.handle_ready)
        service = SchedulerService(reactor, context, identity, policy, host=config.host,
                                   node_port=config.node_port,
                                   liveness=LivenessPolicy(config.heartbeat), log=log,
                                   options=config.options, journal=journal)
        client_port = service.bind_clients_tcp(config.host, config.client_port)
        service.announce_to(config.node_targets)

        def apply(fresh: Identity) -> None:
            policy.allow(NODES_DOMAIN, fresh.trusted_nodes)
            policy.allow(CLIENTS_DOMAIN, fresh.trusted_clients)
            log.info("event=allowlist_reloaded")

        handle_signals(reactor, reactor.stop, apply, reload, log)
        if config.httpd:
            monitor = _start_monitor(service, config, log)
        log.info("event=scheduler_started sid=%s clients=%s:%d nodes=%s:%d policy=%s journal=%s",
                 service.scheduler_id, config.host, client_port, config.host,
                 service.node_port, config.options.policy, config.journal or "-")
        if config.on_listening is not None:
            bound: dict[str, int | None] = {"client": client_port, "node": service.node_port}
            if monitor is not None:
                bound["http"] = monitor.port
            config.on_listening(bound)
        gc.freeze()  # start-up objects live forever: the collector need not scan them again
        reactor.run()
        service.close()
    finally:
        if monitor is not None:
            monitor.shutdown()
        zap.close()
        reactor.close()
        context.destroy(linger=0)
        if journal is not None:
            journal.close()
    return 0


def _start_monitor(service: SchedulerService, config: SchedulerConfig,
                   log: logging.Logger) -> Any:
    """The web monitor on its own thread; the URL (with the token) goes to the log."""
    from gridlib.daemons.monitor.httpd import (
        HTTPServer,  # only when asked for: no http.server otherwise
    )

    from .monitor import SchedulerSource

    monitor = HTTPServer(SchedulerSource(service), host=config.http_host, port=config.http_port)
    log.info("event=httpd_started url=%s", monitor.url)
    return monitor
