"""Discovery without multicast (docs/architecture.md §4.1): announcing and hearing beacons.

:class:`BeaconAnnouncer` connects PUB sockets to the beacon port of every
candidate node (or relay) and sends beacons, fast right after a new
announcement and then once a heartbeat interval.  Targets are grouped by
the local address that reaches them, so each beacon names an endpoint the
receiver can dial.  :class:`BeaconListener` binds the plaintext SUB port of
a node or relay: size-capped, rate-limited, strictly validated, and it
passes on only beacons that name a trusted key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from .beacon import BEACON_TOPIC, MAX_BEACON_BYTES, Beacon, decode_beacon, encode_beacon
from .errors import ProtocolError
from .reactor import Reactor, Timer
from .sockets import bind_any_port, local_address_for, tcp_endpoint

__all__ = ["BeaconAnnouncer", "BeaconListener"]

_FAST_BEACON = 0.1  # seconds between beacons right after an announcement
_FAST_PERIOD = 3.0  # ... for this long, so that nodes join quickly
_RATE = 2000  # beacons a listener parses per second at most (a few us each); the rest are dropped
_SOURCE_RATE = 500.0  # beacons per second from one source address (a burst of twice that)


class BeaconAnnouncer:
    """Sends ``Beacon``s naming ``endpoint_for(local address)`` to every target."""

    def __init__(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]], sid: str,
                 epoch: int, key: bytes, interval: float, endpoint_for: Callable[[str], str],
                 log: logging.Logger | None = None) -> None:
        self.context, self.sid, self.epoch, self.key = context, sid, epoch, key
        self.interval, self.endpoint_for, self.reactor = interval, endpoint_for, reactor
        self.log = log or logging.getLogger("gridlib.discovery")
        self._pubs: dict[str, zmq.Socket[bytes]] = {}  # endpoint announced -> PUB
        self._monitors: list[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]] = []  # (PUB, its monitor)
        #: each target's beacon connection, as its TCP connect saw it: "connected" (something
        #: listens there), "refused" (nothing listens, or the host cannot be reached), or
        #: "trying" (no answer yet)
        self.reach: dict[str, str] = {}
        self._seq = 0
        self._fast_until = 0.0
        self._last_slow = 0.0
        self._timer: Timer = reactor.call_every(_FAST_BEACON, self._send)

    def announce_to(self, targets: list[tuple[str, int]]) -> None:
        for host, port in targets:
            try:
                endpoint = self.endpoint_for(local_address_for(host))
            except OSError as exc:
                self.log.warning("event=beacon_target_unresolved host=%s error=%s", host, exc)
                continue
            pub = self._pubs.get(endpoint)
            if pub is None:
                pub = self.context.socket(zmq.PUB)
                pub.linger = 0
                pub.setsockopt(zmq.SNDHWM, 10)
                pub.setsockopt(zmq.RECONNECT_IVL, 100)
                pub.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
                self._pubs[endpoint] = pub
                self._watch(pub)
            target = tcp_endpoint(host, port)
            self.reach.setdefault(target, "trying")
            try:
                pub.connect(target)
            except zmq.ZMQError as exc:
                self.log.warning("event=beacon_connect_failed host=%s port=%s error=%s", host, port, exc)
        self._fast_until = time.monotonic() + _FAST_PERIOD

    def _send(self) -> None:
        now = time.monotonic()
        if now >= self._fast_until and now - self._last_slow < self.interval:
            return
        self._last_slow = now
        self._seq += 1
        for endpoint, pub in self._pubs.items():
            beacon = Beacon(self.sid, self.epoch, self._seq, endpoint, self.key, self.interval)
            try:
                pub.send_multipart(encode_beacon(beacon), zmq.NOBLOCK)
            except zmq.Again:
                pass

    def _watch(self, pub: zmq.Socket[bytes]) -> None:
        """Follow the PUB's TCP connections: what a user is told when no node answers."""
        events = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED
                  | zmq.EVENT_CLOSED)
        try:
            monitor = pub.get_monitor_socket(events)
        except zmq.ZMQError as exc:  # diagnostics only: announcing works without them
            self.log.debug("event=monitor_failed error=%s", exc)
            return
        self._monitors.append((pub, monitor))
        self.reactor.add_reader(monitor, lambda: self._on_monitor(monitor))

    def _on_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        for _ in range(100):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            endpoint = event.get("endpoint", b"")
            target = endpoint.decode(errors="replace") if isinstance(endpoint, bytes) else str(endpoint)
            if target not in self.reach:
                continue
            kind = event.get("event")
            if kind == zmq.EVENT_CONNECTED:
                self.reach[target] = "connected"
            elif kind in (zmq.EVENT_DISCONNECTED, zmq.EVENT_CLOSED) or (
                    kind == zmq.EVENT_CONNECT_RETRIED and self.reach[target] != "connected"):
                self.reach[target] = "refused"

    def close(self) -> None:
        self._timer.cancel()
        for pub, monitor in self._monitors:
            self.reactor.remove_reader(monitor)
            try:
                pub.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(0)
        self._monitors.clear()
        for pub in self._pubs.values():
            pub.close(0)
        self._pubs.clear()


class BeaconListener:
    """The plaintext beacon port: passes trusted, valid beacons to ``on_beacon``."""

    def __init__(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]], host: str,
                 port: int, trusted: Callable[[], frozenset[bytes]],
                 on_beacon: Callable[[Beacon], None], log: logging.Logger | None = None) -> None:
        self.reactor, self.trusted, self.on_beacon = reactor, trusted, on_beacon
        self.log = log or logging.getLogger("gridlib.discovery")
        sock = context.socket(zmq.SUB)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_BEACON_BYTES)
        sock.setsockopt(zmq.RCVHWM, 100)
        sock.setsockopt(zmq.SUBSCRIBE, BEACON_TOPIC)
        if port:
            sock.bind(tcp_endpoint(host, port))
        else:  # (its port is then LAST_ENDPOINT's)
            bind_any_port(sock, host)
        self.socket = sock
        self._window = (time.monotonic(), 0)
        self._sources: dict[str, tuple[float, float]] = {}  # address -> (tokens, last refill)
        self._refused: set[bytes] = set()
        self.dropped = 0
        self._logged = -100.0
        reactor.add_reader(sock, self._on_readable)

    def _from_source(self, frame: zmq.Frame, now: float) -> bool:
        """Each source address gets its own budget: a flood from one host does not drown
        the beacons of the others (a token bucket per address, bounded in number)."""
        try:
            source = str(frame.get("Peer-Address"))
        except (zmq.ZMQError, AttributeError):
            return True
        tokens, last = self._sources.get(source, (2 * _SOURCE_RATE, now))
        tokens = min(2 * _SOURCE_RATE, tokens + (now - last) * _SOURCE_RATE)
        if len(self._sources) > 4096:
            self._sources.clear()
        if tokens < 1.0:
            self._sources[source] = (tokens, now)
            return False
        self._sources[source] = (tokens - 1.0, now)
        return True

    def _on_readable(self) -> None:
        while True:
            try:
                parts = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            now = time.monotonic()
            start, count = self._window
            if now - start >= 1.0:
                start, count = now, 0
            self._window = (start, count + 1)
            if count >= _RATE or not self._from_source(parts[-1], now):
                self.dropped += 1
                continue
            frames = [part.bytes for part in parts]
            try:
                beacon = decode_beacon(frames)
            except ProtocolError as exc:
                self.dropped += 1
                if now - self._logged >= 10.0:  # a flood of junk must not flood the log
                    self._logged = now
                    self.log.warning("event=bad_beacon reason=%r dropped_total=%d",
                                     exc.reason, self.dropped)
                continue
            if beacon.key not in self.trusted():
                if beacon.key not in self._refused and len(self._refused) < 1000:
                    self._refused.add(beacon.key)
                    self.log.warning("event=beacon_untrusted_key key=%s endpoint=%s",
                                     beacon.key.decode(), beacon.endpoint)
                continue
            self.on_beacon(beacon)

    def close(self) -> None:
        self.reactor.remove_reader(self.socket)
        self.socket.close(0)
