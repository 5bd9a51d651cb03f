"""A job's remote failure as an exception the client can raise (``await job``, futures).

The node sends the failure's type, message and traceback as text, and the
exception itself pickled when it pickles.  :func:`remote_error` makes a
:class:`~gridlib.RemoteJobError` that carries all of that and is also an
instance of the original class when that class loads here -- so
``except ValueError`` works on a grid job as on a local call -- with the
remote traceback attached as its cause, the way ``ProcessPoolExecutor``
does (``traceback.format_exception`` shows it).
"""

from __future__ import annotations

import pickle
from typing import Any

from gridlib.protocol.errors import RemoteJobError

__all__ = ["remote_error", "RemoteTraceback"]

_combined: dict[type, type] = {}


class RemoteTraceback(Exception):
    """The remote traceback, as the cause of the error raised here."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n" + self.tb


def remote_error(kind: str, message: str, traceback: str = "", node: str | None = None,
                 pickled: bytes | None = None) -> RemoteJobError:
    """A ``RemoteJobError`` -- also of the original class when that unpickles here."""
    args = (kind, message, traceback, node)
    original = None
    if pickled:
        try:
            original = pickle.loads(pickled)
        except Exception:
            original = None
    error: RemoteJobError
    if isinstance(original, BaseException) and not isinstance(original, Exception):
        # KeyboardInterrupt, SystemExit...: raised as themselves (they do not mix with an
        # Exception class), the remote error kept as .remote_error
        error = RemoteJobError(*args)
        error.original = original  # type: ignore[attr-defined]
    elif isinstance(original, Exception):
        cls = type(original)
        try:
            combined = _combined.get(cls) or _combined.setdefault(
                cls, type(f"Remote{cls.__name__}", (RemoteJobError, cls), {"__module__": __name__}))
            error = combined.__new__(combined, *original.args)
            RemoteJobError.__init__(error, *args)
        except Exception:  # a class that will not mix (layout, metaclass, __init__): plain
            error = RemoteJobError(*args)
        error.original = original  # type: ignore[attr-defined]
    else:
        error = RemoteJobError(*args)
    if traceback:
        error.__cause__ = RemoteTraceback(traceback)
    return error


def info_error(info: dict[str, Any], node: str | None) -> RemoteJobError:
    """:func:`remote_error` from the exception map a node sends."""
    pickled = info.get("pickled")
    return remote_error(str(info.get("type")), str(info.get("message")), str(info.get("traceback") or ""),
                        node, pickled if isinstance(pickled, bytes) else None)
