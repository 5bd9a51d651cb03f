"""ZAP (docs/security.md): the allowlist policy, and a real CURVE server that refuses unknown keys."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq
from zmq.utils import z85

from gridlib.protocol.keys import KeyPair, generate_keypair
from gridlib.protocol.sockets import curve_client_socket, curve_server_socket, frame_user_id
from gridlib.protocol.zap import ZapHandler, ZapPolicy

ALLOWED = generate_keypair()
STRANGER = generate_keypair()


def raw(pair: KeyPair) -> bytes:
    """The 32-byte public key as libzmq passes it in a ZAP request."""
    return z85.decode(pair.public)


@pytest.fixture
def policy() -> ZapPolicy:
    p = ZapPolicy()
    p.allow("gridlib.nodes", [ALLOWED.public])
    return p


# -- the policy -----------------------------------------------------------------------


def test_allowed_key_is_accepted_with_its_z85_key_as_user_id(policy: ZapPolicy) -> None:
    decision = policy.decide("gridlib.nodes", "CURVE", [raw(ALLOWED)])

    assert decision.code == 200
    assert decision.user_id == ALLOWED.public.decode()


def test_unknown_key_is_refused(policy: ZapPolicy) -> None:
    decision = policy.decide("gridlib.nodes", "CURVE", [raw(STRANGER)])

    assert decision.code == 400
    assert decision.user_id == ""


def test_a_key_allowed_on_one_domain_is_refused_on_another(policy: ZapPolicy) -> None:
    policy.allow("gridlib.clients", [STRANGER.public])

    assert policy.decide("gridlib.clients", "CURVE", [raw(ALLOWED)]).code == 400
    assert policy.decide("gridlib.clients", "CURVE", [raw(STRANGER)]).code == 200


def test_unknown_domain_is_refused(policy: ZapPolicy) -> None:
    assert policy.decide("gridlib.other", "CURVE", [raw(ALLOWED)]).code == 400
    assert policy.decide("", "CURVE", [raw(ALLOWED)]).code == 400


def test_allow_replaces_the_allowlist(policy: ZapPolicy) -> None:
    policy.allow("gridlib.nodes", [STRANGER.public])

    assert policy.decide("gridlib.nodes", "CURVE", [raw(ALLOWED)]).code == 400
    assert policy.decide("gridlib.nodes", "CURVE", [raw(STRANGER)]).code == 200


def test_an_empty_allowlist_refuses_everyone(policy: ZapPolicy) -> None:
    policy.allow("gridlib.nodes", [])

    assert policy.decide("gridlib.nodes", "CURVE", [raw(ALLOWED)]).code == 400


@pytest.mark.parametrize("mechanism", ["NULL", "PLAIN", "GSSAPI", "curve", ""])
def test_other_mechanisms_are_refused(policy: ZapPolicy, mechanism: str) -> None:
    assert policy.decide("gridlib.nodes", mechanism, []).code == 400
    assert policy.decide("gridlib.nodes", mechanism, [raw(ALLOWED)]).code == 400


def test_null_is_accepted_only_on_a_domain_marked_insecure(policy: ZapPolicy) -> None:
    policy.allow_null("gridlib.insecure")

    accepted = policy.decide("gridlib.insecure", "NULL", [])
    assert accepted.code == 200
    assert accepted.user_id == "anonymous"
    assert policy.decide("gridlib.nodes", "NULL", []).code == 400
    assert policy.decide("gridlib.insecure", "PLAIN", [b"user", b"pass"]).code == 400


@pytest.mark.parametrize(
    "credentials",
    [[], [b""], [b"\x00" * 31], [b"\x00" * 33], [ALLOWED.public], [raw(ALLOWED), raw(ALLOWED)]],
    ids=["none", "empty", "31-bytes", "33-bytes", "z85-instead-of-raw", "two-keys"],
)
def test_malformed_credentials_are_refused(policy: ZapPolicy, credentials: list[bytes]) -> None:
    assert policy.decide("gridlib.nodes", "CURVE", credentials).code == 400


# -- a real CURVE server ----------------------------------------------------------------

SERVER = generate_keypair()
DOMAIN = "gridlib.test"


class CurveServer:
    """A ZAP handler and a CURVE ROUTER on 127.0.0.1, both polled by the test itself."""

    def __init__(self, allowed: list[bytes]) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        policy = ZapPolicy()
        policy.allow(DOMAIN, allowed)
        self.zap = ZapHandler(self.context, policy)
        self.router = curve_server_socket(self.context, zmq.ROUTER, SERVER, DOMAIN)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.poller = zmq.Poller()
        self.poller.register(self.zap.socket, zmq.POLLIN)
        self.poller.register(self.router, zmq.POLLIN)
        self.clients: list[zmq.Socket[bytes]] = []

    def client(self, pair: KeyPair) -> zmq.Socket[bytes]:
        sock = curve_client_socket(self.context, zmq.DEALER, pair, SERVER.public)
        sock.connect(f"tcp://127.0.0.1:{self.port}")
        self.clients.append(sock)
        return sock

    def receive(self, timeout: float) -> list[zmq.Frame] | None:
        """Serve ZAP requests until a message reaches the ROUTER or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(self.poller.poll(max(1, int(left * 1000))))
            if self.zap.socket in ready:
                self.zap.handle_ready()
            if self.router in ready:
                return self.router.recv_multipart(copy=False)
        return None

    def close(self) -> None:
        for sock in [*self.clients, self.router]:
            sock.close(0)
        self.zap.close()
        self.context.destroy(linger=0)


@pytest.fixture
def server() -> Iterator[CurveServer]:
    s = CurveServer([ALLOWED.public])
    yield s
    s.close()


def test_allowed_client_is_served_and_identified_by_its_key(server: CurveServer) -> None:
    client = server.client(ALLOWED)
    client.send_multipart([b"", b"hello"])

    frames = server.receive(timeout=5.0)

    assert frames is not None
    assert [f.bytes for f in frames[1:]] == [b"", b"hello"]
    assert frame_user_id(frames[-1]) == ALLOWED.public.decode()
    server.router.send_multipart([frames[0].bytes, b"", b"welcome"])
    assert client.poll(5000) == zmq.POLLIN
    assert client.recv_multipart() == [b"", b"welcome"]
    assert server.zap.refused == 0


def test_unknown_client_never_gets_a_message_through(server: CurveServer) -> None:
    client = server.client(STRANGER)
    client.send_multipart([b"", b"rm -rf /"])

    assert server.receive(timeout=1.0) is None
    assert server.zap.refused >= 1  # the handshake reached ZAP and was refused there
    assert client.poll(0) == 0


def test_allowed_client_still_served_after_a_stranger_was_refused(server: CurveServer) -> None:
    server.client(STRANGER).send_multipart([b"", b"intruder"])
    server.client(ALLOWED).send_multipart([b"", b"friend"])

    frames = server.receive(timeout=5.0)

    assert frames is not None
    assert frames[-1].bytes == b"friend"
    assert frame_user_id(frames[-1]) == ALLOWED.public.decode()
    assert server.receive(timeout=0.3) is None
