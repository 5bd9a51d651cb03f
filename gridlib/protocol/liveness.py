"""Liveness of peers from the messages they send (docs/reliability.md §2).

Any message from a peer counts as a heartbeat.  A peer silent for
``suspect_after`` intervals is *suspect* (no new work goes to it); silent for
``lost_after`` intervals it is *lost*.  Pure: the caller passes the clock.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Liveness", "LivenessPolicy", "LivenessTracker", "Backoff"]

PeerKey = TypeVar("PeerKey", bound=Hashable)


class Liveness(enum.Enum):
    ALIVE = "alive"  #: heard from within ``suspect_after`` intervals
    SUSPECT = "suspect"  #: silent for a while: send it nothing new
    LOST = "lost"  #: silent too long: its work is requeued or abandoned


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    interval: float = 2.0
    suspect_after: int = 3
    lost_after: int = 5

    def to_map(self) -> dict[str, float | int]:
        return {"heartbeat": self.interval, "suspect_after": self.suspect_after,
                "lost_after": self.lost_after}


class LivenessTracker(Generic[PeerKey]):
    """Last-heard times of a set of peers."""

    def __init__(self, policy: LivenessPolicy) -> None:
        self.policy = policy
        self._last: dict[PeerKey, float] = {}

    def touch(self, peer: PeerKey, now: float) -> None:
        self._last[peer] = now

    def last(self, peer: PeerKey) -> float:
        """When ``peer`` was last heard (0 if never)."""
        return self._last.get(peer, 0.0)

    def forget(self, peer: PeerKey) -> None:
        self._last.pop(peer, None)

    def state(self, peer: PeerKey, now: float) -> Liveness:
        last = self._last.get(peer)
        if last is None:
            return Liveness.LOST
        silent = (now - last) / self.policy.interval
        if silent >= self.policy.lost_after:
            return Liveness.LOST
        if silent >= self.policy.suspect_after:
            return Liveness.SUSPECT
        return Liveness.ALIVE

    def lost(self, now: float) -> list[PeerKey]:
        """Peers silent for ``lost_after`` intervals (they stay tracked until forgotten)."""
        limit = self.policy.interval * self.policy.lost_after
        return [p for p, t in self._last.items() if now - t >= limit]


class Backoff:
    """Jittered exponential backoff: 1 s doubling to 32 s, +-25 %."""

    def __init__(self, first: float = 1.0, cap: float = 32.0, jitter: float = 0.25) -> None:
        self.first, self.cap, self.jitter = first, cap, jitter
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._next = self.first
