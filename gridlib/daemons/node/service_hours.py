"""A node's daily service hours (``--service-start/--service-stop/--service-end``).

Pure: :meth:`ServiceHours.phase` maps a local wall-clock time to what the
node should be doing, and nothing here reads the clock, so the node's shell
(:mod:`.lifecycle`) asks it every tick and tests pass any time they like.

The day is a cycle that begins at ``start``: the node serves from ``start``
until ``stop`` (or ``end`` when there is no ``stop``); from ``stop`` it takes
no new jobs while its running jobs finish; from ``end`` (or, without an
``end``, once they have finished) it is out of the grid until the next
``start``.  Any time may be earlier in the day than ``start``: such a window
wraps midnight (``--service-start 19:00 --service-end 07:00`` serves at night).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

__all__ = ["Phase", "ServiceHours", "parse_clock_time", "minute_of_day"]

_DAY = 24 * 60
_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


class Phase(str, enum.Enum):
    """What a node with service hours does now."""

    #: takes clusters and jobs as usual
    SERVING = "serving"
    #: takes no new clusters or jobs; running jobs finish, then the node leaves the grid
    STOPPED = "stopped"
    #: running jobs are killed; the node is out of the grid until the next start
    ENDED = "ended"


def parse_clock_time(text: str, what: str = "time") -> int:
    """``"HH:MM"`` (or ``"HH:MM:SS"``) -> seconds since midnight; ValueError names ``what``."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{what}: {text!r} is not a time of day as HH:MM (e.g. 18:30)")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{what}: {text!r} is not a time of day (00:00 to 23:59)")
    return hours * 3600 + minutes * 60 + seconds


def minute_of_day(now: dt.datetime | dt.time) -> float:
    """Minutes since local midnight, with the seconds as a fraction."""
    return now.hour * 60 + now.minute + now.second / 60


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class ServiceHours:
    """Daily service window; times are minutes since local midnight."""

    start: int
    stop: int | None = None
    end: int | None = None

    @classmethod
    def from_options(cls, start: str = "", stop: str = "", end: str = "") -> ServiceHours | None:
        """The window the three options describe, or None when none is given.

        Raises ValueError with a message naming the option at fault.
        """
        if not (start or stop or end):
            return None
        if not start:
            raise ValueError("--service-stop and --service-end need --service-start "
                             "(the time service begins each day)")
        if not (stop or end):
            raise ValueError("--service-start needs --service-stop or --service-end "
                             "(the time the node stops taking jobs each day)")
        hours = cls(parse_clock_time(start, "--service-start") // 60,
                    parse_clock_time(stop, "--service-stop") // 60 if stop else None,
                    parse_clock_time(end, "--service-end") // 60 if end else None)
        hours.validate()
        return hours

    def _offset(self, minute: float) -> float:
        """Minutes since the most recent ``start``."""
        return (minute - self.start) % _DAY

    def validate(self) -> None:
        for name, value in (("--service-stop", self.stop), ("--service-end", self.end)):
            if value is not None and value == self.start:
                raise ValueError(f"{name} {_hhmm(value)} is the same time as --service-start: "
                                 f"the node would never serve")
        if self.stop is not None and self.end is not None \
                and self._offset(self.stop) >= self._offset(self.end):
            raise ValueError(f"--service-stop {_hhmm(self.stop)} must come before --service-end "
                             f"{_hhmm(self.end)}, counting from --service-start {_hhmm(self.start)}")

    def phase(self, now: dt.datetime | dt.time) -> Phase:
        """What the node does at local time ``now``."""
        offset = self._offset(minute_of_day(now))
        first = self.stop if self.stop is not None else self.end
        if first is None or offset < self._offset(first):  # no stop and no end: always
            return Phase.SERVING
        if self.end is None:
            return Phase.STOPPED
        if self.stop is not None and offset < self._offset(self.end):
            return Phase.STOPPED
        return Phase.ENDED

    def describe(self) -> str:
        """``start=08:00 stop=18:00 end=19:00`` for logs."""
        parts = [f"start={_hhmm(self.start)}"]
        if self.stop is not None:
            parts.append(f"stop={_hhmm(self.stop)}")
        if self.end is not None:
            parts.append(f"end={_hhmm(self.end)}")
        return " ".join(parts)

    def next_start(self) -> str:
        return _hhmm(self.start)
