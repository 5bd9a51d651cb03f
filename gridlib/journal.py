"""The client's recovery journal: submissions and results in SQLite (docs/reliability.md §5).

With ``recover_file=PATH`` a cluster writes every job to the journal before
it is sent and every result before it is acknowledged, so that after the
client process dies ``gridlib.recover_jobs(PATH)`` can return every job:
results already received, results still on nodes, and jobs that never ran.
SQLite runs in WAL mode; writes from the I/O thread are batched into one
transaction per loop turn.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["Journal", "ClusterEntry", "JobEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    cluster_id TEXT PRIMARY KEY, created REAL, kind TEXT, computation BLOB, files BLOB,
    options BLOB, nodes BLOB, node_port INTEGER, scheduler_port INTEGER, closed INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY, cluster_id TEXT, seq INTEGER, meta BLOB, args BLOB, spec BLOB,
    submit_time REAL, result BLOB);
CREATE INDEX IF NOT EXISTS jobs_by_cluster ON jobs (cluster_id, seq);
"""


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _unpack(blob: bytes | None) -> Any:
    return None if blob is None else msgpack.unpackb(blob, raw=False)


@dataclass
class ClusterEntry:
    cluster_id: str
    kind: str
    computation: bytes
    files: list[tuple[str, bytes, int]]
    options: dict[str, Any]
    nodes: list[str] | None
    node_port: int
    scheduler_port: int


@dataclass
class JobEntry:
    uid: str
    meta: bytes  # pickle (gridlib.daemons.runtime.payload.pack_value) of the job id
    frames: list[bytes]
    spec: dict[str, Any]
    submit_time: float
    result: dict[str, Any] | None  # {"fields", "labels", "frames"} once received


class Journal:
    """One SQLite file shared by the clusters of a client (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():  # it holds arguments and results: this user's only
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._seq = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0])

    def add_cluster(self, cluster_id: str, kind: str, computation: bytes,
                    files: list[tuple[str, bytes, int]], options: dict[str, Any],
                    nodes: list[str] | None, node_port: int, scheduler_port: int = 0) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO clusters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (cluster_id, time.time(), kind, computation, _pack([list(f) for f in files]),
                 _pack(options), _pack(nodes), node_port, scheduler_port))

    def add_job(self, cluster_id: str, uid: str, meta: bytes, frames: list[Any],
                spec: dict[str, Any], submit_time: float) -> None:
        args = _pack([bytes(memoryview(f)) for f in frames])
        with self._lock:
            self._seq += 1
            self._db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                             (uid, cluster_id, self._seq, meta, args, _pack(spec), submit_time))

    def add_results(self, results: Iterable[tuple[str, dict[str, Any], list[str], list[Any]]]) -> None:
        rows = [(_pack({"fields": fields, "labels": labels,
                        "frames": [bytes(memoryview(f)) for f in frames]}), uid)
                for uid, fields, labels, frames in results]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE jobs SET result = ? WHERE uid = ?", rows)
            self._db.execute("COMMIT")

    def close_cluster(self, cluster_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE clusters SET closed = 1 WHERE cluster_id = ?", (cluster_id,))

    def open_clusters(self) -> list[ClusterEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT cluster_id, kind, computation, files, options, nodes, node_port, "
                "scheduler_port FROM clusters WHERE closed = 0 ORDER BY created").fetchall()
        return [ClusterEntry(r[0], r[1], r[2], [tuple(f) for f in _unpack(r[3])], _unpack(r[4]),
                             _unpack(r[5]), r[6], r[7] or 0) for r in rows]

    def jobs_of(self, cluster_id: str) -> list[JobEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, meta, args, spec, submit_time, result FROM jobs "
                "WHERE cluster_id = ? ORDER BY seq", (cluster_id,)).fetchall()
        return [JobEntry(r[0], r[1], _unpack(r[2]), _unpack(r[3]), r[4], _unpack(r[5])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
