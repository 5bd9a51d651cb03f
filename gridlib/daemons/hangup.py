"""A SIGHUP that comes before a daemon is ready is kept, not fatal.

Python leaves SIGHUP at its default action (the process ends) until
:func:`gridlib.daemons.signals.handle_signals` installs the reload handler,
once the daemon's sockets exist -- a few hundred milliseconds of imports and
set-up in which ``kill -HUP`` (an allowlist just changed, ``systemctl
reload``) would kill a starting daemon.  :func:`defer_hangups`, called first
thing by each daemon's entry point, records such a signal instead;
``handle_signals`` then reloads once for it.  Standard library only, so that
it can run before anything heavy is imported.
"""

from __future__ import annotations

import signal

__all__ = ["defer_hangups", "take_deferred"]

_deferred = [0]


def _record(_signum: int, _frame: object) -> None:
    _deferred[0] += 1


def defer_hangups() -> None:
    """Until the daemon's own handlers are installed, a SIGHUP is counted, not fatal."""
    signal.signal(signal.SIGHUP, _record)


def take_deferred() -> int:
    """How many SIGHUPs came before the daemon was ready (and forget them)."""
    count, _deferred[0] = _deferred[0], 0
    return count
