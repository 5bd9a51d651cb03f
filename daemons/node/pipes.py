"""Messages between a node and its worker processes over a local pipe.

A message is one ``send_bytes`` record: a 4-byte header length, a msgpack
header ``[kind, fields, [frame lengths]]``, then the frames back to back.
One record per message means one write on the sending side and a reader
that is woken once, never left blocked between the header and its frames.
Both ends are processes of the node itself; nothing here crosses the network.
"""

from __future__ import annotations

import struct
from multiprocessing.connection import Connection
from typing import Any

import msgpack

__all__ = ["send", "recv"]

_LENGTH = struct.Struct("!I")


def send(conn: Connection, kind: str, fields: dict[str, Any] | None = None,
         frames: list[Any] | None = None) -> None:
    views = [memoryview(f).cast("B") for f in frames or ()]
    header = msgpack.packb([kind, fields or {}, [v.nbytes for v in views]], use_bin_type=True)
    conn.send_bytes(b"".join([_LENGTH.pack(len(header)), header, *views]))


def recv(conn: Connection) -> tuple[str, dict[str, Any], list[memoryview]]:
    record = memoryview(conn.recv_bytes())
    (size,) = _LENGTH.unpack_from(record)
    kind, fields, lengths = msgpack.unpackb(record[4:4 + size], raw=False)
    frames, at = [], 4 + size
    for length in lengths:
        frames.append(record[at:at + length])
        at += length
    return kind, fields, frames
