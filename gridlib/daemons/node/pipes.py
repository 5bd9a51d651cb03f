"""Messages between a node and its worker processes over a local socket pair.

A message is one record: a 4-byte record length, a 4-byte header length, a
msgpack header ``[kind, fields, [frame lengths], shared]``, then the frames
back to back (``shared`` is ``False``; else the frames are in a memory file,
below, and ``shared`` is its token).  A :class:`Channel` writes a record (or
several, see ``send_many``) with one system call, and a reader takes whatever
is waiting with one ``recvmsg`` and hands back every whole record in it: a
worker that ran five short jobs costs its node one read, not ten.

Frames of more than ``SHARED_MIN`` bytes in all do not go through the socket
(whose buffer holds a few hundred KiB, so a MiB would take a dozen context
switches with the node's loop blocked in between): they are written to an
anonymous memory file (``memfd``) whose descriptor travels with the record's
first bytes (``SCM_RIGHTS``), and the reader maps it -- one copy, and the
frames it gets are views of that mapping.  Both ends are processes of the node
itself; nothing here crosses the network.

Memory files are recycled: a fresh one costs its writer the allocation of
every page (a MiB written into a new memfd takes several times as long as into
one whose pages exist) and its reader's unmap the freeing of them.  So a writer
keeps a memory file of up to ``SPARE_MAX`` bytes it sent (``LENT_MAX`` at
most), the reader says when the last view of its mapping is gone (a
``weakref.finalize`` on the mapping: a job's arguments loaded as views of it,
a result the node holds until the client has it, or a frame libzmq still
sends keep it alive), and the writer then fills the same file again for a
later record.  The reader's word rides on its next record to the writer (a
``_returned`` record, which ``read``/``recv`` never hand out).  Memory that
recycling holds beyond what the reader uses: ``SPARES_MAX`` files of
``SPARE_MAX`` bytes per channel end at most (4 MiB).
"""

from __future__ import annotations

import array
import mmap
import os
import socket
import struct
import weakref
from collections import deque
from typing import Any

import msgpack

__all__ = ["Channel", "Record", "SHARED_MIN", "write_all"]

_LENGTH = struct.Struct("!I")
_TWO = struct.Struct("!II")
SHARED_MIN = 256 * 1024 if hasattr(os, "memfd_create") else 1 << 62
_READ_SIZE = 1 << 16  # bytes taken per read at most (a smaller buffer than malloc maps apart)
_FD_SPACE = socket.CMSG_SPACE(16 * array.array("i").itemsize)
SPARE_MAX = 2 << 20  # a memory file larger than this is not kept for a later record
LENT_MAX = 16  # memory files one channel end has lent at most (their pages are the reader's frames)
SPARES_MAX = 2  # given back and kept idle at most: the memory recycling may hold unused
_RETURNED = "_returned"  # the record that gives memory files back (never handed out)

Record = tuple[str, dict[str, Any], list[memoryview]]


class Channel:
    """One end of a node <-> worker socket pair (blocking writes; reads see ``read``/``recv``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._tail = b""  # the start of a record not whole yet
        self._fds: deque[int] = deque()  # descriptors received, for the shared records ahead
        self._ready: deque[Record] = deque()  # whole records not handed out yet
        self.closed = False  # the other end has closed
        # memory-file recycling (see the module's text): ours lent to the reader by token,
        # ours given back and free to fill, and the tokens of the other end's files whose
        # mappings are gone here (appended by finalizers, which may run in any thread)
        self._lent: dict[int, int] = {}
        self._spares: list[int] = []
        self._next_token = 1
        self._give_back: deque[int] = deque()

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
        for fd in [*self._spares, *self._lent.values()]:
            os.close(fd)
        self._spares.clear()
        self._lent.clear()

    # -- writing ----------------------------------------------------------------------
    def send(self, kind: str, fields: dict[str, Any] | None = None,
             frames: list[Any] | None = None) -> None:
        self.send_many([(kind, fields, frames)])

    def send_many(self, messages: list[tuple[str, dict[str, Any] | None, list[Any] | None]]) -> None:
        """Write ``messages`` in order, the small ones together in one system call."""
        batch: list[Any] = []
        if self._give_back:
            tokens = [self._give_back.popleft() for _ in range(len(self._give_back))]
            messages = [(_RETURNED, {"tokens": tokens}, None), *messages]
        for kind, fields, frames in messages:
            views = [memoryview(f).cast("B") for f in frames or ()]
            lengths = [v.nbytes for v in views]
            total = sum(lengths)
            if total < SHARED_MIN:
                header = msgpack.packb([kind, fields or {}, lengths, False], use_bin_type=True)
                batch.append(_TWO.pack(4 + len(header) + total, len(header)))
                batch.append(header)
                batch.extend(views)
                continue
            if batch:
                self._write(batch)
                batch = []
            self._send_shared(kind, fields or {}, lengths, total, views)
        if batch:
            self._write(batch)

    def _write(self, parts: list[Any]) -> None:
        self.sock.sendall(b"".join(parts))

    def _send_shared(self, kind: str, fields: dict[str, Any], lengths: list[int], total: int,
                     views: list[memoryview]) -> None:
        """The frames (``total`` bytes) in a memory file (a spare one if it fits), its descriptor
        with the header; the header's token (0: not lent) asks the reader to give the file back
        when done."""
        fits = total <= SPARE_MAX
        if fits and self._spares:
            fd = self._spares.pop()
            os.ftruncate(fd, total)  # (frees the pages of a longer record before)
        else:
            fd = os.memfd_create("gridlib-frames", os.MFD_CLOEXEC)
        keep = fits and len(self._lent) < LENT_MAX
        token = 0
        try:
            write_all(fd, views, offset=0)
            if keep:
                token, self._next_token = self._next_token, self._next_token + 1
            header = msgpack.packb([kind, fields, lengths, token], use_bin_type=True)
            data = _TWO.pack(4 + len(header), len(header)) + header
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", [fd]))])
            if sent < len(data):  # (the descriptor went with the first bytes)
                self.sock.sendall(data[sent:])
        finally:
            if token:
                self._lent[token] = fd
            else:
                os.close(fd)

    def _returned(self, tokens: list[int]) -> None:
        """The reader is done with these files of ours: fill them again later (or close them)."""
        for token in tokens:
            fd = self._lent.pop(token, None)
            if fd is None:
                continue  # (not a token of ours: nothing to do)
            if len(self._spares) < SPARES_MAX:
                self._spares.append(fd)
            else:
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
            record = self._record(view[at + 4:at + 4 + size])
            if record[0] == _RETURNED:
                self._returned([int(t) for t in record[1].get("tokens", ())])
            else:
                self._ready.append(record)
            at += 4 + size
        self._tail = bytes(view[at:]) if at < end else b""

    def _record(self, body: memoryview) -> Record:
        (size,) = _LENGTH.unpack_from(body)
        kind, fields, lengths, shared = msgpack.unpackb(body[4:4 + size], raw=False)
        if shared is not False:  # a memory file; its token (0: not lent) asks for it back when done
            fd = self._fds.popleft()
            try:
                mapping = mmap.mmap(fd, sum(lengths), prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            if shared:
                weakref.finalize(mapping, self._give_back.append, int(shared))
            data, at = memoryview(mapping), 0
        else:
            data, at = body, 4 + size
        frames = []
        for length in lengths:
            frames.append(data[at:at + length])
            at += length
        return kind, fields, frames


def write_all(fd: int, views: list[memoryview], offset: int | None = None) -> None:
    """``writev`` until every buffer is written (a file or memfd may take fewer bytes); from
    ``offset`` in the file (``pwritev``) if given, else at its current position."""
    pending = [v for v in views if v.nbytes]
    while pending:
        if offset is None:
            written = os.writev(fd, pending)
        else:
            written = os.pwritev(fd, pending, offset)
            offset += written
        while pending and written >= pending[0].nbytes:
            written -= pending[0].nbytes
            pending.pop(0)
        if pending and written:
            pending[0] = pending[0][written:]
