"""The one exception hierarchy of gridlib (docs/api.md §4; wire codes in docs/architecture.md §3).

Every error a user or a daemon can see derives from :class:`GridError`.
Wire errors carry an HTTP-like ``code`` so that peers can answer
``ERROR{code, reason}`` without sharing Python types.
"""

from __future__ import annotations

__all__ = [
    "GridError",
    "ProtocolError",
    "ConnectionLost",
    "AuthenticationFailed",
    "ProtocolVersionError",
    "PayloadTooLarge",
    "SerializationError",
    "NoNodesError",
    "RemoteJobError",
    "KeyFileError",
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "ILLEGAL_STATE",
    "TOO_LARGE",
    "VERSION_MISMATCH",
    "NO_ELIGIBLE_NODE",
]

BAD_REQUEST = 400
UNAUTHORIZED = 401
NOT_FOUND = 404
ILLEGAL_STATE = 409
TOO_LARGE = 413
VERSION_MISMATCH = 426
NO_ELIGIBLE_NODE = 503


class GridError(Exception):
    """Root of every gridlib error."""

    code: int = BAD_REQUEST


class ProtocolError(GridError):
    """A peer sent something that is not a valid gridlib message."""

    def __init__(self, reason: str, code: int = BAD_REQUEST) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ProtocolVersionError(ProtocolError):
    """The peer speaks another major version of the protocol."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, VERSION_MISMATCH)


class PayloadTooLarge(ProtocolError):
    """A header or message exceeds the configured size limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, TOO_LARGE)


class ConnectionLost(GridError):
    """The peer (scheduler or node) stopped answering."""


class AuthenticationFailed(GridError):
    """A key was refused, or a key file could not be used."""

    code = UNAUTHORIZED


class KeyFileError(AuthenticationFailed):
    """A key file is missing, malformed or readable by others."""


class SerializationError(GridError):
    """An argument, computation or result could not be (de)serialized."""


class NoNodesError(GridError):
    """No node joined within the time the user asked to wait."""

    code = NO_ELIGIBLE_NODE


class RemoteJobError(GridError):
    """A job raised on a node; carries the remote type, message and traceback."""

    def __init__(
        self, type: str, message: str, traceback: str = "", node: str | None = None
    ) -> None:
        super().__init__(f"{type}: {message}" + (f" (on node {node})" if node else ""))
        self.type = type
        self.message = message
        self.traceback = traceback
        self.node = node
