"""The reactor after close: a late post (e.g. a signal during shutdown) is dropped quietly."""

from __future__ import annotations

import os
import select

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
