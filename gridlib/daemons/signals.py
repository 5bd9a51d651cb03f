"""How every daemon answers signals: SIGTERM/SIGINT stop it, SIGHUP reloads allowlists.

A daemon may give SIGINT a gentler meaning (``interrupt``): the node drains
-- running jobs finish, no new ones start -- and exits then.  The handlers
only post work to the daemon's reactor; the work itself runs on the loop
thread, like everything else.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from gridlib.daemons.hangup import take_deferred
from gridlib.protocol.keys import Identity
from gridlib.protocol.reactor import Reactor

__all__ = ["handle_signals"]


def handle_signals(reactor: Reactor, stop: Callable[[], None],
                   reload: Callable[[Identity], None] | None,
                   load_identity: Callable[[], Identity] | None, log: logging.Logger,
                   interrupt: Callable[[], None] | None = None) -> None:
    """Install the handlers; ``interrupt`` (default: ``stop``) answers SIGINT."""
    def on_stop(signum: int, _frame: object) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        reactor.call_soon_threadsafe(interrupt if interrupt is not None and signum == signal.SIGINT
                                     else stop)

    def on_hup(_signum: int, _frame: object) -> None:
        if reload is not None and load_identity is not None:
            def apply() -> None:
                try:
                    reload(load_identity())
                except Exception as exc:  # a broken allowlist keeps the old one in force
                    log.error("event=reload_failed error=%s", exc)
            reactor.call_soon_threadsafe(apply)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    if take_deferred():  # a SIGHUP came while the daemon started: reload once now
        log.info("event=signal signal=SIGHUP deferred=true")
        on_hup(signal.SIGHUP, None)
