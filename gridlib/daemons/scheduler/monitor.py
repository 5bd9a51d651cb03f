"""The shared scheduler's side of the web monitor (``gridlib scheduler --httpd``; docs/monitor.md).

:class:`SchedulerSource` gives :mod:`gridlib.httpd` the grid as the
scheduler core sees it.  The core belongs to the reactor thread, so every
read and every action runs there: posted with ``call_soon_threadsafe`` and
awaited on a ``concurrent.futures.Future`` with a timeout (a busy scheduler
answers 503, it is never read from another thread).

What it shows: every node (with its jobs, those sent ahead and not started
apart from those running) and every cluster of every user, from
``SchedulerCore.snapshot``.  The scheduler passes results on without keeping
them, so a job that leaves its node is listed as done (``status`` ``Ended``,
``state`` ``done``; ``Cancelled`` when the operator cancelled it here): whether
it finished or failed only its client knows.  Start and end times are when
the monitor's polls saw the job start and leave.  Queued jobs are counted per
cluster, not listed.  The operator may cancel any job; node operations
(CPUs, allocation, close) are per cluster in gridlib, so here they answer 501.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from gridlib.daemons.monitor.source import (
    HISTORY,
    ActionError,
    MonitorSnapshot,
    MonitorSource,
    number,
    progress,
)

__all__ = ["SchedulerSource", "NODE_OPS_UNAVAILABLE", "NO_OUTPUT"]

T = TypeVar("T")
NODE_OPS_UNAVAILABLE = ("not available on the shared scheduler's monitor: a node's CPUs and "
                        "allocation belong to each cluster; use the cluster's own API "
                        "(set_node_cpus, allocate_node, deallocate_node, close_node)")
NO_OUTPUT = ("the shared scheduler passes a job's result, output and traceback to its client "
             "without keeping them: open your own cluster's monitor (gridlib.httpd.HTTPServer"
             "(cluster)) to see them")
#: the core's job states -> the page's (``adopting``: its node came back and will report it)
_STATE = {"dispatched": "dispatched", "running": "running", "cancelling": "cancelling",
          "adopting": "running"}


class SchedulerSource(MonitorSource):
    """The scheduler daemon's :class:`~.service.SchedulerService`, read on its reactor thread."""

    kind = "scheduler"
    node_ops = False

    def __init__(self, service: Any, timeout: float = 5.0, history: int = HISTORY) -> None:
        self.service = service
        self.timeout = timeout
        self._lock = threading.Lock()
        self._active: dict[str, dict[str, Any]] = {}  # job id -> last seen entry
        self._first_seen: dict[str, float] = {}  # job id -> when first seen on a node
        self._first_running: dict[str, float] = {}  # job id -> when first seen started there
        self._seq, self._tracked = itertools.count(1), 0
        self._pending: set[Future[Any]] = set()
        self._closed = False
        self._cancelled: set[str] = set()  # asked for here and not yet gone
        self._ended: deque[dict[str, Any]] = deque(maxlen=history)
        self._node_done: dict[str, int] = {}
        self._done = 0

    def _on_reactor(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the scheduler's thread and wait for its answer."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise ActionError(503, "the monitor is shutting down")
            self._pending.add(future)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                if self.service.closed:
                    raise ActionError(503, "the scheduler is shutting down")
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)

        self.service.reactor.call_soon_threadsafe(run)
        try:
            return future.result(self.timeout)
        except FutureTimeout:
            future.cancel()
            raise ActionError(503, f"the scheduler did not answer within {self.timeout:g} s") from None
        except CancelledError:
            raise ActionError(503, "the monitor is shutting down") from None
        finally:
            with self._lock:
                self._pending.discard(future)

    def close(self) -> None:
        """No more calls to the scheduler; those waiting give up at once."""
        with self._lock:
            self._closed = True
            pending, self._pending = list(self._pending), set()
        for future in pending:
            future.cancel()

    # -- reading ------------------------------------------------------------------------
    def snapshot(self) -> MonitorSnapshot:
        # numbered on the reactor thread: two readers' snapshots are tracked in the order taken
        seq, snap = self._on_reactor(
            lambda: (next(self._seq), self.service.core.snapshot(time.monotonic())))
        wall = time.time()
        nodes, active = [], {}
        for record in snap["nodes"]:
            running = []
            for entry in record["running"]:
                state = _STATE.get(str(entry["state"]), "running")
                # the job's id as its client knows it (JOB_SUBMIT's label), else its wire id
                job = {"job_id": entry["job_id"], "id": entry.get("label") or entry["job_id"],
                       "cluster_id": entry["cluster_id"], "status": str(entry["state"]).capitalize(),
                       "state": state, "final": False, "node": record["name"],
                       "ip_addr": record["ip_addr"], "attempt": entry["attempt"],
                       "submit_time": None, "dispatch_time": None, "start_time": None,
                       "end_time": None, "args": None, "exception": None}
                running.append(job)
                active[job["job_id"]] = job
            nodes.append(self._node_info(record, wall, running))
        with self._lock:
            if seq > self._tracked:
                self._tracked = seq
                self._track(active, wall, nodes)
            else:  # a later snapshot was tracked already: only show this one
                for job_id, job in active.items():
                    job["dispatch_time"] = number(self._first_seen.get(job_id, wall))
                    job["start_time"] = number(self._first_running.get(job_id))
            ended, done = list(self._ended), self._done
        per_cluster: dict[str, list[int]] = {}
        for job in active.values():
            counts = per_cluster.setdefault(job["cluster_id"], [0, 0])
            counts[job["state"] == "dispatched"] += 1
        clusters = []
        for c in snap["clusters"]:
            running_now, sent = per_cluster.get(c["cluster_id"], [0, 0])
            clusters.append({**c, "nodes": None, "dispatched": sent, "progress": progress(
                queued=c["queued"], dispatched=sent, running=running_now, done=c["done"])})
        return MonitorSnapshot(nodes, [*active.values(), *ended], clusters, done)

    def _track(self, active: dict[str, dict[str, Any]], wall: float,
               nodes: list[dict[str, Any]]) -> None:
        """Jobs that left every node since the last look have ended; count node work."""
        for job_id, job in active.items():  # first seen there / started: near enough
            job["dispatch_time"] = number(self._first_seen.setdefault(job_id, wall))
            if job["state"] != "dispatched":
                self._first_running.setdefault(job_id, wall)
            job["start_time"] = number(self._first_running.get(job_id))
        for job_id, job in self._active.items():
            if job_id not in active:
                cancelled = job_id in self._cancelled
                self._cancelled.discard(job_id)
                self._first_seen.pop(job_id, None)
                self._first_running.pop(job_id, None)
                self._ended.appendleft({**job, "status": "Cancelled" if cancelled else "Ended",
                                        "state": "cancelled" if cancelled else "done",
                                        "final": True, "end_time": number(wall)})
        self._active = active
        for node in nodes:  # per node, so that a node leaving or re-registering never counts back
            before = self._node_done.get(node["node_id"])
            if before is not None:
                self._done += max(0, node["jobs_done"] - before)
            self._node_done[node["node_id"]] = node["jobs_done"]

    def job_detail(self, job_id: str) -> dict[str, Any] | None:
        """What this monitor knows of one job: no output, no arguments (see the module)."""
        with self._lock:
            job = self._active.get(job_id) or next(
                (j for j in self._ended if j["job_id"] == job_id), None)
        if job is None:
            return None
        return {**job, "output": "none", "stdout": None, "stderr": None, "traceback": None,
                "result": None, "note": NO_OUTPUT}

    @staticmethod
    def _node_info(record: dict[str, Any], wall: float, running: list[dict[str, Any]]) -> dict[str, Any]:
        avail = record.get("avail") or None
        sent = sum(1 for job in running if job["state"] == "dispatched")
        return {
            "node_id": record["node_id"], "name": record["name"], "ip_addr": record["ip_addr"],
            "cpus": record["cpus"], "node_cpus": record["cpus"], "busy": record["busy"],
            "jobs_done": record["jobs_done"], "cpu_time": None,
            "platform": str(record.get("platform") or ""), "status": "Initialized",
            "state": "suspect" if record["suspect"] else "in use", "suspect": record["suspect"],
            "update_time": number(wall - float(record["last_heard"])),
            "avail": None if not isinstance(avail, dict) else {
                key: number(avail.get(key), 1) for key in ("cpu", "memory", "disk", "swap")},
            "clusters": sorted({job["cluster_id"] for job in running}), "running": running,
            "jobs_running": len(running) - sent, "jobs_dispatched": sent,
        }

    # -- actions ----------------------------------------------------------------------
    def cancel(self, job_ids: list[str]) -> list[str]:
        def cancel_now() -> list[str]:
            acted, sends = self.service.core.operator_cancel(job_ids, time.monotonic())
            # the shell's own delivery (journal first, then the sockets); we are on its thread
            self.service._deliver(sends)
            return list(acted)
        acted = self._on_reactor(cancel_now)
        with self._lock:
            if len(self._cancelled) > 10 * HISTORY:  # ids of jobs that ended unseen
                self._cancelled.clear()
            self._cancelled.update(acted)
        return acted

    def node_op(self, node: str, op: str, cpus: int | None = None) -> dict[str, Any]:
        raise ActionError(501, NODE_OPS_UNAVAILABLE)
