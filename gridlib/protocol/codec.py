"""The envelope codec: gridlib messages to ZeroMQ frames and back (docs/architecture.md §3).

::

    DEALER sends:  [b"", b"GRID\\x01", header, payload_1 ... payload_n]
    ROUTER sees:   [route_0 ... route_k, b"", b"GRID\\x01", header, payload...]

The signature frame is checked before anything is parsed, the header is a
bounded msgpack map, and payload frames are opaque: they are never parsed
here and are forwarded as received.
"""

from __future__ import annotations

import builtins
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .bodies import B, body_of
from .errors import PayloadTooLarge, ProtocolError, ProtocolVersionError

__all__ = [
    "SIGNATURE",
    "MAJOR_VERSION",
    "MINOR_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_FRAMES",
    "DEFAULT_MAX_MSG_SIZE",
    "Message",
    "new_message",
    "reply",
    "error_reply",
    "encode",
    "decode",
    "split_envelope",
]

MAJOR_VERSION = 1
MINOR_VERSION = 0
SIGNATURE = b"GRID" + bytes([MAJOR_VERSION])
MAX_HEADER_BYTES = 64 * 1024
MAX_FRAMES = 1024
DEFAULT_MAX_MSG_SIZE = 1 << 30  # 1 GiB: a larger message disconnects the peer (libzmq MAXMSGSIZE)
_RESERVED = frozenset({"v", "t", "mid", "ref", "frames"})

# Message ids: a random per-process prefix and a counter are unique enough
# and far cheaper than 16 fresh random bytes per message.
_MID_PREFIX = os.urandom(8)
_MID_COUNTER = itertools.count()


def _next_mid() -> bytes:
    return _MID_PREFIX + next(_MID_COUNTER).to_bytes(8, "big")


@dataclass(slots=True)
class Message:
    """One gridlib message: a type, header fields and opaque payload frames.

    ``fields`` is the header as a map (what is forwarded); :meth:`as_` gives
    the message's typed struct (:mod:`.bodies`), built once: by :func:`decode`
    for a message that crossed a socket, on first use for one passed within a
    process.
    """

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    frames: list[Any] = field(default_factory=list)
    mid: bytes = b""
    ref: bytes | None = None
    body: Any = field(default=None, repr=False, compare=False)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def as_(self, kind: builtins.type[B]) -> B:
        """The typed struct of this message, which must be of ``kind``'s type.

        Raises :class:`ProtocolError` when a field is missing or of the wrong type.
        """
        body = self.body
        if body is None:
            body = self.body = body_of(self.type, self.fields)
        if type(body) is not kind:
            raise ProtocolError(f"a {self.type} message is not {kind.TYPE}")
        return body


def new_message(
    mtype: str,
    fields: dict[str, Any] | None = None,
    frames: Sequence[Any] = (),
    labels: Sequence[str] | None = None,
    ref: bytes | None = None,
) -> Message:
    """Build a message with a fresh id; ``labels`` default to ``"data"`` each."""
    frames = list(frames)
    labels = list(labels) if labels is not None else ["data"] * len(frames)
    if len(labels) != len(frames):
        raise ValueError("one label per payload frame")
    return Message(mtype, dict(fields or {}), labels, frames, _next_mid(), ref)


def reply(to: Message, mtype: str, fields: dict[str, Any] | None = None, **kw: Any) -> Message:
    """A message answering ``to`` (its ``ref`` is ``to.mid``)."""
    return new_message(mtype, fields, ref=to.mid, **kw)


def error_reply(to: Message | None, code: int, reason: str) -> Message:
    """``ERROR{code, reason}``, answering ``to`` when it is known."""
    return new_message(
        "ERROR", {"code": code, "reason": reason}, ref=to.mid if to is not None else None
    )


def encode(msg: Message) -> list[Any]:
    """Frames for ``msg``: signature, header, then the payload frames untouched."""
    header: dict[str, Any] = {
        "v": MINOR_VERSION,
        "t": msg.type,
        "mid": msg.mid,
        "ref": msg.ref,
        "frames": msg.labels,
    }
    for key, value in msg.fields.items():
        if key in _RESERVED:
            raise ValueError(f"field name {key!r} is reserved")
        header[key] = value
    packed = msgpack.packb(header, use_bin_type=True)
    if len(packed) > MAX_HEADER_BYTES:
        raise PayloadTooLarge(f"{msg.type} header is {len(packed)} bytes (limit {MAX_HEADER_BYTES})")
    if len(msg.frames) > MAX_FRAMES:
        raise PayloadTooLarge(f"{msg.type} has {len(msg.frames)} frames (limit {MAX_FRAMES})")
    return [SIGNATURE, packed, *msg.frames]


def split_envelope(frames: Sequence[Any]) -> tuple[tuple[bytes, ...], list[Any]]:
    """Split ROUTER frames into the route stack and the message frames.

    The route stack is everything before the first empty delimiter frame.
    """
    for i, frame in enumerate(frames):
        if len(memoryview(frame)) == 0:
            routes = tuple(bytes(memoryview(f)) for f in frames[:i])
            return routes, list(frames[i + 1 :])
    raise ProtocolError("no empty delimiter frame")


def _parse_header(raw: Any) -> dict[str, Any]:
    view = memoryview(raw)
    if view.nbytes > MAX_HEADER_BYTES:
        raise PayloadTooLarge(f"header is {view.nbytes} bytes (limit {MAX_HEADER_BYTES})")
    try:
        header = msgpack.unpackb(
            view,
            raw=False,
            strict_map_key=True,
        )
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    return header


def decode(frames: Sequence[Any]) -> Message:
    """Parse ``[signature, header, payload...]`` into a :class:`Message`.

    Raises :class:`ProtocolError` (or a subclass) for anything malformed;
    payload frames are returned as given, never parsed.
    """
    if len(frames) < 2:
        raise ProtocolError("message has no signature and header")
    sig = bytes(memoryview(frames[0])[:8])
    if sig != SIGNATURE:
        if len(sig) == len(SIGNATURE) and sig[:4] == SIGNATURE[:4]:
            raise ProtocolVersionError(
                f"protocol version {sig[4]} is not supported (this peer speaks {MAJOR_VERSION})"
            )
        raise ProtocolError("bad signature frame")
    header = _parse_header(frames[1])
    mtype = header.get("t")
    if not isinstance(mtype, str):
        raise ProtocolError("header has no message type")
    if not isinstance(header.get("v"), int):
        raise ProtocolError("header has no minor version")
    mid = header.get("mid")
    ref = header.get("ref")
    if not isinstance(mid, bytes) or len(mid) != 16:
        raise ProtocolError("header mid must be 16 bytes")
    if ref is not None and (not isinstance(ref, bytes) or len(ref) != 16):
        raise ProtocolError("header ref must be 16 bytes or nil")
    labels = header.get("frames")
    payload = list(frames[2:])
    if (
        not isinstance(labels, list)
        or len(labels) != len(payload)
        or not all(isinstance(label, str) for label in labels)
    ):
        raise ProtocolError("header frame labels do not match the payload frames")
    if len(payload) > MAX_FRAMES:
        raise PayloadTooLarge(f"{len(payload)} payload frames (limit {MAX_FRAMES})")
    body = body_of(mtype, header)
    fields = {k: v for k, v in header.items() if k not in _RESERVED}
    return Message(mtype, fields, labels, payload, mid, ref, body)
