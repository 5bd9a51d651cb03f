"""What the node's core knows of its result spool (docs/reliability.md §3): pure bookkeeping.

The spool's bytes live in the shell (:mod:`.spool`); the core keeps this index
-- which results are unacknowledged, for which cluster and attempt, and whether
each is still only in memory -- and turns its decisions into effects
(``SpoolHold``, ``SpoolPut``, ``SpoolWriteHeld``, ``SpoolAck``,
``SpoolDropCluster``, and the grace timer).

A result sent over a live link is *held* in memory and written only if it is
still unacknowledged ``SPOOL_GRACE`` seconds later (acks take milliseconds:
most never touch the disk); one sent while no link is up is written at once,
and so is everything held when a link is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import (
    Effect,
    SetTimer,
    SpoolAck,
    SpoolDropCluster,
    SpoolHold,
    SpoolPut,
    SpoolWriteHeld,
)

__all__ = ["SpoolIndex", "Spooled", "SPOOL_GRACE", "SPOOL_TIMER"]

SPOOL_GRACE = 1.0
SPOOL_TIMER = ("spool",)


@dataclass
class Spooled:
    cluster_id: str
    attempt: int
    held_since: float | None = None  # in memory since; None once on disk


class SpoolIndex:
    """Unacknowledged results by job id; effects go to ``out``."""

    def __init__(self, out: list[Effect]) -> None:
        self.out = out
        self.entries: dict[str, Spooled] = {}
        self._timer = False

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.entries

    def __getitem__(self, job_id: str) -> Spooled:
        return self.entries[job_id]

    def get(self, job_id: str) -> Spooled | None:
        return self.entries.get(job_id)

    def loaded(self, entries: tuple[tuple[str, str, int], ...]) -> None:
        """Results found in the spool at start."""
        for job_id, cluster_id, attempt in entries:
            self.entries[job_id] = Spooled(cluster_id, attempt)

    def of_cluster(self, cluster_id: str) -> list[tuple[str, int]]:
        """(job id, attempt) of the cluster's unacknowledged results."""
        return [(job_id, e.attempt) for job_id, e in self.entries.items() if e.cluster_id == cluster_id]

    def clusters(self) -> set[str]:
        return {e.cluster_id for e in self.entries.values()}

    def keep(self, cluster_id: str, job_id: str, attempt: int, fields: dict[str, Any],
             frames: list[Any], labels: list[str], live: bool, now: float) -> None:
        """A job's result: held (sent over a live link) or written now."""
        entry = Spooled(cluster_id, attempt)
        if live:
            entry.held_since = now
            self.out.append(SpoolHold(cluster_id, job_id, fields, frames, labels))
            if not self._timer:
                self._timer = True
                self.out.append(SetTimer(SPOOL_TIMER, now + SPOOL_GRACE))
        else:
            self.out.append(SpoolPut(cluster_id, job_id, fields, frames, labels))
        self.entries[job_id] = entry

    def acked(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            del self.entries[job_id]
        if job_ids:
            self.out.append(SpoolAck(job_ids))

    def write_all_held(self) -> None:
        """Make every held result durable now (a link was lost, the node leaves)."""
        if any(e.held_since is not None for e in self.entries.values()):
            self.out.append(SpoolWriteHeld(None))
            for entry in self.entries.values():
                entry.held_since = None

    def grace_ended(self, now: float) -> None:
        """The timer: write what is still unacknowledged SPOOL_GRACE after it was sent."""
        self._timer = False
        before = now - SPOOL_GRACE
        self.out.append(SpoolWriteHeld(before))
        left = False
        for entry in self.entries.values():
            if entry.held_since is not None:
                if entry.held_since <= before:
                    entry.held_since = None
                else:
                    left = True
        if left:
            self._timer = True
            self.out.append(SetTimer(SPOOL_TIMER, now + SPOOL_GRACE / 2))

    def drop_cluster(self, cluster_id: str) -> None:
        dropped = [job_id for job_id, e in self.entries.items() if e.cluster_id == cluster_id]
        for job_id in dropped:
            del self.entries[job_id]
        if dropped:
            self.out.append(SpoolDropCluster(cluster_id))
