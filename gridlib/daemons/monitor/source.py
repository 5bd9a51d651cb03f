"""Where the web monitor gets its data (docs/monitor.md §5): one small interface, two sources.

:class:`MonitorSource` is all :mod:`gridlib.httpd` knows: a snapshot of nodes,
jobs and clusters as JSON-ready dicts, a counter of jobs ended (the input of
the throughput chart), one job's detail (its output, when the source has
it), and the operator's actions (cancel jobs, node operations).  :class:`ClusterSource` serves a ``JobCluster`` or
``SharedJobCluster`` of this process; the shared scheduler daemon has its own
source, ``gridlib.daemons.scheduler.monitor.SchedulerSource``.

Nothing here imports cloudpickle or the cluster machinery: the scheduler daemon
imports this module too.
"""

from __future__ import annotations

import logging
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

from gridlib.protocol.errors import GridError

__all__ = ["MonitorSource", "MonitorSnapshot", "ActionError", "NODE_OPS", "STATES",
           "PROGRESS", "HISTORY", "short_text", "tail_text", "number", "progress"]

NODE_OPS = ("cpus", "allocate", "deallocate", "close")
HISTORY = 1000  #: finished jobs a source remembers (oldest forgotten first)
LISTED_QUEUED = 500  #: queued jobs listed one by one; the rest are only counted

#: a job's ``state`` as the page shows it, the same for every source:
#: ``queued`` (waiting for a node), ``dispatched`` (sent to a node, not started there yet),
#: ``running``, ``cancelling``, then one final state.  ``done`` is the shared scheduler's
#: final state: the job left its node, but whether it finished or failed only its client knows.
STATES = ("queued", "dispatched", "running", "cancelling",
          "finished", "failed", "cancelled", "abandoned", "done")
#: a cluster's ``progress``: counts of its jobs in each state, which add up (None: not known
#: to this source).  ``running`` includes ``cancelling``; ``done`` is every final job.
PROGRESS = ("queued", "dispatched", "running", "finished", "failed", "cancelled", "abandoned",
            "done")

log = logging.getLogger("gridlib.httpd")
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 60, 60, 6, 6, 4


class ActionError(GridError):
    """An operator's request the monitor cannot carry out; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class MonitorSnapshot:
    """The grid as the page shows it; every value is JSON-ready."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    #: running and queued jobs first, then finished ones, newest first
    jobs: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0  #: jobs ended since the source was made (a counter for the throughput chart)


class MonitorSource:
    """What the web monitor reads and asks; subclasses fill it in."""

    kind = "cluster"  #: "cluster" (a client's clusters) or "scheduler" (the shared daemon)
    node_ops = True  #: False: node operations answer 501 (see :meth:`node_op`)

    def snapshot(self) -> MonitorSnapshot:
        raise NotImplementedError

    def done_count(self) -> int:
        """Jobs ended so far (only differences matter); sampled once a second."""
        return self.snapshot().done

    def job_detail(self, job_id: str) -> dict[str, Any] | None:
        """One job with what is known of its run (output, traceback); None: not this source's."""
        return None

    def cancel(self, job_ids: list[str]) -> list[str]:
        """Cancel these jobs (queued or running); returns the ids this source acted on."""
        raise NotImplementedError

    def node_op(self, node: str, op: str, cpus: int | None = None) -> dict[str, Any]:
        """One of :data:`NODE_OPS` on a node named by id, name or address.

        Raises :class:`ActionError` 404 when this source has no such node.
        """
        raise ActionError(501, "node operations are not available here")

    def close(self) -> None:
        """Stop observing (the server shuts down)."""


def short_text(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail_text(value: Any, limit: int) -> tuple[str | None, bool]:
    """The last ``limit`` characters of a job's output (bytes decoded), and whether it was cut."""
    if value is None:
        return None, False
    cut = False
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        cut = len(data) > limit * 4
        value = data[-limit * 4:].decode(errors="replace")
    text = str(value)
    return (text, cut) if len(text) <= limit else (text[-limit:], True)


def progress(**counts: int | None) -> dict[str, int | None]:
    """A cluster's ``progress`` (:data:`PROGRESS` keys; those not given are None)."""
    return {key: counts.get(key) for key in PROGRESS}


def number(value: Any, digits: int = 3) -> float | None:
    """A finite float for JSON (browsers cannot parse NaN), or None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return round(x, digits) if math.isfinite(x) else None


