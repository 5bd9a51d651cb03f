"""ZAP authentication (RFC 27) with an allowlist of Curve keys (docs/security.md).

:class:`ZapPolicy` is the I/O-free decision: given a domain, a mechanism and
the client's credentials, allow or refuse.  :class:`ZapHandler` is the thin
shell that answers libzmq's requests on ``inproc://zeromq.zap.01``; it is
polled by the owning process's reactor, on the same context as the sockets
it protects.  Anything unknown is refused: the policy fails closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import zmq
from zmq.utils import z85

__all__ = ["ZAP_ENDPOINT", "SELFTEST_DOMAIN", "ZapPolicy", "ZapDecision", "ZapHandler"]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
SELFTEST_DOMAIN = "gridlib.selftest"  # the start-up proof's domain: its refusal is expected


@dataclass(frozen=True, slots=True)
class ZapDecision:
    """A ZAP verdict: status code (200 allow, 400 refuse) and the user id."""

    code: int
    text: str
    user_id: str = ""


class ZapPolicy:
    """Which Curve keys may connect to which ZAP domain."""

    def __init__(self) -> None:
        self._allowed: dict[str, frozenset[bytes]] = {}
        self._null_domains: set[str] = set()

    def allow(self, domain: str, keys: Iterable[bytes]) -> None:
        """Replace the allowlist of ``domain`` by ``keys`` (Z85 public keys)."""
        self._allowed[domain] = frozenset(keys)

    def allow_null(self, domain: str) -> None:
        """Accept unauthenticated (NULL) peers on ``domain``: ``--insecure`` only."""
        self._null_domains.add(domain)

    def decide(self, domain: str, mechanism: str, credentials: list[bytes]) -> ZapDecision:
        if mechanism == "NULL" and domain in self._null_domains:
            return ZapDecision(200, "OK", "anonymous")
        if mechanism != "CURVE":
            return ZapDecision(400, f"mechanism {mechanism} not allowed")
        allowed = self._allowed.get(domain)
        if allowed is None:
            return ZapDecision(400, "unknown domain")
        if len(credentials) != 1 or len(credentials[0]) != 32:
            return ZapDecision(400, "malformed credentials")
        key = z85.encode(credentials[0])
        if key not in allowed:
            return ZapDecision(400, "key not allowed")
        return ZapDecision(200, "OK", key.decode())


class ZapHandler:
    """Answers ZAP requests for one context; bind it before any CURVE server socket."""

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], policy: ZapPolicy,
        log: logging.Logger | None = None,
    ) -> None:
        self.policy = policy
        self.log = log or logging.getLogger("gridlib.zap")
        self.socket: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)
        self.refused = 0
        self._logged = -10.0

    def handle_ready(self) -> None:
        """Answer every pending request (called when the socket is readable)."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._answer(frames)

    def _answer(self, frames: list[bytes]) -> None:
        # [routing id, b"", version, request id, domain, address, identity, mechanism, creds...]
        if len(frames) < 8 or frames[1] != b"" or frames[2] != b"1.0":
            self.log.warning("event=zap_malformed frames=%d", len(frames))
            if len(frames) >= 4:
                self._send(frames[0], frames[3], ZapDecision(500, "malformed request"))
            return
        rid, request_id = frames[0], frames[3]
        domain = frames[4].decode("utf-8", "replace")
        address = frames[5].decode("utf-8", "replace")
        mechanism = frames[7].decode("utf-8", "replace")
        decision = self.policy.decide(domain, mechanism, frames[8:])
        if decision.code != 200:
            self.refused += 1
        now = time.monotonic()
        if decision.code != 200 and domain != SELFTEST_DOMAIN and now - self._logged >= 1.0:
            self._logged = now  # at most one line a second: strangers cannot flood the log
            self.log.warning(
                "event=auth_refused domain=%s address=%s mechanism=%s reason=%r",
                domain, address, mechanism, decision.text,
            )
        self._send(rid, request_id, decision)

    def _send(self, rid: bytes, request_id: bytes, decision: ZapDecision) -> None:
        self.socket.send_multipart(
            [rid, b"", b"1.0", request_id, str(decision.code).encode(),
             decision.text.encode(), decision.user_id.encode(), b""]
        )

    def close(self) -> None:
        self.socket.close(0)
