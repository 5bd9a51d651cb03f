"""``gridlib relay``: carry node traffic between subnets through a ZeroMQ proxy.

The relay listens for scheduler beacons like a node does.  For each trusted
scheduler it opens a *bridge*: a CURVE ROUTER for the nodes of its own
subnet (ZAP domain ``gridlib.nodes``) and a CURVE DEALER to the scheduler,
joined by ``zmq.proxy_steerable`` running in C on its own thread.  It then
announces itself to its subnet's nodes with a beacon carrying the
scheduler's id, its own endpoint and its own key.  The scheduler sees the
nodes behind it as route stacks ``[relay, node]``.  Payloads pass through
untouched: the relay never parses anything but beacons.  CURVE is hop by
hop: the relay sees plaintext (docs/architecture.md §4.2, docs/security.md).

A bridge's proxy thread owns its ROUTER, its DEALER and its end of the
control pair, and closes them itself once the proxy stops; the reactor
thread only sends ``TERMINATE`` down the control pair and joins it.  A ZeroMQ
socket is never closed from a thread other than the one using it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from gridlib.protocol.beacon import Beacon
from gridlib.protocol.discovery import BeaconAnnouncer, BeaconListener
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.sockets import (
    bind_any_port,
    curve_client_socket,
    curve_server_socket,
    parse_endpoint,
    tcp_endpoint,
)
from gridlib.protocol.zap import ZapPolicy

__all__ = ["RelayConfig", "RelayService", "NODES_DOMAIN"]

NODES_DOMAIN = "gridlib.nodes"
_LOST_AFTER = 5  # scheduler beacon intervals without a beacon: the bridge is closed
_MAX_BRIDGES = 32  # schedulers bridged at once; beacons are unauthenticated, so bound them
_PROXY_STOP_WAIT = 5.0  # seconds a bridge's proxy thread is given to stop when asked


@dataclass
class RelayConfig:
    hosts: list[str] = field(default_factory=lambda: ["0.0.0.0"])  # where beacons are heard
    port: int = 51352  # 0: one the OS chooses (the same on every host)
    node_targets: list[tuple[str, int]] = field(default_factory=list)
    scheduler: str = ""  # dial this scheduler's node endpoint directly
    scheduler_key: bytes = b""
    #: called once the relay runs, its beacon port bound, with {"beacon": PORT}: how
    #: --port-file learns the port the OS chose for a port 0
    on_listening: Callable[[dict[str, int | None]], None] | None = None


@dataclass
class Bridge:
    """One scheduler reached through this relay."""

    sid: str
    epoch: int
    endpoint: str
    key: bytes
    frontend: zmq.Socket[bytes]  # the proxy thread's: only it closes them
    backend: zmq.Socket[bytes]
    control: zmq.Socket[bytes]  # the reactor thread's end of the proxy's control pair
    thread: threading.Thread
    announcer: BeaconAnnouncer
    interval: float
    last_beacon: float
    dial_out: bool = False


class RelayService:
    """Beacon listener plus one proxied bridge per scheduler."""

    def __init__(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]],
                 identity: Identity, zap: ZapPolicy, config: RelayConfig,
                 log: logging.Logger | None = None) -> None:
        self.reactor, self.context, self.identity, self.config = reactor, context, identity, config
        self.log = log or logging.getLogger("gridlib.relay")
        self.zap = zap
        zap.allow(NODES_DOMAIN, identity.trusted_nodes)
        self.bridges: dict[str, Bridge] = {}
        self.stopping: list[Bridge] = []  # closed bridges whose proxy had not stopped yet
        self.listeners: list[BeaconListener] = []
        self.port = config.port  # the beacon port bound (for a port 0, the one the OS chose)

    def start(self) -> None:
        for host in self.config.hosts:  # every host on the port the first one got
            listener = BeaconListener(self.reactor, self.context, host, self.port,
                                      lambda: self.identity.trusted_clients, self._on_beacon,
                                      self.log)
            self.listeners.append(listener)
            self.port = parse_endpoint(listener.socket.getsockopt_string(zmq.LAST_ENDPOINT))[1]
        if self.config.scheduler:
            key = self.config.scheduler_key
            if not key and len(self.identity.trusted_clients) != 1:
                raise ProtocolError("--scheduler needs --scheduler-key when several keys are trusted")
            key = key or next(iter(self.identity.trusted_clients))
            self._open_bridge(f"relay-{self.config.scheduler}", int(time.time()),
                              self.config.scheduler, key, 2.0, dial_out=True)
        self.reactor.call_every(0.5, self._check)
        self.log.info("event=relay_started hosts=%s port=%d nodes=%d", ",".join(self.config.hosts),
                      self.port, len(self.config.node_targets))
        if self.config.on_listening is not None:
            self.config.on_listening({"beacon": self.port})

    def reload(self, identity: Identity) -> None:
        """New allowlists (SIGHUP); bridges to schedulers no longer trusted are closed."""
        self.identity = Identity(self.identity.keypair, identity.trusted_clients,
                                 identity.trusted_nodes, identity.source)
        self.zap.allow(NODES_DOMAIN, identity.trusted_nodes)
        for bridge in list(self.bridges.values()):
            if not bridge.dial_out and bridge.key not in identity.trusted_clients:
                self._close_bridge(bridge, "key revoked")
        self.log.info("event=allowlist_reloaded")

    def _on_beacon(self, beacon: Beacon) -> None:
        now = time.monotonic()
        bridge = self.bridges.get(beacon.scheduler_id)
        if bridge is not None and bridge.epoch == beacon.epoch:
            bridge.last_beacon = now
            return
        if bridge is not None and now - bridge.last_beacon < 2 * bridge.interval:
            return  # its scheduler still beacons with the old epoch: ignore the newcomer
        if bridge is None and len(self.bridges) >= _MAX_BRIDGES:
            self.log.warning("event=bridge_refused reason='too many bridges' scheduler=%s",
                             beacon.scheduler_id)
            return
        if bridge is not None:
            self._close_bridge(bridge, "scheduler restarted")
        self._open_bridge(beacon.scheduler_id, beacon.epoch, beacon.endpoint, beacon.key,
                          beacon.heartbeat)

    def _open_bridge(self, sid: str, epoch: int, endpoint: str, key: bytes, interval: float,
                     dial_out: bool = False) -> None:
        pair = self.identity.keypair
        frontend = curve_server_socket(self.context, zmq.ROUTER, pair, NODES_DOMAIN)
        port = bind_any_port(frontend, "0.0.0.0")
        backend = curve_client_socket(self.context, zmq.DEALER, pair, key)
        backend.connect(endpoint)
        control = self.context.socket(zmq.PAIR)
        control_peer = self.context.socket(zmq.PAIR)
        name = f"inproc://relay-control-{sid}-{epoch}"
        control.bind(name)
        control_peer.connect(name)
        thread = threading.Thread(target=self._proxy, args=(frontend, backend, control_peer),
                                  name=f"gridlib-relay-{sid[:8]}", daemon=True)
        thread.start()
        announcer = BeaconAnnouncer(self.reactor, self.context, sid, epoch, pair.public, interval,
                                    lambda local: tcp_endpoint(local, port), self.log)
        announcer.announce_to(self.config.node_targets)
        self.bridges[sid] = Bridge(sid, epoch, endpoint, key, frontend, backend, control, thread,
                                   announcer, interval, time.monotonic(), dial_out)
        self.log.info("event=bridge_opened scheduler=%s endpoint=%s node_port=%d", sid, endpoint, port)

    def _proxy(self, frontend: zmq.Socket[bytes], backend: zmq.Socket[bytes],
               control: zmq.Socket[bytes]) -> None:
        """The bridge's thread: runs the proxy until TERMINATE (or the context's end), then
        closes the three sockets it owns."""
        try:
            zmq.proxy_steerable(frontend, backend, None, control)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                self.log.warning("event=proxy_stopped error=%s", exc)
        finally:
            for sock in (frontend, backend, control):
                sock.close(0)

    def _check(self) -> None:
        self._reap()
        now = time.monotonic()
        for bridge in list(self.bridges.values()):
            if not bridge.dial_out and now - bridge.last_beacon > bridge.interval * _LOST_AFTER:
                self._close_bridge(bridge, "no beacon")

    def _close_bridge(self, bridge: Bridge, reason: str) -> None:
        self.log.warning("event=bridge_closed scheduler=%s reason=%r", bridge.sid, reason)
        self.bridges.pop(bridge.sid, None)
        bridge.announcer.close()
        try:
            bridge.control.send(b"TERMINATE", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the proxy has stopped already (its end of the pair is closed)
        bridge.thread.join(_PROXY_STOP_WAIT)
        if bridge.thread.is_alive():
            # its sockets stay its own, closed when it stops; the control end stays open so
            # that the TERMINATE waiting in it is not dropped (closed later by _reap)
            self.log.warning("event=proxy_slow_to_stop scheduler=%s", bridge.sid)
            self.stopping.append(bridge)
        else:
            bridge.control.close(0)

    def _reap(self) -> None:
        """Close the control ends of bridges whose proxy has stopped since it was asked to."""
        for bridge in [b for b in self.stopping if not b.thread.is_alive()]:
            self.stopping.remove(bridge)
            bridge.control.close(0)

    def proxies_running(self) -> bool:
        """Whether a closed bridge's proxy thread still holds its sockets."""
        self._reap()
        return bool(self.stopping)

    def release(self) -> bool:
        """At exit, after :meth:`stop`: close this thread's end of every control pair still
        open.  True if a proxy thread still runs: its sockets are still its own, and only
        terminating the context (ETERM) stops it now."""
        running = self.proxies_running()
        for bridge in self.stopping:
            bridge.control.close(0)
        self.stopping.clear()
        return running

    def stop(self) -> None:
        for bridge in list(self.bridges.values()):
            self._close_bridge(bridge, "relay stopping")
        for listener in self.listeners:
            listener.close()
        self.reactor.stop()
