"""The scheduler's socket shell: sockets, beacons and timers around the core.

The same class runs inside a ``JobCluster``'s I/O thread (its one client
attached on that thread, messages passed as objects) and as the
``gridlib scheduler`` daemon (clients over CURVE TCP).
It owns a ROUTER for nodes (CURVE server, ZAP domain ``gridlib.nodes``),
ROUTERs for clients, and PUB sockets that announce the scheduler to the
beacon port of every candidate node.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from gridlib.protocol.addresses import expand_targets
from gridlib.protocol.codec import Message, decode, encode, error_reply, reply, split_envelope
from gridlib.protocol.discovery import BeaconAnnouncer
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.keys import Identity
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.sockets import (
    DEFAULT_MAX_MSG_SIZE,
    bind_any_port,
    curve_server_socket,
    frame_property,
    frame_user_id,
    local_address_for,
    recv_frames,
    send_frames,
    tcp_endpoint,
)
from gridlib.protocol.zap import ZapPolicy

from .batching import batch_sends
from .core import CLIENT, NODE, Peer, SchedulerCore, Send
from .journal import SchedulerJournal
from .state import SchedulerOptions
from .waiting import node_process_gone

__all__ = ["SchedulerService", "NODES_DOMAIN", "CLIENTS_DOMAIN"]

NODES_DOMAIN = "gridlib.nodes"
CLIENTS_DOMAIN = "gridlib.clients"
_BATCH = 2000  # messages read from one socket per loop turn before others get a go
LOCAL_ROUTE = (b"local",)  # the embedded scheduler's own client
_ROUTES = 10_000  # client routes remembered before those of non-clients are dropped
_LOCAL: Any = object()  # stands for its socket


class SchedulerService:
    """Runs a :class:`SchedulerCore` on a :class:`Reactor`."""

    def __init__(
        self,
        reactor: Reactor,
        context: zmq.Context[zmq.Socket[bytes]],
        identity: Identity,
        zap: ZapPolicy,
        host: str = "127.0.0.1",
        node_port: int = 0,
        liveness: LivenessPolicy | None = None,
        log: logging.Logger | None = None,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        options: SchedulerOptions | None = None,
        journal: SchedulerJournal | None = None,
    ) -> None:
        self.log = log or logging.getLogger("gridlib.scheduler")
        self.reactor, self.context, self.identity = reactor, context, identity
        self.policy = liveness or LivenessPolicy()
        self.journal = journal
        self.scheduler_id = uuid.uuid4().hex
        if journal is not None:  # the same id as before a restart: nodes know it
            self.scheduler_id = journal.scheduler_id(self.scheduler_id)
        self.epoch = time.time_ns() // 1000
        self.core = SchedulerCore(self.scheduler_id, self.policy, log=self.log, options=options,
                                  max_msg_size=max_msg_size)
        if journal is not None:
            clusters, jobs = journal.load()
            self.core.restore(clusters, jobs, time.monotonic())
        zap.allow(NODES_DOMAIN, identity.trusted_nodes)
        zap.allow(CLIENTS_DOMAIN, identity.trusted_clients)
        self.max_msg_size = max_msg_size
        self.zap = zap
        self.node_socket = curve_server_socket(context, zmq.ROUTER, identity.keypair, NODES_DOMAIN,
                                               max_msg_size)
        self._curve_sockets = {self.node_socket}
        if node_port:
            self.node_socket.bind(tcp_endpoint(host, node_port))
            self.node_port = node_port
        else:
            self.node_port = bind_any_port(self.node_socket, host)
        self.host = host
        reactor.add_reader(self.node_socket, lambda: self._read(self.node_socket, NODE))
        self.client_sockets: list[zmq.Socket[bytes]] = []
        self._client_socket_of: dict[tuple[bytes, ...], zmq.Socket[bytes]] = {}
        self.announcer = BeaconAnnouncer(reactor, context, self.scheduler_id, self.epoch,
                                         identity.keypair.public, self.policy.interval,
                                         self._endpoint_via, self.log)
        self._local_client: Callable[[Message], None] | None = None
        self._local_out: deque[Message] = deque()
        self._delivering_local = False
        self._tick_timer = reactor.call_every(self.policy.interval, self._tick)
        # detection of a lost node is accurate to a quarter interval
        self._check_timer = reactor.call_every(self.policy.interval / 4, self._check)
        self.closed = False

    # -- endpoints ----------------------------------------------------------
    def attach_local_client(self, on_message: Callable[[Message], None]) -> Callable[[Message], None]:
        """The embedded scheduler's own client, on the same thread: no socket in between.

        Messages pass as objects, both ways (the client is this process: user
        ``"local"``, nothing to authenticate or decode).  Returns the function
        the client sends with; ``on_message`` gets the scheduler's messages once
        the turn's other sends are out.
        """
        self._local_client = on_message
        self._client_socket_of[LOCAL_ROUTE] = _LOCAL

        def send(msg: Message) -> None:
            if self.closed:
                return
            if msg.type == "DISCOVER":
                self._discover(_LOCAL, LOCAL_ROUTE, msg)
            else:
                self.core.handle(Peer(CLIENT, LOCAL_ROUTE, "local", ""), msg, time.monotonic(),
                                 flush=False)
            self._deliver(self.core.flush())
        return send

    def bind_clients_tcp(self, host: str, port: int) -> int:
        """A CURVE client ROUTER on TCP (the shared scheduler daemon)."""
        sock = curve_server_socket(self.context, zmq.ROUTER, self.identity.keypair, CLIENTS_DOMAIN,
                                   self.max_msg_size)
        self._curve_sockets.add(sock)
        if port:
            sock.bind(tcp_endpoint(host, port))
        else:
            port = bind_any_port(sock, host)
        self._add_client_socket(sock)
        return port

    def _add_client_socket(self, sock: zmq.Socket[bytes]) -> None:
        self.client_sockets.append(sock)
        self.reactor.add_reader(sock, lambda: self._read(sock, CLIENT))

    def _endpoint_via(self, local_address: str) -> str:
        """The node endpoint as reached through one of this host's addresses."""
        if self.host not in ("0.0.0.0", "*", "::"):
            return tcp_endpoint(self.host, self.node_port)
        return tcp_endpoint(local_address, self.node_port)

    def node_endpoint(self, peer_host: str = "127.0.0.1") -> str:
        """The endpoint a node at ``peer_host`` should dial."""
        return self._endpoint_via(local_address_for(peer_host))

    def node_process_gone(self, pid: int, reason: str, cluster_id: str) -> None:
        """The embedded scheduler's client saw its private node exit (I/O thread)."""
        now = time.monotonic()
        self.core.now = now
        node_process_gone(self.core, pid, reason, self.core.clusters.get(cluster_id), now)
        self._deliver(self.core.flush())

    def announce_to(self, targets: list[tuple[str, int]]) -> None:
        """Send beacons to the beacon port of every (host, port) in ``targets``."""
        self.announcer.announce_to(targets)

    # -- loop work ------------------------------------------------------------
    def _tick(self) -> None:
        self._deliver(self.core.tick(time.monotonic()))

    def _check(self) -> None:
        self._deliver(self.core.check(time.monotonic()))

    def _read(self, sock: zmq.Socket[bytes], kind: str) -> None:
        core = self.core
        for _ in range(_BATCH):
            try:
                frames = recv_frames(sock)
            except zmq.Again:
                break
            self._handle_frames(sock, kind, frames)
        self._deliver(core.flush())

    def _handle_frames(self, sock: zmq.Socket[bytes], kind: str, frames: list[Any]) -> None:
        try:
            route, body = split_envelope(frames)
        except ProtocolError:
            self.log.warning("event=dropped_frames kind=%s reason=no_delimiter count=%d", kind, len(frames))
            return
        try:
            msg = decode(body)
        except ProtocolError as exc:
            self.log.warning("event=bad_message kind=%s code=%d reason=%r", kind, exc.code, exc.reason)
            self._send(sock, route, error_reply(None, exc.code, exc.reason))
            return
        # inproc peers are this process's own client: no ZAP runs there
        user = frame_user_id(frames[-1]) or ("local" if sock not in self._curve_sockets else "")
        if kind == CLIENT:
            if route not in self._client_socket_of and len(self._client_socket_of) > _ROUTES:
                self._prune_routes()  # e.g. one-off `gridlib status` callers
            self._client_socket_of[route] = sock
            if msg.type == "DISCOVER":
                self._discover(sock, route, msg)
                return
        address = frame_property(frames[-1], "Peer-Address") if msg.type == "READY" else ""
        self.core.handle(Peer(kind, route, user, address), msg, time.monotonic(), flush=False)

    def _prune_routes(self) -> None:
        """Forget the routes of peers that are not (or no longer) the core's clients."""
        known = set(self.core.clients)
        self._client_socket_of = {r: s for r, s in self._client_socket_of.items()
                                  if r in known or r == LOCAL_ROUTE}

    def _discover(self, sock: zmq.Socket[bytes], route: tuple[bytes, ...], msg: Any) -> None:
        """A client asks the scheduler to announce itself to more nodes."""
        try:
            patterns = [str(p) for p in msg.fields["nodes"]]
            targets = expand_targets(patterns, int(msg.get("port") or 51352))
        except (ValueError, TypeError) as exc:
            self._send(sock, route, error_reply(msg, 400, f"bad node address: {exc}"))
            return
        self.announce_to(targets)
        self._send(sock, route, reply(msg, "OK", {"targets": len(targets)}))

    def _deliver(self, sends: list[Send]) -> None:
        if self.core.persist:  # durable first: acknowledgements go out after the commit
            if self.journal is not None:
                self.journal.apply(self.core.persist)
            self.core.persist.clear()
        for send in batch_sends(sends, self._reads_batches):
            if send.to == NODE:
                self._send(self.node_socket, send.route, send.msg)
            else:
                sock = self._client_socket_of.get(send.route)
                if sock is not None:
                    self._send(sock, send.route, send.msg)
        if self._local_out and not self._delivering_local:
            # after every other send, and never nested: the client may send from its handler
            self._delivering_local = True
            try:
                while self._local_out and self._local_client is not None:
                    self._local_client(self._local_out.popleft())
            finally:
                self._delivering_local = False

    def _reads_batches(self, to: str, route: tuple[bytes, ...]) -> bool:
        """Whether the peer said it reads JOBS_ASSIGN (a node) or JOBS_RESULT (a client over a
        socket; this process's own client gets its results one by one)."""
        core = self.core
        if to == NODE:
            node = core.store.nodes.get(core.store.node_by_route.get(route, ""))
            return node is not None and node.info.get("batches") is True
        client = core.clients.get(route)
        return client is not None and client.batches and self._client_socket_of.get(route) is not _LOCAL

    def _send(self, sock: Any, route: tuple[bytes, ...], msg: Any) -> None:
        if sock is _LOCAL:
            self._local_out.append(msg)
            return
        try:
            send_frames(sock, [*route, b"", *encode(msg)])
        except zmq.ZMQError as exc:  # peer gone, or its queue is full: liveness will tell
            self.log.debug("event=send_failed type=%s error=%s", msg.type, exc)

    def close(self) -> None:
        if self.closed:
            return
        for send in self.core.goodbye():
            if send.to == NODE:
                self._send(self.node_socket, send.route, send.msg)
        self.closed = True
        self.announcer.close()
        self._tick_timer.cancel()
        self._check_timer.cancel()
        self.reactor.remove_reader(self.node_socket)
        self.node_socket.close(200)  # the DISCONNECTs get out
        for sock in self.client_sockets:
            self.reactor.remove_reader(sock)
            sock.close(0)
