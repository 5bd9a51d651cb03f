"""Messages between a node and its worker processes over a local socket pair.

A message is one record: a 4-byte record length, a 4-byte header length, a
msgpack header ``[kind, fields, [frame lengths], shared]``, then the frames
back to back.  A :class:`Channel` writes a record (or several, see
``send_many``) with one system call, and a reader takes whatever is waiting
with one ``recvmsg`` and hands back every whole record in it: a worker that
ran five short jobs costs its node one read, not ten.

Frames of more than ``SHARED_MIN`` bytes in all do not go through the socket
(whose buffer holds a few hundred KiB, so a MiB would take a dozen context
switches with the node's loop blocked in between): they are written to an
anonymous memory file (``memfd``) whose descriptor travels with the record's
first bytes (``SCM_RIGHTS``), and the reader maps it -- one copy, and the
frames it gets are views of that mapping.  Both ends are processes of the node
itself; nothing here crosses the network.
"""

from __future__ import annotations

import array
import mmap
import os
import socket
import struct
from collections import deque
from typing import Any

import msgpack

__all__ = ["Channel", "Record", "SHARED_MIN", "write_all"]

_LENGTH = struct.Struct("!I")
_TWO = struct.Struct("!II")
SHARED_MIN = 256 * 1024 if hasattr(os, "memfd_create") else 1 << 62
_READ_SIZE = 1 << 16  # bytes taken per read at most (a smaller buffer than malloc maps apart)
_FD_SPACE = socket.CMSG_SPACE(16 * array.array("i").itemsize)

Record = tuple[str, dict[str, Any], list[memoryview]]


class Channel:
    """One end of a node <-> worker socket pair (blocking writes; reads see ``read``/``recv``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._tail = b""  # the start of a record not whole yet
        self._fds: deque[int] = deque()  # descriptors received, for the shared records ahead
        self._ready: deque[Record] = deque()  # whole records not handed out yet
        self.closed = False  # the other end has closed

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """A channel over a duplicate of ``fd`` (a connected AF_UNIX stream socket)."""
        return cls(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(fd)))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
        while self._fds:
            os.close(self._fds.popleft())

    # -- writing ----------------------------------------------------------------------
    def send(self, kind: str, fields: dict[str, Any] | None = None,
             frames: list[Any] | None = None) -> None:
        self.send_many([(kind, fields, frames)])

    def send_many(self, messages: list[tuple[str, dict[str, Any] | None, list[Any] | None]]) -> None:
        """Write ``messages`` in order, the small ones together in one system call."""
        batch: list[Any] = []
        for kind, fields, frames in messages:
            views = [memoryview(f).cast("B") for f in frames or ()]
            lengths = [v.nbytes for v in views]
            shared = sum(lengths) >= SHARED_MIN
            header = msgpack.packb([kind, fields or {}, lengths, shared], use_bin_type=True)
            if not shared:
                batch.append(_TWO.pack(4 + len(header) + sum(lengths), len(header)))
                batch.append(header)
                batch.extend(views)
                continue
            if batch:
                self._write(batch)
                batch = []
            self._send_shared(header, views)
        if batch:
            self._write(batch)

    def _write(self, parts: list[Any]) -> None:
        self.sock.sendall(b"".join(parts))

    def _send_shared(self, header: bytes, views: list[memoryview]) -> None:
        fd = os.memfd_create("gridlib-frames", os.MFD_CLOEXEC)
        try:
            write_all(fd, views)
            data = _TWO.pack(4 + len(header), len(header)) + header
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", [fd]))])
            if sent < len(data):  # (the descriptor went with the first bytes)
                self.sock.sendall(data[sent:])
        finally:
            os.close(fd)

    # -- reading ----------------------------------------------------------------------
    def read(self) -> list[Record]:
        """Every whole record waiting now, without blocking (empty: none yet).  Raises
        ``EOFError`` once the other end has closed and every record was handed out."""
        self._fill(block=False)
        if self._ready:
            out = list(self._ready)
            self._ready.clear()
            return out
        if self.closed:
            raise EOFError("the other end closed the channel")
        return []

    def recv(self) -> Record:
        """The next record, waiting for it if need be (``EOFError`` at the end)."""
        while not self._ready:
            if self.closed:
                raise EOFError("the other end closed the channel")
            self._fill(block=True)
        return self._ready.popleft()

    def _fill(self, block: bool) -> None:
        if self.closed:
            return
        try:
            data, ancillary, _flags, _ = self.sock.recvmsg(
                _READ_SIZE, _FD_SPACE, 0 if block else socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            data, ancillary = b"", []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self._fds.extend(fds)
        if not data:
            self.closed = True
            return
        self._parse(self._tail + data if self._tail else data)

    def _parse(self, data: bytes) -> None:
        view, at, end = memoryview(data), 0, len(data)
        while end - at >= 4:
            (size,) = _LENGTH.unpack_from(view, at)
            if end - at - 4 < size:
                break
            self._ready.append(self._record(view[at + 4:at + 4 + size]))
            at += 4 + size
        self._tail = bytes(view[at:]) if at < end else b""

    def _record(self, body: memoryview) -> Record:
        (size,) = _LENGTH.unpack_from(body)
        kind, fields, lengths, shared = msgpack.unpackb(body[4:4 + size], raw=False)
        if shared:
            fd = self._fds.popleft()
            try:
                total = sum(lengths)
                data = memoryview(mmap.mmap(fd, total, prot=mmap.PROT_READ)) if total else memoryview(b"")
            finally:
                os.close(fd)
            at = 0
        else:
            data, at = body, 4 + size
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
