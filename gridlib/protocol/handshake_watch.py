"""Say at once why a new CURVE link cannot work, instead of letting its requests time out.

libzmq retries a failed connection or handshake quietly for ever; its socket
monitor is the only place that says so.  A :class:`HandshakeWatch` reads that
monitor on the reactor's thread until the socket's first handshake succeeds,
and reports the first failure it sees (an event named in ``failures``) with
the reason given there.  Either ends the watch: a link that worked once is
then watched by its heartbeats.  The client's link to a shared scheduler and
a node's links to schedulers both use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import zmq
from zmq.utils.monitor import recv_monitor_message

from .reactor import Reactor

__all__ = ["HandshakeWatch"]


class HandshakeWatch:
    """Watches ``sock`` until its first handshake succeeds or fails (see the module's text)."""

    def __init__(self, reactor: Reactor, sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes],
                 failures: Mapping[int, str], on_failure: Callable[[str], None]) -> None:
        self._reactor, self._sock = reactor, sock
        self._monitor: zmq.Socket[bytes] | None = monitor
        self._failures, self._on_failure = failures, on_failure
        reactor.add_reader(monitor, self._on_event)

    @classmethod
    def start(cls, reactor: Reactor, sock: zmq.Socket[bytes], failures: Mapping[int, str],
              on_failure: Callable[[str], None]) -> HandshakeWatch | None:
        """A watch on ``sock`` (before it connects), or None when libzmq cannot monitor it:
        the watch is diagnostics only, and the caller's timeouts still apply."""
        try:
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | sum(failures))
        except zmq.ZMQError:
            return None
        return cls(reactor, sock, monitor, failures, on_failure)

    def _on_event(self) -> None:
        while (monitor := self._monitor) is not None:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except (zmq.Again, zmq.ZMQError):
                return
            kind = event.get("event")
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.stop()
            elif kind in self._failures:
                self.stop()
                self._on_failure(self._failures[kind])

    def stop(self) -> None:
        """End the watch (again: nothing); the socket itself stays open."""
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        self._reactor.remove_reader(monitor)
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass  # (the socket was closed first)
        monitor.close(0)
