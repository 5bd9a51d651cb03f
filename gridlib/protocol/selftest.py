"""The start-up proof that authentication fails closed (docs/security.md §5).

Before a process serves anything it binds a CURVE server socket exactly as
its real ones are made, has a client with a fresh unknown key connect and
send a probe, and refuses to run unless ZAP refused that client and the
probe never arrived.  A broken libzmq build, a missing ZAP handler or a
policy that lets strangers in is caught here, not by an attacker.
"""

from __future__ import annotations

import time

import zmq

from .errors import AuthenticationFailed
from .keys import KeyPair, generate_keypair
from .sockets import bind_any_port, curve_client_socket, curve_server_socket
from .zap import SELFTEST_DOMAIN, ZapHandler

__all__ = ["prove_fails_closed"]


def prove_fails_closed(context: zmq.Context[zmq.Socket[bytes]], zap: ZapHandler,
                       keypair: KeyPair, timeout: float = 10.0) -> None:
    """Raise :class:`AuthenticationFailed` unless an unknown key is refused."""
    zap.policy.allow(SELFTEST_DOMAIN, {keypair.public})
    server = curve_server_socket(context, zmq.ROUTER, keypair, SELFTEST_DOMAIN)
    client = curve_client_socket(context, zmq.DEALER, generate_keypair(), keypair.public)
    try:
        port = bind_any_port(server, "127.0.0.1")
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send_multipart([b"", b"probe"], zmq.NOBLOCK)  # queued until the handshake
        refused = zap.refused
        poller = zmq.Poller()
        poller.register(zap.socket, zmq.POLLIN)
        poller.register(server, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        settle: float | None = None
        while time.monotonic() < deadline:
            ready = dict(poller.poll(20))
            if server in ready:
                raise AuthenticationFailed("self-test failed: a peer with an unknown key got through")
            if zap.socket in ready:
                zap.handle_ready()
            if zap.refused > refused:
                settle = settle or time.monotonic() + 0.05  # let a wrongly accepted probe show up
                if time.monotonic() >= settle:
                    return
        raise AuthenticationFailed("self-test failed: ZAP never refused the unknown key")
    finally:
        client.close(0)
        server.close(0)
