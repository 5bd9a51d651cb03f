"""The reactor's posted calls: run in order, each one even if another raises, and a late
post after close (e.g. a signal during shutdown) is dropped quietly."""

from __future__ import annotations

import logging
import os
import select

import pytest

from gridlib.protocol.reactor import Reactor


def test_posting_to_a_closed_reactor_neither_raises_nor_writes_into_a_reused_fd() -> None:
    reactor = Reactor()
    reactor.close()
    r, w = os.pipe()  # very likely the numbers the reactor's wake pipe just gave back
    try:
        reactor.call_soon_threadsafe(lambda: None)
        reactor.close()  # closing twice is harmless too
        assert select.select([r], [], [], 0)[0] == []  # nothing was written into the new pipe
    finally:
        os.close(r)
        os.close(w)


def test_posted_calls_run_in_order_on_the_loop() -> None:
    reactor = Reactor()
    seen: list[int] = []
    for i in range(3):
        reactor.call_soon_threadsafe(lambda i=i: seen.append(i))
    reactor.call_soon_threadsafe(reactor.stop)
    reactor.run()
    reactor.close()
    assert seen == [0, 1, 2]


def test_a_posted_call_that_raises_is_logged_and_the_rest_of_its_batch_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    reactor = Reactor()
    seen: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    reactor.call_soon_threadsafe(lambda: seen.append("before"))
    reactor.call_soon_threadsafe(fails)
    reactor.call_soon_threadsafe(lambda: seen.append("after"))  # same wake-up, same batch
    with caplog.at_level(logging.ERROR, logger="gridlib.reactor"):
        reactor.run_once(max_wait=0.5)  # one turn, and nothing else posted to wake it again
    reactor.close()
    assert seen == ["before", "after"]
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
