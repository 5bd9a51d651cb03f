"""Results spooled on disk until the scheduler acknowledges them (DESIGN §6).

A finished job's result is written (mode 0600) before it is sent and
deleted on ``RESULT_ACK``.  A node that lost its scheduler, or that was
restarted with the same ``--dest-path-prefix``, still has every
unacknowledged result and sends it again when the cluster is set up anew.
Files are written with a rename, so a crash leaves either the whole result
or nothing; they are not fsynced (a machine crash may lose the last ones).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["SpooledResult", "ResultSpool"]


@dataclass
class SpooledResult:
    cluster_id: str
    job_id: str
    fields: dict[str, Any]
    labels: list[str]
    path: Path

    def frames(self) -> list[bytes]:
        data = msgpack.unpackb(self.path.read_bytes(), raw=False)
        return list(data["frames"])


class ResultSpool:
    """One file per unacknowledged result, indexed in memory by job id."""

    def __init__(self, directory: Path, log: logging.Logger | None = None) -> None:
        self.directory = directory
        self.log = log or logging.getLogger("gridlib.node")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._index: dict[str, SpooledResult] = {}
        self._load()

    def _load(self) -> None:
        for path in sorted(self.directory.glob("*.res")):
            try:
                data = msgpack.unpackb(path.read_bytes(), raw=False)
                entry = SpooledResult(str(data["cluster_id"]), str(data["job_id"]),
                                      dict(data["fields"]), list(data["labels"]), path)
            except Exception as exc:  # a torn or foreign file: keep going without it
                self.log.warning("event=spool_unreadable path=%s error=%s", path, exc)
                continue
            self._index[entry.job_id] = entry
        if self._index:
            self.log.info("event=spool_loaded results=%d", len(self._index))

    def put(self, cluster_id: str, job_id: str, fields: dict[str, Any], frames: list[Any],
            labels: list[str]) -> None:
        name = "".join(c for c in job_id if c.isalnum() or c in "-_")[:128] or "job"
        path = self.directory / f"{name}.res"
        tmp = path.with_suffix(".tmp")
        blob = msgpack.packb({"cluster_id": cluster_id, "job_id": job_id, "fields": fields,
                              "labels": labels, "frames": [bytes(memoryview(f)) for f in frames]},
                             use_bin_type=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        self._index[job_id] = SpooledResult(cluster_id, job_id, fields, labels, path)

    def ack(self, job_id: str) -> None:
        entry = self._index.pop(job_id, None)
        if entry is not None:
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass

    def get(self, job_id: str) -> SpooledResult | None:
        return self._index.get(job_id)

    def all(self) -> list[SpooledResult]:
        return list(self._index.values())

    def of_cluster(self, cluster_id: str) -> list[SpooledResult]:
        return [e for e in self._index.values() if e.cluster_id == cluster_id]

    def drop_cluster(self, cluster_id: str) -> None:
        for entry in self.of_cluster(cluster_id):
            self.ack(entry.job_id)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._index
