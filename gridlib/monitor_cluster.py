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
from collections import Counter, deque
from typing import Any

from gridlib.daemons.monitor.source import (
    HISTORY,
    LISTED_QUEUED,
    ActionError,
    MonitorSnapshot,
    MonitorSource,
    number,
    short_text,
)
from gridlib.job import FINAL_STATES, Job, JobStatus
from gridlib.protocol.errors import ConnectionLost, GridError

__all__ = ["ClusterSource", "job_info"]

log = logging.getLogger("gridlib.httpd")
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 60, 60, 6, 6, 4

def _exception_line(text: str | None) -> str | None:
    """The last line of a traceback: what went wrong, in a table cell."""
    if not text:
        return None
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return short_text(lines[-1].strip()) if lines else None


def _args_text(job: Job) -> str:
    try:
        parts = [_repr.repr(a) for a in job.args]
        parts += [f"{k}={_repr.repr(v)}" for k, v in list(job.kwargs.items())[:4]]
        return short_text(", ".join(parts), 120)
    except Exception:  # user objects may fail to repr: show that, never fail the page
        return "<unprintable>"


def job_info(job: Job, cluster_id: str, show_args: bool) -> dict[str, Any]:
    """A job as the API lists it; ``job_id`` is the wire id the actions take."""
    return {
        "job_id": job.uid, "id": short_text(job.id, 80), "cluster_id": cluster_id,
        "status": job.status.name, "final": job.status in FINAL_STATES,
        "node": job.node, "ip_addr": job.ip_addr,
        "submit_time": number(job.submit_time), "start_time": number(job.start_time),
        "end_time": number(job.end_time),
        "args": _args_text(job) if show_args else None,
        "exception": _exception_line(job.exception),
    }


class ClusterSource(MonitorSource):
    """A ``JobCluster`` (or ``SharedJobCluster``) of this process, seen through its public API.

    Finished jobs leave the cluster's books at once, so the source keeps the
    last ``history`` of them itself: it chains the cluster's ``job_status``
    callback (restored by :meth:`close`).  A callback moves result delivery
    off the I/O thread's fast path, which costs a thread hand-off per loop
    turn; a monitored cluster pays that.
    """

    def __init__(self, cluster: Any, history: int = HISTORY, show_job_args: bool = True) -> None:
        self.cluster = cluster
        self.cluster_id = str(cluster.cluster_id)
        self.show_job_args = show_job_args
        self._finished: deque[dict[str, Any]] = deque(maxlen=history)
        self._ended: Counter[str] = Counter()
        self._done = 0
        self._node_state: dict[str, str] = {}  # node id -> what the operator last made it
        self._lock = threading.Lock()
        self._previous = cluster.job_status
        cluster.job_status = self._on_job_status

    def _on_job_status(self, job: Job) -> None:
        """The cluster's delivery thread, for every provisional and final result."""
        if job.status in FINAL_STATES:
            try:
                info = job_info(job, self.cluster_id, self.show_job_args)
                with self._lock:
                    self._finished.appendleft(info)
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
    def _active_jobs(self) -> tuple[list[Job], list[Job], int]:
        """Running and queued jobs.  There is no public list of a cluster's unfinished
        jobs, so this reads ``cluster._jobs`` (a dict copied in one step, as the
        cluster itself does); finished jobs are never in it."""
        running: list[Job] = []
        queued: list[Job] = []
        count = 0
        for job in list(self.cluster._jobs.values()):
            if job.status in (JobStatus.Running, JobStatus.ProvisionalResult):
                running.append(job)
            elif job.status == JobStatus.Created:
                count += 1
                if len(queued) < LISTED_QUEUED:
                    queued.append(job)
        return running, queued, count

    def snapshot(self) -> MonitorSnapshot:
        status = self.cluster.status()
        running, queued, queued_count = self._active_jobs()
        per_node: dict[str, list[dict[str, Any]]] = {}
        active = []
        for job in running:
            info = job_info(job, self.cluster_id, self.show_job_args)
            active.append(info)
            if job.node:
                per_node.setdefault(job.node, []).append(info)
        active += [job_info(job, self.cluster_id, self.show_job_args) for job in queued]
        nodes = [self._node_info(n, per_node.get(n.name, [])) for n in status.nodes]
        with self._lock:
            finished, ended, done = list(self._finished), dict(self._ended), self._done
        cluster = {
            "cluster_id": self.cluster_id, "kind": str(getattr(self.cluster, "_kind", "")),
            "queued": queued_count, "running": len(running), "done": done,
            "nodes": sum(1 for n in nodes if n["status"] != "Closed"),
            **{name.lower(): ended.get(name, 0) for name in
               ("Finished", "Terminated", "Cancelled", "Abandoned")},
        }
        return MonitorSnapshot(nodes, active + finished, [cluster], done)

    def _node_info(self, node: Any, running: list[dict[str, Any]]) -> dict[str, Any]:
        avail = node.avail_info
        state = "closed" if node.status.name == "Closed" else self._node_state.get(node.node_id, "in use")
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
