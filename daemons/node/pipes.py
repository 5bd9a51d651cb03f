"""Messages between a node and its worker processes over a local pipe.

A message is a msgpack header ``[kind, fields, frame count]`` followed by
that many raw frames, each written with ``send_bytes``.  Both ends are
processes of the node itself; nothing here crosses the network.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

import msgpack

__all__ = ["send", "recv"]


def send(conn: Connection, kind: str, fields: dict[str, Any] | None = None,
         frames: list[Any] | None = None) -> None:
    frames = frames or []
    conn.send_bytes(msgpack.packb([kind, fields or {}, len(frames)], use_bin_type=True))
    for frame in frames:
        conn.send_bytes(memoryview(frame))


def recv(conn: Connection) -> tuple[str, dict[str, Any], list[bytes]]:
    kind, fields, count = msgpack.unpackb(conn.recv_bytes(), raw=False)
    return kind, fields, [conn.recv_bytes() for _ in range(count)]
