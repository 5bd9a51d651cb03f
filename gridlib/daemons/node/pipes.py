"""Messages between a node and its worker processes over a local socket pair.

A message is one ``send_bytes`` record: a 4-byte header length, a msgpack
header ``[kind, fields, [frame lengths], shared]``, then the frames back to
back.  One record per message means one write on the sending side and a
reader that is woken once, never left blocked between a header and its
frames.

Frames of more than ``SHARED_MIN`` bytes in all do not go through the socket
(whose buffer holds a few hundred KiB, so a MiB would take a dozen context
switches with the node's loop blocked in between): they are written to an
anonymous memory file (``memfd``) whose descriptor travels with the record
(``SCM_RIGHTS``), and the reader maps it -- one copy, and the frames it gets
are views of that mapping.  Both ends are processes of the node itself;
nothing here crosses the network.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from typing import Any

import msgpack

__all__ = ["send", "recv", "write_all", "SHARED_MIN"]

_LENGTH = struct.Struct("!I")
SHARED_MIN = 256 * 1024 if hasattr(os, "memfd_create") else 1 << 62


def send(conn: Connection, kind: str, fields: dict[str, Any] | None = None,
         frames: list[Any] | None = None) -> None:
    views = [memoryview(f).cast("B") for f in frames or ()]
    lengths = [v.nbytes for v in views]
    shared = sum(lengths) >= SHARED_MIN
    header = msgpack.packb([kind, fields or {}, lengths, shared], use_bin_type=True)
    if not shared:
        conn.send_bytes(b"".join([_LENGTH.pack(len(header)), header, *views]))
        return
    fd = os.memfd_create("gridlib-frames", os.MFD_CLOEXEC)
    try:
        write_all(fd, views)
        conn.send_bytes(_LENGTH.pack(len(header)) + header)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=conn.fileno()) as sock:
            try:
                sendfds(sock, [fd])
            finally:
                sock.detach()  # the fd stays the connection's
    finally:
        os.close(fd)


def recv(conn: Connection) -> tuple[str, dict[str, Any], list[memoryview]]:
    record = memoryview(conn.recv_bytes())
    (size,) = _LENGTH.unpack_from(record)
    kind, fields, lengths, shared = msgpack.unpackb(record[4:4 + size], raw=False)
    if shared:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=conn.fileno()) as sock:
            try:
                (fd,) = recvfds(sock, 1)
            finally:
                sock.detach()
        try:
            data = memoryview(mmap.mmap(fd, sum(lengths), prot=mmap.PROT_READ)) if sum(lengths) \
                else memoryview(b"")
        finally:
            os.close(fd)
        at = 0
    else:
        data, at = record, 4 + size
    frames = []
    for length in lengths:
        frames.append(data[at:at + length])
        at += length
    return kind, fields, frames


def write_all(fd: int, views: list[memoryview]) -> None:
    """``writev`` until every buffer is written (a file or memfd may take fewer bytes)."""
    pending = [v for v in views if v.nbytes]
    while pending:
        written = os.writev(fd, pending)
        while pending and written >= pending[0].nbytes:
            written -= pending[0].nbytes
            pending.pop(0)
        if pending and written:
            pending[0] = pending[0][written:]
