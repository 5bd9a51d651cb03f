"""The socket policy every process applies (docs/architecture.md §1.2).

Bound request sockets are CURVE servers with a ZAP domain, enforced, set
before ``bind``; connecting sockets are CURVE clients that must know the
server's key.  TCP sockets get libzmq heartbeats and a message size cap.
"""

from __future__ import annotations

import ipaddress
import socket as pysocket
from typing import Any

import zmq

from .codec import DEFAULT_MAX_MSG_SIZE, Message, decode, split_envelope
from .keys import KeyPair

__all__ = [
    "send_frames",
    "recv_frames",
    "recv_message",
    "DEFAULT_MAX_MSG_SIZE",
    "curve_server_socket",
    "curve_client_socket",
    "tcp_endpoint",
    "bind_any_port",
    "WELL_KNOWN_PORTS",
    "zeromq_greets",
    "parse_endpoint",
    "local_address_for",
    "frame_property",
    "frame_user_id",
]



def _common(sock: zmq.Socket[bytes], max_msg_size: int) -> None:
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, max_msg_size)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 15000)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)


def curve_server_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    kind: int,
    keypair: KeyPair,
    zap_domain: str,
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
) -> zmq.Socket[bytes]:
    """A socket that will only accept CURVE peers the ZAP handler allows."""
    sock = context.socket(kind)
    _common(sock, max_msg_size)
    sock.curve_server = True
    sock.curve_secretkey = keypair.secret
    sock.curve_publickey = keypair.public
    sock.zap_domain = zap_domain.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    if kind == zmq.ROUTER:
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    return sock


def curve_client_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    kind: int,
    keypair: KeyPair,
    server_key: bytes,
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
) -> zmq.Socket[bytes]:
    """A socket that talks only to the server holding ``server_key``."""
    sock = context.socket(kind)
    _common(sock, max_msg_size)
    sock.curve_secretkey = keypair.secret
    sock.curve_publickey = keypair.public
    sock.curve_serverkey = server_key
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    return sock


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://host:port``, bracketing IPv6 literals."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


# The ports gridlib's daemons listen on by default: a shared scheduler's client and node
# ports, a node's beacon port.  A port the OS picks for a socket of ours is never one of them.
WELL_KNOWN_PORTS = frozenset({51350, 51351, 51352})


def bind_any_port(sock: zmq.Socket[bytes], host: str) -> int:
    """Bind ``sock`` on ``host`` to a port the OS chooses, never one of ``WELL_KNOWN_PORTS``,
    and return it.  (The OS picks from a range that holds them: a client's embedded
    scheduler bound to 51352 would look like a running node to every JobCluster on the
    host, which would then use it instead of starting its own node.)"""
    prefix = tcp_endpoint(host, 0)[:-2]
    unwanted: list[str] = []  # kept bound while retrying, so the OS offers another port
    try:
        for _ in range(len(WELL_KNOWN_PORTS) + 1):
            port = sock.bind_to_random_port(prefix)
            if port not in WELL_KNOWN_PORTS:
                return port
            last = sock.getsockopt(zmq.LAST_ENDPOINT)
            unwanted.append(last.decode() if isinstance(last, bytes) else str(last))
        raise zmq.ZMQBindError(f"no free port on {host} outside {sorted(WELL_KNOWN_PORTS)}")
    finally:
        for endpoint in unwanted:
            sock.unbind(endpoint)


_ZMTP_SIGNATURE_LENGTH = 10  # a ZeroMQ peer's first bytes: 0xFF, 8 bytes, 0x7F


def zeromq_greets(host: str, port: int, timeout: float = 0.5, greeting_timeout: float = 2.0) -> str:
    """Why ``host:port`` is not a ZeroMQ socket accepting connections ("" when it is).

    Not merely something that accepts TCP there: a connection to a free port of the OS's
    ephemeral range can be a socket connected to itself (TCP's simultaneous open, when the
    OS picks that very port as the source), and another program may hold the port.  A
    ZeroMQ peer greets first, at once, with its signature.
    """
    not_zeromq = "something accepts connections there but does not speak ZeroMQ"
    try:
        sock = pysocket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return str(exc.strerror or exc)
    greeting = b""
    with sock:
        if sock.getsockname() == sock.getpeername():
            return "nothing listens there (the connection reached itself)"
        sock.settimeout(greeting_timeout)
        try:
            while len(greeting) < _ZMTP_SIGNATURE_LENGTH:
                chunk = sock.recv(_ZMTP_SIGNATURE_LENGTH - len(greeting))
                if not chunk:
                    break
                greeting += chunk
        except OSError:  # (no greeting in time, or the connection reset)
            return not_zeromq
    if len(greeting) == _ZMTP_SIGNATURE_LENGTH and greeting[0] == 0xFF and greeting[-1] == 0x7F:
        return ""
    return not_zeromq


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp://host:port`` -> (host, port); raises ValueError otherwise."""
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"not a tcp endpoint: {endpoint!r}")
    rest = endpoint[6:]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad endpoint: {endpoint!r}")
    return host.strip("[]"), int(port)


def local_address_for(peer: str) -> str:
    """The local IP this host uses to reach ``peer`` (no packet is sent)."""
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        ip = ipaddress.ip_address(pysocket.gethostbyname(peer))
    if ip.is_loopback:
        return str(ip) if ip.version == 4 else "::1"
    family = pysocket.AF_INET6 if ip.version == 6 else pysocket.AF_INET
    with pysocket.socket(family, pysocket.SOCK_DGRAM) as s:
        try:
            s.connect((str(ip), 9))  # UDP connect only selects a route
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def frame_property(frame: zmq.Frame, name: str) -> str:
    """A metadata property of a received frame ("" when the transport has none)."""
    try:
        value = frame.get(name)
    except zmq.ZMQError:
        return ""
    return value if isinstance(value, str) else ""


def frame_user_id(frame: zmq.Frame) -> str:
    """The ZAP ``User-Id`` of the peer that sent ``frame`` ("" when none)."""
    return frame_property(frame, "User-Id")


# plain ints: pyzmq's Flag enums cost an enum operation per frame on the hot path
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK) | int(zmq.SNDMORE)


def send_frames(sock: zmq.Socket[bytes], frames: list[Any]) -> None:
    """``send_multipart(frames, NOBLOCK, copy=False)`` without the per-frame overhead.

    libzmq queues a multipart message atomically: only the first frame can
    raise ``zmq.Again`` (the peer's queue is full), and then nothing was sent.
    """
    send = sock.send
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        send(frame, _NOBLOCK_MORE if i < last else _NOBLOCK, copy=False)


def recv_frames(sock: zmq.Socket[bytes]) -> list[zmq.Frame]:
    """``recv_multipart(NOBLOCK, copy=False)``, reading ``more`` off each frame."""
    recv = sock.recv
    frame: zmq.Frame = recv(_NOBLOCK, copy=False)
    frames = [frame]
    while frame.more:
        frame = recv(_NOBLOCK, copy=False)
        frames.append(frame)
    return frames


def recv_message(sock: zmq.Socket[bytes]) -> Message:
    """The next message on a DEALER, decoded (its envelope's routes dropped).

    Raises ``zmq.Again`` when none waits, :class:`ProtocolError` for a malformed one
    (which is consumed: the next call reads the one after it).
    """
    _, body = split_envelope(recv_frames(sock))
    return decode(body)
