"""Which schedulers a node dials after their beacons (docs/security.md §3): pure policy.

Beacons are not authenticated: anyone who can reach the beacon port can name
a trusted key (keys are public) at a dead endpoint, with a fresh scheduler id
each time.  Dialing costs a socket and one of ``MAX_PENDING`` slots until
the scheduler answers.  The rules that keep a flood of forged beacons from
starving a real client:

- a link whose endpoint refuses the connection, or whose CURVE handshake
  fails, is dropped at once (the shell reports it): a forged beacon holds a
  slot for a round trip, not for ``PENDING_TIMEOUT``;
- one pending link per endpoint; at most ``OPEN_RATE`` dials a second;
- when slots or dials run short, beacons become *candidates*, and the most
  persistent go first: a real scheduler repeats its beacon (same id, ten a
  second right after it starts), a forger that wants many candidates cannot
  repeat each of them as often;
- a full set of slots gives way to a more persistent candidate once its
  oldest has had ``MIN_AGE`` seconds to answer, and at once to an endpoint
  that completed a registration before (*proven*);
- a link that registered is never disturbed by a beacon.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridlib.protocol.beacon import Beacon

__all__ = ["DialPolicy", "Candidate", "Pending", "MAX_PENDING", "MIN_AGE", "OPEN_RATE"]

MAX_PENDING = 16  # links dialed after a beacon and not registered yet
MIN_AGE = 1.0  # seconds a pending link keeps its slot against newcomers
OPEN_RATE = 50.0  # dials per second (a burst of as many)
_CANDIDATES = 1024  # beacons waiting for a dial, at most
_CANDIDATE_TTL = 10.0  # seconds a candidate waits for a dial
_PROVEN = 256  # endpoints remembered as proven


@dataclass
class Candidate:
    beacon: Beacon
    count: int  # beacons heard from this scheduler id (the same epoch)
    first: float
    last: float


@dataclass(frozen=True)
class Pending:
    """What the policy needs to know of a pending link."""

    sid: str
    endpoint: str
    opened: float
    persistence: int  # its candidate's count when it was dialed


class DialPolicy:
    """Candidates, the dial budget and the proven endpoints."""

    def __init__(self) -> None:
        self.candidates: dict[str, Candidate] = {}
        self.proven: dict[str, float] = {}
        self._tokens = OPEN_RATE
        self._refill = 0.0

    def heard(self, beacon: Beacon, now: float) -> Candidate:
        """Count a beacon of a scheduler we have no link to."""
        known = self.candidates.get(beacon.scheduler_id)
        if known is not None and known.beacon.epoch == beacon.epoch:
            known.count += 1
            known.last, known.beacon = now, beacon
            return known
        candidate = self.candidates[beacon.scheduler_id] = Candidate(beacon, 1, now, now)
        if len(self.candidates) > _CANDIDATES:
            self._prune(now)
        return candidate

    def _prune(self, now: float) -> None:
        """Forget stale candidates, then the least persistent ones."""
        fresh = {sid: c for sid, c in self.candidates.items() if now - c.last < _CANDIDATE_TTL}
        if len(fresh) > _CANDIDATES * 3 // 4:
            keep = sorted(fresh.values(), key=lambda c: (-c.count, c.first))[:_CANDIDATES * 3 // 4]
            fresh = {c.beacon.scheduler_id: c for c in keep}
        self.candidates = fresh

    def choose(self, candidate: Candidate, pending: list[Pending],
               now: float) -> tuple[bool, Pending | None]:
        """May ``candidate`` be dialed now?  (yes/no, and the pending link to drop for it)."""
        endpoint = candidate.beacon.endpoint
        if any(p.endpoint == endpoint for p in pending):
            return False, None
        proven = endpoint in self.proven
        self._tokens = min(OPEN_RATE, self._tokens + (now - self._refill) * OPEN_RATE)
        self._refill = now
        if self._tokens < 1.0 and not proven:
            return False, None
        evict = None
        if len(pending) >= MAX_PENDING:
            oldest = min(pending, key=lambda p: p.opened)
            if not proven and (now - oldest.opened < MIN_AGE or oldest.persistence >= candidate.count):
                return False, None
            evict = oldest
        self._tokens -= 1.0
        self.candidates.pop(candidate.beacon.scheduler_id, None)
        return True, evict

    @property
    def pressed(self) -> bool:
        """Dials are scarce: beacons wait as candidates and the most persistent go first."""
        return self._tokens < OPEN_RATE / 2

    def best(self, now: float, limit: int) -> list[Candidate]:
        """The candidates to try at a tick, most persistent first."""
        live = [c for c in self.candidates.values() if now - c.last < _CANDIDATE_TTL]
        return sorted(live, key=lambda c: (-c.count, c.first))[:limit]

    def registered(self, endpoint: str, now: float) -> None:
        """``endpoint`` completed a registration: it is proven."""
        self.proven[endpoint] = now
        if len(self.proven) > _PROVEN:
            del self.proven[min(self.proven, key=self.proven.__getitem__)]
