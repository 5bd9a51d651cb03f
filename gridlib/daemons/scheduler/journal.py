"""The shared scheduler's journal: accepted clusters and jobs survive a restart (docs/operations.md §12).

The core lists its durable changes (``SchedulerCore.persist``); the shell
writes them here in one SQLite transaction per loop turn, *before* it sends
the acknowledgements, so every job a client was told is accepted is on disk.
Payload frames are stored as the bytes received; nothing is deserialized.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, assert_never

import msgpack

from .records import Change, ClusterRecord, DropCluster, DropJob, JobRecord, SaveCluster, SaveJob

__all__ = ["SchedulerJournal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS clusters (
    cluster_id TEXT PRIMARY KEY, client BLOB, user TEXT, kind TEXT, options BLOB,
    labels BLOB, frames BLOB, created INTEGER);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, cluster_id TEXT, spec BLOB, labels BLOB, frames BLOB, seq INTEGER);
CREATE INDEX IF NOT EXISTS jobs_by_cluster ON jobs (cluster_id);
"""


def _pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def _frames(frames: list[Any]) -> bytes:
    return _pack([bytes(memoryview(f)) for f in frames])


class SchedulerJournal:
    """SQLite in WAL mode; used only from the scheduler's loop thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(self.path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def scheduler_id(self, new: str) -> str:
        """The id this scheduler had before a restart (so nodes know it), else ``new``."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'sid'").fetchone()
        if row:
            return str(row[0])
        self._db.execute("INSERT INTO meta VALUES ('sid', ?)", (new,))
        return new

    def apply(self, changes: Sequence[Change]) -> None:
        """Write a batch of the core's durable changes (``SchedulerCore.persist``) in one transaction."""
        if not changes:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            for change in changes:
                match change:
                    case SaveCluster(cluster=c):
                        db.execute("INSERT OR REPLACE INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   (c.cluster_id, _pack(list(c.client)), c.user, c.kind,
                                    _pack(c.options), _pack(c.labels), _frames(c.frames), c.created))
                    case SaveJob(job=j):
                        db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                                   (j.job_id, j.cluster_id, _pack(j.spec), _pack(j.labels),
                                    _frames(j.frames), j.seq))
                    case DropJob(job_id=job_id):
                        db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
                    case DropCluster(cluster_id=cluster_id):
                        db.execute("DELETE FROM jobs WHERE cluster_id = ?", (cluster_id,))
                        db.execute("DELETE FROM clusters WHERE cluster_id = ?", (cluster_id,))
                    case _:
                        assert_never(change)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load(self) -> tuple[list[ClusterRecord], list[JobRecord]]:
        clusters = [
            ClusterRecord(r[0], tuple(msgpack.unpackb(r[1])), r[2], r[3],
                          msgpack.unpackb(r[4], raw=False), list(msgpack.unpackb(r[5], raw=False)),
                          list(msgpack.unpackb(r[6])), created=r[7])
            for r in self._db.execute("SELECT * FROM clusters ORDER BY created")]
        jobs = [
            JobRecord.from_spec(r[0], r[1], msgpack.unpackb(r[2], raw=False),
                                list(msgpack.unpackb(r[3], raw=False)), list(msgpack.unpackb(r[4])), r[5])
            for r in self._db.execute("SELECT * FROM jobs ORDER BY seq")]
        return clusters, jobs

    def close(self) -> None:
        self._db.close()
