"""The web monitor's view of a ``JobCluster`` of this process (docs/monitor.md).

:class:`ClusterSource` is the :class:`~gridlib.daemons.monitor.source.MonitorSource`
of a client's own cluster, read through its public API; ``gridlib.httpd.HTTPServer``
wraps every cluster it is given in one.  The server itself (and the scheduler
daemon's source) live below the client, in ``gridlib.daemons.monitor``.
"""

from __future__ import annotations

import logging
import reprlib
import threading
import time
import weakref
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from gridlib.daemons.monitor.source import (
    HISTORY,
    LISTED_QUEUED,
    ActionError,
    MonitorSnapshot,
    MonitorSource,
    number,
    progress,
    short_text,
    tail_text,
)
from gridlib.job import FINAL_STATES, Job, JobStatus
from gridlib.protocol.codec import new_message
from gridlib.protocol.errors import ConnectionLost, GridError

__all__ = ["ClusterSource", "job_info", "job_state"]

log = logging.getLogger("gridlib.httpd")
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 60, 60, 6, 6, 4
_long = reprlib.Repr()  # a job's detail: more of its arguments and result
_long.maxstring, _long.maxother, _long.maxlist, _long.maxtuple, _long.maxdict = 400, 400, 30, 30, 20
_long.maxlevel = 4

#: a job's final status -> its ``state`` (docs/monitor.md): Terminated is shown as failed
_FINAL_STATE = {JobStatus.Finished: "finished", JobStatus.Terminated: "failed",
                JobStatus.Cancelled: "cancelled", JobStatus.Abandoned: "abandoned"}
STATUS_REUSE = 0.75  #: seconds one STATUS answer (which jobs are on which node) is reused
STATUS_TIMEOUT = 2.0  #: how long a snapshot waits for the scheduler's STATUS answer
STATUS_RETRY = 10.0  #: after an unanswered STATUS, seconds without asking again
KEPT_OUTPUT = 4096  #: characters of stdout and of stderr kept per finished job ...
KEPT_TRACEBACK = 8192  #: ... and of its traceback (the job object itself may be gone)
SHOWN_OUTPUT = 65536  #: characters of a stream a detail answer carries (its end)


def _exception_line(text: str | None) -> str | None:
    """The last line of a traceback: what went wrong, in a table cell."""
    if not text:
        return None
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return short_text(lines[-1].strip()) if lines else None


def _args_text(job: Job, how: reprlib.Repr = _repr, limit: int = 120) -> str:
    try:
        parts = [how.repr(a) for a in job.args]
        parts += [f"{k}={how.repr(v)}" for k, v in list(job.kwargs.items())[:how.maxdict]]
        return short_text(", ".join(parts), limit)
    except Exception:  # user objects may fail to repr: show that, never fail the page
        return "<unprintable>"


def job_state(job: Job, placed: tuple[str, str] | None = None) -> str:
    """What the page calls the job's state; ``placed``: (state, node) the scheduler reports."""
    final = _FINAL_STATE.get(job.status)
    if final is not None:
        return final
    where = placed[0] if placed else None
    if where == "cancelling":
        return "cancelling"
    if job.status in (JobStatus.Running, JobStatus.ProvisionalResult) or where in ("running", "adopting"):
        return "running"
    return "dispatched" if where == "dispatched" else "queued"


def job_info(job: Job, cluster_id: str, show_args: bool,
             placed: tuple[str, str] | None = None) -> dict[str, Any]:
    """A job as the API lists it; ``job_id`` is the wire id the actions take, ``id`` the
    user's own ``job.id`` (the cluster numbers jobs 0, 1, 2... unless given one)."""
    return {
        "job_id": job.uid, "id": short_text(job.id, 80), "cluster_id": cluster_id,
        "status": job.status.name, "state": job_state(job, placed),
        "final": job.status in FINAL_STATES,
        "node": job.node or (placed[1] if placed else None), "ip_addr": job.ip_addr,
        "submit_time": number(job.submit_time), "start_time": number(job.start_time),
        "end_time": number(job.end_time),
        "args": _args_text(job) if show_args else None,
        "exception": _exception_line(job.exception),
    }


@dataclass(slots=True)
class _Kept:
    """What the monitor keeps of a finished job for its detail (docs/monitor.md §3)."""

    info: dict[str, Any]
    job: weakref.ref[Job]  # the whole output while the program still holds the job
    stdout: tuple[str | None, bool]
    stderr: tuple[str | None, bool]
    traceback: tuple[str | None, bool]


class ClusterSource(MonitorSource):
    """A ``JobCluster`` (or ``SharedJobCluster``) of this process, seen through its public API.

    Finished jobs leave the cluster's books at once, so the source keeps the
    last ``history`` of them itself: it chains the cluster's ``job_status``
    callback (restored by :meth:`close`).  A callback moves result delivery
    off the I/O thread's fast path, which costs a thread hand-off per loop
    turn; a monitored cluster pays that.

    Which queued jobs the scheduler has already sent to a node (and not
    started there) only the scheduler knows: a snapshot asks it with one
    ``STATUS`` request, as ``gridlib status`` does (reused for
    :data:`STATUS_REUSE` s; without an answer the jobs count as queued).
    """

    def __init__(self, cluster: Any, history: int = HISTORY, show_job_args: bool = True) -> None:
        self.cluster = cluster
        self.cluster_id = str(cluster.cluster_id)
        self.show_job_args = show_job_args
        self.history = max(1, int(history))
        self.started = time.time()  # final counts are of the jobs that ended since
        self._finished: deque[dict[str, Any]] = deque(maxlen=self.history)
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._ended: Counter[str] = Counter()
        self._done = 0
        self._node_state: dict[str, str] = {}  # node id -> what the operator last made it
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._placed: dict[str, tuple[str, str]] | None = None
        self._placed_at = -1e9
        self._ask_after = 0.0
        self._previous = cluster.job_status
        cluster.job_status = self._on_job_status

    def _on_job_status(self, job: Job) -> None:
        """The cluster's delivery thread, for every provisional and final result."""
        if job.status in FINAL_STATES:
            try:
                info = job_info(job, self.cluster_id, self.show_job_args)
                kept = _Kept(info, weakref.ref(job), tail_text(job.stdout, KEPT_OUTPUT),
                             tail_text(job.stderr, KEPT_OUTPUT),
                             tail_text(job.exception, KEPT_TRACEBACK))
                with self._lock:
                    self._finished.appendleft(info)
                    self._kept[job.uid] = kept
                    while len(self._kept) > self.history:
                        self._kept.popitem(last=False)
                    self._ended[job.status.name] += 1
                    self._done += 1
            except Exception:
                log.exception("event=monitor_record_failed job=%s", job.uid)
        if self._previous is not None:
            self._previous(job)

    def close(self) -> None:
        if self.cluster.job_status == self._on_job_status:
            self.cluster.job_status = self._previous

    def done_count(self) -> int:
        return self._done

    # -- reading ----------------------------------------------------------------------
    def _placement(self) -> dict[str, tuple[str, str]] | None:
        """This cluster's jobs on nodes as the scheduler sees them: wire id -> (state, node
        name), state one of dispatched, running, cancelling, adopting.  None: not known now.

        The client hears of a job only when it starts (and not at all of one that runs
        under 10 ms), so which of its queued jobs were sent ahead to a node is asked of the
        scheduler: one ``STATUS`` request, answered on the scheduler's own thread.
        """
        with self._status_lock:
            now = time.monotonic()
            if now - self._placed_at < STATUS_REUSE:
                return self._placed
            conn = getattr(self.cluster, "_conn", None)
            if conn is None or getattr(self.cluster, "_closed", False) or now < self._ask_after:
                return None
            try:
                answer = conn.request(new_message("STATUS"), timeout=STATUS_TIMEOUT)
            except Exception as exc:  # no answer (busy, restarting, closed): counted as queued
                log.debug("event=monitor_status_failed cluster=%s error=%s", self.cluster_id[:8], exc)
                self._ask_after, self._placed = now + STATUS_RETRY, None
                return None
            placed: dict[str, tuple[str, str]] = {}
            for node in answer.fields.get("nodes") or []:
                for entry in node.get("running") or []:
                    if isinstance(entry, dict) and entry.get("cluster_id") == self.cluster_id:
                        placed[str(entry.get("job_id"))] = (str(entry.get("state")),
                                                            str(node.get("name") or ""))
            self._placed, self._placed_at = placed, time.monotonic()
            return placed

    def snapshot(self) -> MonitorSnapshot:
        status = self.cluster.status()
        placed = self._placement()
        where = placed or {}
        per_node: dict[str, list[dict[str, Any]]] = {}
        on_nodes: list[dict[str, Any]] = []
        queued: list[dict[str, Any]] = []
        queued_count = 0
        # no public list of a cluster's unfinished jobs: ``cluster._jobs`` (a dict copied in
        # one step, as the cluster itself does); finished jobs are never in it
        for job in list(self.cluster._jobs.values()):
            if job.status in FINAL_STATES:  # ending now: listed with the finished ones
                continue
            if job_state(job, where.get(job.uid)) == "queued":
                queued_count += 1
                if len(queued) < LISTED_QUEUED:
                    queued.append(job_info(job, self.cluster_id, self.show_job_args))
                continue
            info = job_info(job, self.cluster_id, self.show_job_args, where.get(job.uid))
            on_nodes.append(info)
            if info["node"]:
                per_node.setdefault(info["node"], []).append(info)
        on_nodes.sort(key=lambda j: (j["state"] == "dispatched", j["start_time"] or 0))
        nodes = [self._node_info(n, per_node.get(n.name, [])) for n in status.nodes]
        with self._lock:
            finished, ended, done = list(self._finished), dict(self._ended), self._done
        running = sum(1 for j in on_nodes if j["state"] != "dispatched")
        dispatched = len(on_nodes) - running
        counts = {name.lower(): ended.get(name, 0) for name in
                  ("Finished", "Terminated", "Cancelled", "Abandoned")}
        cluster = {
            "cluster_id": self.cluster_id, "kind": str(getattr(self.cluster, "_kind", "")),
            "queued": queued_count, "running": running, "done": done,
            "nodes": sum(1 for n in nodes if n["status"] != "Closed"),
            **counts, "dispatched": dispatched, "failed": counts["terminated"],
            "progress": progress(queued=queued_count, dispatched=dispatched, running=running,
                                 finished=counts["finished"], failed=counts["terminated"],
                                 cancelled=counts["cancelled"], abandoned=counts["abandoned"],
                                 done=done),
            "start_time": number(getattr(self.cluster, "start_time", None)),
            "counted_since": number(self.started), "dispatch_known": placed is not None,
        }
        return MonitorSnapshot(nodes, on_nodes + queued + finished, [cluster], done)

    def job_detail(self, job_id: str) -> dict[str, Any] | None:
        job = self.cluster._jobs.get(job_id)  # (see snapshot) queued, sent or running
        if job is not None and job.status not in FINAL_STATES:
            placed = (self._placed or {}).get(job_id)
            return {**job_info(job, self.cluster_id, self.show_job_args, placed),
                    "args": _args_text(job, _long, 2000) if self.show_job_args else None,
                    "output": "pending", "stdout": None, "stderr": None, "traceback": None,
                    "result": None, "attempts": job.attempts,
                    "note": "its stdout, stderr and traceback come back with its result"}
        with self._lock:
            kept = self._kept.get(job_id)
        if kept is None:
            return None
        held = kept.job()
        detail: dict[str, Any] = {**kept.info, "attempts": None, "result": None}
        if held is not None:  # the program still holds the job: all of it
            if self.show_job_args:
                detail["args"] = _args_text(held, _long, 2000)
            streams = {"stdout": tail_text(held.stdout, SHOWN_OUTPUT),
                       "stderr": tail_text(held.stderr, SHOWN_OUTPUT),
                       "traceback": tail_text(held.exception, SHOWN_OUTPUT)}
            detail["attempts"] = held.attempts
            if self.show_job_args and held.status == JobStatus.Finished:
                try:
                    detail["result"] = _long.repr(held.result)
                except Exception:
                    detail["result"] = "<unprintable>"
            detail["output"] = "whole"
        else:  # what was kept when it ended
            streams = {"stdout": kept.stdout, "stderr": kept.stderr, "traceback": kept.traceback}
            detail["output"] = "kept"
        for name, (text, cut) in streams.items():
            detail[name], detail[name + "_truncated"] = text, cut
        return detail

    def _node_info(self, node: Any, running: list[dict[str, Any]]) -> dict[str, Any]:
        avail = node.avail_info
        state = "closed" if node.status.name == "Closed" else self._node_state.get(node.node_id, "in use")
        sent = sum(1 for j in running if j["state"] == "dispatched")
        return {
            "node_id": node.node_id, "name": node.name, "ip_addr": node.ip_addr,
            "cpus": node.cpus, "node_cpus": node.avail_cpus or node.cpus, "busy": node.busy,
            "jobs_done": node.jobs_done, "cpu_time": number(node.cpu_time, 1),
            "platform": node.platform, "status": node.status.name, "state": state,
            "suspect": False, "update_time": number(node.update_time),
            "avail": None if avail is None else {
                "cpu": number(avail.cpu, 1), "memory": number(avail.memory, 0),
                "disk": number(avail.disk, 0), "swap": number(avail.swap, 1)},
            "clusters": [self.cluster_id], "running": running,
            "jobs_running": len(running) - sent, "jobs_dispatched": sent,
        }

    # -- actions ------------------------------------------------------------------------
    def cancel(self, job_ids: list[str]) -> list[str]:
        jobs = self.cluster._jobs  # (see _active_jobs) the wire id is the key
        acted = []
        for job_id in job_ids:
            job = jobs.get(job_id)
            if job is not None and self.cluster.cancel(job):
                acted.append(job_id)
        return acted

    def _find_node(self, spec: str) -> Any:
        for node in self.cluster.status().nodes:
            if spec in (node.node_id, node.name, node.ip_addr):
                return node
        raise ActionError(404, f"no node {spec!r} serves cluster {self.cluster_id}")

    def node_op(self, node: str, op: str, cpus: int | None = None) -> dict[str, Any]:
        target = self._find_node(node)
        try:
            if op == "cpus":
                result: dict[str, Any] = {"cpus": self.cluster.set_node_cpus(target, int(cpus or 0))}
            elif op == "allocate":
                result = {"cpus": self.cluster.allocate_node(target), "state": "in use"}
            elif op == "deallocate":
                self.cluster.deallocate_node(target)
                result = {"state": "deallocated"}
            elif op == "close":
                self.cluster.close_node(target)
                result = {"state": "closing"}
            else:
                raise ActionError(404, f"unknown node operation {op!r}")
        except ConnectionLost as exc:
            raise ActionError(503, str(exc)) from None
        except ActionError:
            raise
        except GridError as exc:  # the scheduler refused (e.g. not cooperative)
            raise ActionError(409, str(exc)) from None
        if "state" in result:
            self._node_state[target.node_id] = result["state"]
        return {"cluster_id": self.cluster_id, "node": target.name, **result}
