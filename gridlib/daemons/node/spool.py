"""Results kept on disk until the scheduler acknowledges them (docs/reliability.md §3).

A finished job's result is appended (mode 0600) to a log segment before it
is sent; a ``RESULT_ACK`` appends a release record.  A node that lost its
scheduler, or that was restarted with the same ``--dest-path-prefix``,
replays the segments and still has every unacknowledged result, which it
sends again when the cluster is set up anew.

One ``writev`` per result and per acknowledgement (no file created, renamed
or removed per job, frames not copied first) keeps the spool off the hot
path.  A record is ``[4-byte length][4-byte length][msgpack meta][frames]``;
a torn last record (a crash mid-write) ends the replay of its segment.  A segment is removed once every result in
it is released, and the current one is emptied whenever nothing is pending,
so an idle node's spool is empty files.  Records are not fsynced: a machine
crash may lose the last ones, and those jobs run again.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from .pipes import write_all

__all__ = ["SpooledResult", "ResultSpool"]

_LENGTH = struct.Struct("!I")
_SEGMENT_BYTES = 64 << 20  # start a new segment past this size
HELD_BYTES = 64 << 20  # results held in memory beyond this are written, oldest first


@dataclass
class SpooledResult:
    cluster_id: str
    job_id: str
    fields: dict[str, Any]
    labels: list[str]
    segment: _Segment | None  # None: held in memory, not written yet
    offset: int = 0  # of the record's body in the segment
    size: int = 0  # of the record body; while held, of the frames
    held: list[Any] | None = None  # the frames, while held
    since: float = 0.0  # when it was held

    def frames(self) -> list[Any]:
        if self.segment is None:
            return list(self.held or [])
        body = os.pread(self.segment.fd, self.size, self.offset)
        if len(body) != self.size:
            raise ValueError("spool record truncated")
        meta, at = _meta(body)
        frames = []
        for length in meta["lengths"]:
            frames.append(body[at:at + length])
            at += length
        return frames


def _meta(body: bytes) -> tuple[dict[str, Any], int]:
    """A record body's msgpack part and the offset of its frames."""
    (size,) = _LENGTH.unpack_from(body)
    return msgpack.unpackb(body[_LENGTH.size:_LENGTH.size + size], raw=False), _LENGTH.size + size


def _body(meta: dict[str, Any], frames: list[memoryview]) -> list[Any]:
    packed = msgpack.packb(meta, use_bin_type=True)
    return [_LENGTH.pack(len(packed)), packed, *frames]


class _Segment:
    """One append-only log file and the number of results in it not yet released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.live = 0

    def append(self, parts: list[Any]) -> int:
        """Write one record (its body in ``parts``, frames not copied); returns the body's offset."""
        views = [memoryview(p).cast("B") for p in parts]
        length = sum(v.nbytes for v in views)
        write_all(self.fd, [memoryview(_LENGTH.pack(length)), *views])
        offset = self.size + _LENGTH.size
        self.size += _LENGTH.size + length
        return offset

    def records(self) -> Iterable[tuple[int, bytes]]:
        """(body offset, body) of every whole record, in order."""
        data = os.pread(self.fd, self.size, 0)
        at = 0
        while at + _LENGTH.size <= len(data):
            (length,) = _LENGTH.unpack_from(data, at)
            if at + _LENGTH.size + length > len(data):
                break
            yield at + _LENGTH.size, data[at + _LENGTH.size:at + _LENGTH.size + length]
            at += _LENGTH.size + length

    def empty(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0

    def close(self, remove: bool) -> None:
        os.close(self.fd)
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


class ResultSpool:
    """Unacknowledged results in log segments, indexed in memory by job id."""

    def __init__(self, directory: Path, log: logging.Logger | None = None) -> None:
        self.directory = directory
        self.log = log or logging.getLogger("gridlib.node")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._index: dict[str, SpooledResult] = {}  # written
        self._held: dict[str, SpooledResult] = {}  # in memory, oldest first
        self._held_bytes = 0
        self._segments: list[_Segment] = []
        self._replaying = True
        self._load()
        self._replaying = False
        number = max((int(s.path.stem) for s in self._segments), default=0) + 1
        self._current = self._open(number)

    # -- replay ----------------------------------------------------------------
    def _load(self) -> None:
        for path in sorted(self.directory.glob("*.spool")):
            if not path.stem.isdigit():
                continue
            segment = _Segment(path)
            self._segments.append(segment)
            for offset, body in segment.records():
                try:
                    self._replay(segment, offset, body)
                except Exception as exc:  # a foreign or damaged record: keep going without it
                    self.log.warning("event=spool_unreadable path=%s error=%s", path, exc)
        for segment in list(self._segments):
            if not segment.live:
                self._segments.remove(segment)
                segment.close(remove=True)
        if self._index:
            self.log.info("event=spool_loaded results=%d", len(self._index))

    def _replay(self, segment: _Segment, offset: int, body: bytes) -> None:
        data, _ = _meta(body)
        if data.get("op") == "ack":
            for job_id in data["job_ids"]:
                self._release(str(job_id))
            return
        entry = SpooledResult(str(data["cluster_id"]), str(data["job_id"]), dict(data["fields"]),
                              list(data["labels"]), segment, offset, len(body))
        self._release(entry.job_id)
        self._index[entry.job_id] = entry
        segment.live += 1

    def _open(self, number: int) -> _Segment:
        segment = _Segment(self.directory / f"{number:08d}.spool")
        self._segments.append(segment)
        return segment

    # -- the node's side -------------------------------------------------------
    def put(self, cluster_id: str, job_id: str, fields: dict[str, Any], frames: list[Any],
            labels: list[str]) -> None:
        views = [memoryview(f).cast("B") for f in frames]
        body = _body({"cluster_id": cluster_id, "job_id": job_id, "fields": fields,
                      "labels": labels, "lengths": [v.nbytes for v in views]}, views)
        segment = self._current
        if segment.size > _SEGMENT_BYTES:
            segment = self._current = self._open(int(segment.path.stem) + 1)
        offset = segment.append(body)
        self._release(job_id)  # a job run again replaces its earlier result
        self._index[job_id] = SpooledResult(cluster_id, job_id, fields, labels, segment, offset,
                                            sum(memoryview(p).nbytes for p in body))
        segment.live += 1

    def hold(self, cluster_id: str, job_id: str, fields: dict[str, Any], frames: list[Any],
             labels: list[str], now: float) -> None:
        """Keep a result sent over a live link in memory; ``write_held`` makes it durable.

        Most results are acknowledged within milliseconds and never touch the disk.
        One the node loses before it is written is lost the way a job is when its
        node dies: the scheduler runs it again (or, for a cluster that is not
        reentrant, reports it abandoned).
        """
        self._release(job_id)
        entry = SpooledResult(cluster_id, job_id, fields, labels, None, held=list(frames), since=now,
                              size=sum(memoryview(f).nbytes for f in frames))
        self._held[job_id] = entry
        self._held_bytes += entry.size
        while self._held_bytes > HELD_BYTES and len(self._held) > 1:  # memory is bounded too
            self._write_oldest()

    def _write_oldest(self) -> None:
        entry = self._held.pop(next(iter(self._held)))
        self._held_bytes -= entry.size
        self.put(entry.cluster_id, entry.job_id, entry.fields, entry.held or [], entry.labels)

    def write_held(self, before: float | None = None) -> int:
        """Write results held since ``before`` (all by default); returns how many are still held."""
        while self._held:
            if before is not None and next(iter(self._held.values())).since > before:
                break
            self._write_oldest()
        return len(self._held)

    def ack(self, job_id: str) -> None:
        self.ack_many([job_id])

    def ack_many(self, job_ids: Iterable[str]) -> None:
        """Release results (one record for the lot); unknown ids are ignored."""
        released = [job_id for job_id in job_ids if self._release(job_id)]
        if not released:
            return
        current = self._current
        if not self._index:  # nothing pending: no segment needs its history
            for segment in self._segments:
                if segment is not current:
                    segment.close(remove=True)
            self._segments = [current]
            current.empty()
            return
        try:
            current.append(_body({"op": "ack", "job_ids": released}, []))
        except OSError as exc:  # replay would resend them; the scheduler ignores duplicates
            self.log.warning("event=spool_ack_write_failed error=%s", exc)

    def _release(self, job_id: str) -> bool:
        held = self._held.pop(job_id, None)
        if held is not None:
            self._held_bytes -= held.size
            return False  # nothing on disk to release
        entry = self._index.pop(job_id, None)
        if entry is None:
            return False
        segment = entry.segment
        segment.live -= 1
        if (not segment.live and not self._replaying and segment is not self._current
                and segment in self._segments):
            self._segments.remove(segment)
            segment.close(remove=True)
        return True

    def get(self, job_id: str) -> SpooledResult | None:
        return self._held.get(job_id) or self._index.get(job_id)

    def all(self) -> list[SpooledResult]:
        return [*self._index.values(), *self._held.values()]

    def of_cluster(self, cluster_id: str) -> list[SpooledResult]:
        return [e for e in self.all() if e.cluster_id == cluster_id]

    def drop_cluster(self, cluster_id: str) -> None:
        self.ack_many([e.job_id for e in self.of_cluster(cluster_id)])

    def close(self) -> None:
        """Write what is held, then close the segments (the node is stopping)."""
        self.write_held()
        for segment in self._segments:
            segment.close(remove=False)
        self._segments = []

    def __len__(self) -> int:
        return len(self._index) + len(self._held)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._index or job_id in self._held
