"""How a client's messages reach its scheduler: one interface, two implementations.

- :class:`EmbeddedScheduler` (``JobCluster``): the scheduler runs on the
  client's own I/O thread; messages pass to it as objects, no socket in
  between (docs/architecture.md §7.1).  It also owns the ZAP handler and the
  fail-closed self-test for the node socket it binds.
- :class:`SchedulerLink` (``SharedJobCluster``, ``gridlib status``): a CURVE
  DEALER to a ``gridlib scheduler`` daemon, with a stable routing id so a
  reconnect is the same client.

Both are opened and used on the I/O thread only
(:class:`~gridlib.client_io.ClientConnection`).
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE, Message, encode
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.handshake_watch import HandshakeWatch
from gridlib.protocol.keys import Identity
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.result_batches import split_results
from gridlib.protocol.selftest import prove_fails_closed
from gridlib.protocol.sockets import curve_client_socket, recv_message, send_frames
from gridlib.protocol.zap import ZapHandler, ZapPolicy

__all__ = ["Transport", "EmbeddedScheduler", "SchedulerLink"]

_HANDSHAKE_FAILURES: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the scheduler refused this client's key",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the CURVE handshake with the scheduler failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the CURVE handshake with the scheduler failed (protocol)",
}

Receive = Callable[[Message], None]


class Transport(Protocol):
    """The client's side of its scheduler."""

    #: the embedded ``SchedulerService`` (None for a scheduler daemon)
    scheduler: Any

    def open(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]], identity: Identity,
             receive: Receive, log: logging.Logger) -> None: ...

    def send(self, msg: Message) -> None: ...

    def close(self) -> None: ...


class EmbeddedScheduler:
    """The scheduler in this process: ``JobCluster``'s."""

    def __init__(self, host: str = "127.0.0.1", node_port: int = 0,
                 max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
                 liveness: LivenessPolicy | None = None) -> None:
        self.host, self.node_port, self.max_msg_size = host, node_port, max_msg_size
        self.liveness = liveness or LivenessPolicy()
        self.scheduler: Any = None
        self._zap: ZapHandler | None = None
        self._send: Receive | None = None

    def open(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]], identity: Identity,
             receive: Receive, log: logging.Logger) -> None:
        from gridlib.daemons.scheduler.service import SchedulerService

        zap = ZapPolicy()
        self._zap = ZapHandler(context, zap, log)
        prove_fails_closed(context, self._zap, identity.keypair)
        reactor.add_reader(self._zap.socket, self._zap.handle_ready)
        self.scheduler = SchedulerService(reactor, context, identity, zap, host=self.host,
                                          node_port=self.node_port,
                                          max_msg_size=self.max_msg_size,
                                          liveness=self.liveness, log=log)
        self._send = self.scheduler.attach_local_client(receive)

    def send(self, msg: Message) -> None:
        if self._send is not None:
            self._send(msg)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self._zap is not None:
            self._zap.close()


class SchedulerLink:
    """A CURVE DEALER to a ``gridlib scheduler`` daemon.

    Sends never block the I/O thread: a DEALER with no connection to its
    scheduler (not up yet, or it refused this client's key) would block a send
    for as long as that lasts, and with it every timer of the client.  What
    cannot go now waits here, in order, and is retried; the request that is
    waiting for an answer times out with the reason as usual.
    """

    scheduler: Any = None

    def __init__(self, endpoint: str, key: bytes, max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        self.endpoint, self.key, self.max_msg_size = endpoint, key, max_msg_size
        self.socket: zmq.Socket[bytes] | None = None
        # told (on the I/O thread) why the scheduler cannot be used, as soon as the CURVE
        # handshake fails: a refused key ends the waiting requests at once, not at their timeout
        self.on_failure: Callable[[str], None] | None = None
        self._handshake: HandshakeWatch | None = None
        self._log = logging.getLogger("gridlib.client")
        self._reactor: Reactor | None = None
        self._backlog: deque[tuple[str, list[Any]]] = deque()
        self._retry_in = 0.0

    def open(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]], identity: Identity,
             receive: Receive, log: logging.Logger) -> None:
        self._log, self._reactor = log, reactor
        sock = curve_client_socket(context, zmq.DEALER, identity.keypair, self.key)
        # a stable routing id: after a reconnect the scheduler still knows who we are
        sock.setsockopt(zmq.ROUTING_ID, b"c" + uuid.uuid4().bytes)
        self._watch(reactor, sock)
        sock.connect(self.endpoint)
        self.socket = sock
        reactor.add_reader(sock, lambda: self._read(sock, receive))

    def _watch(self, reactor: Reactor, sock: zmq.Socket[bytes]) -> None:
        """Until a handshake succeeds, a failed one is reported through ``on_failure``."""
        self._handshake = HandshakeWatch.start(reactor, sock, _HANDSHAKE_FAILURES, self._failed)

    def _failed(self, reason: str) -> None:
        if self.on_failure is not None:
            self.on_failure(reason)

    def _read(self, sock: zmq.Socket[bytes], receive: Receive) -> None:
        for _ in range(2000):
            try:
                msg = recv_message(sock)
            except zmq.Again:
                break
            except ProtocolError as exc:
                self._log.warning("event=bad_message reason=%r", exc.reason)
                continue
            if msg.type != "JOBS_RESULT":
                receive(msg)
                continue
            try:  # several results in one message: each as if it had come alone
                results = split_results(msg)
            except ProtocolError as exc:
                self._log.warning("event=bad_message reason=%r", exc.reason)
                continue
            for one in results:
                receive(one)

    def send(self, msg: Message) -> None:
        if self.socket is None:
            return
        try:
            frames = [b"", *encode(msg)]
        except ProtocolError as exc:
            self._log.warning("event=send_failed type=%s error=%s", msg.type, exc)
            return
        self._backlog.append((msg.type, frames))
        if len(self._backlog) == 1:
            self._flush()

    def _flush(self) -> None:
        """Send what waits, in order, without blocking; retry later what cannot go yet."""
        while self._backlog and self.socket is not None:
            mtype, frames = self._backlog[0]
            try:
                send_frames(self.socket, frames)
            except zmq.Again:
                if self._retry_in == 0.0:
                    self._log.info("event=scheduler_not_reachable endpoint=%s waiting=%d",
                                   self.endpoint, len(self._backlog))
                self._retry_in = min(0.5, max(0.01, self._retry_in * 2))
                if self._reactor is not None:
                    self._reactor.call_later(self._retry_in, self._flush)
                return
            except zmq.ZMQError as exc:
                self._log.warning("event=send_failed type=%s error=%s", mtype, exc)
            self._backlog.popleft()
        self._retry_in = 0.0

    def close(self) -> None:
        self._backlog.clear()
        if self._handshake is not None:
            self._handshake.stop()
            self._handshake = None
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None
