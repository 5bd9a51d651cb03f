"""The relay's bridges: a proxy thread's sockets are closed on that thread, never from the loop.

A bridge is opened and closed on a real context and reactor (no peer needed);
the sockets record the thread that closes them.  ``zmq.proxy_steerable`` is
held back to play a proxy that does not stop within the relay's wait, or
replaced by a blocking call that only the context's end (ETERM) interrupts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from gridlib.daemons.relay import service
from gridlib.daemons.relay.main import _terminate
from gridlib.daemons.relay.service import RelayConfig, RelayService
from gridlib.protocol.keys import Identity, generate_keypair
from gridlib.protocol.reactor import Reactor
from gridlib.protocol.zap import ZapPolicy

SID = "0123456789abcdef"


class _Socket(zmq.Socket):  # type: ignore[type-arg]
    closed_on: list[str]

    def close(self, linger: int | None = None) -> None:
        if not self.closed:
            self.closed_on = [*getattr(self, "closed_on", []), threading.current_thread().name]
        super().close(linger)


class _Context(zmq.Context):  # type: ignore[type-arg]
    _socket_class = _Socket


@pytest.fixture
def relay() -> Iterator[RelayService]:
    context = _Context()
    reactor = Reactor()
    relay = RelayService(reactor, context, Identity(generate_keypair()), ZapPolicy(),
                         RelayConfig(node_targets=[]))
    yield relay
    reactor.close()
    context.term()  # every socket must be closed by now (term would hang otherwise)


def _bridge(relay: RelayService) -> Any:
    relay._open_bridge(SID, 1, "tcp://127.0.0.1:9", generate_keypair().public, 1.0)
    return relay.bridges[SID]


def test_a_stopped_proxy_closed_its_own_sockets(relay: RelayService) -> None:
    bridge = _bridge(relay)
    proxy_thread = bridge.thread.name
    relay._close_bridge(bridge, "test")
    assert not bridge.thread.is_alive()
    assert bridge.frontend.closed and bridge.backend.closed and bridge.control.closed
    assert bridge.frontend.closed_on == bridge.backend.closed_on == [proxy_thread]
    assert not relay.proxies_running()


def test_a_proxy_slow_to_stop_keeps_its_sockets_until_it_stops(
        relay: RelayService, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    proxy = zmq.proxy_steerable

    def slow_proxy(*sockets: Any) -> Any:
        release.wait(30)
        return proxy(*sockets)

    monkeypatch.setattr(zmq, "proxy_steerable", slow_proxy)
    monkeypatch.setattr(service, "_PROXY_STOP_WAIT", 0.2, raising=False)
    bridge = _bridge(relay)
    try:
        relay._close_bridge(bridge, "test")  # the join times out: the proxy still runs
        assert bridge.thread.is_alive()
        assert not bridge.frontend.closed and not bridge.backend.closed  # not closed under it
        assert relay.proxies_running()
    finally:
        release.set()  # the proxy starts, finds TERMINATE waiting, stops, closes its sockets
    bridge.thread.join(10)
    assert not bridge.thread.is_alive()
    assert bridge.frontend.closed_on == bridge.backend.closed_on == [bridge.thread.name]
    assert not relay.proxies_running()  # and the loop's end of the control pair is closed
    assert bridge.control.closed


def test_at_exit_a_stuck_proxy_is_stopped_by_ending_the_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck_proxy(frontend: Any, backend: Any, capture: Any, control: Any) -> None:
        backend.recv()  # a blocking call that never returns, until the context ends (ETERM)

    monkeypatch.setattr(zmq, "proxy_steerable", stuck_proxy)
    monkeypatch.setattr(service, "_PROXY_STOP_WAIT", 0.2, raising=False)
    context = _Context()
    reactor = Reactor()
    relay = RelayService(reactor, context, Identity(generate_keypair()), ZapPolicy(),
                         RelayConfig(node_targets=[]))
    bridge = _bridge(relay)
    relay.stop()  # as on SIGTERM: the join times out
    assert bridge.thread.is_alive() and not bridge.frontend.closed
    assert relay.release()  # a proxy still runs; the loop's end of its control pair is closed
    assert bridge.control.closed
    reactor.close()
    _terminate(context, logging.getLogger("test"), wait=10)  # what run_relay does then
    assert context.closed
    assert not bridge.thread.is_alive()
    assert bridge.frontend.closed_on == bridge.backend.closed_on == [bridge.thread.name]
