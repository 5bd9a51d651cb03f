"""Jobs that no node can run: they end, or they wait and say why (docs/reliability.md §7).

A cluster's queued jobs need a node that can run them: one that is offered,
being set up, ready (or deallocated or being set up again by the client's
own choice).  When there is none:

- setup failed on every node that tried it -> the queued jobs end at once,
  ``Terminated`` with a ``SetupError`` naming each node and its reason (and
  so do jobs submitted later, until a node can run the cluster);
- the cluster's ``node_wait`` has passed -> the queued jobs end ``Abandoned``
  with a ``NoNodesError`` (``node_wait`` is the client's option; None waits);
- otherwise the jobs wait, which is legitimate (nodes with service hours
  join later) but never silent: after ``WARN_AFTER`` seconds the client gets
  a ``CLUSTER_EVENT waiting`` (which it logs as a WARNING naming the
  addresses it announced to and the likely causes), repeated every
  ``WARN_EVERY`` seconds while it lasts.

:class:`Waiting` works on the store, and settles a gone node's jobs through
:class:`~.faults.Faults`; the core calls it from its handlers and its
periodic check.  No I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

from gridlib.protocol.codec import new_message

from .faults import Faults
from .records import ClusterRecord, JobState, SetupState
from .state import CLIENT, SchedulerState

__all__ = ["Waiting", "node_process_gone", "WARN_AFTER", "WARN_EVERY", "USABLE"]

WARN_AFTER = 10.0
WARN_EVERY = 30.0
#: a cluster's states on a node in which that node can (or will, by the client's choice) run its jobs
USABLE = frozenset({SetupState.OFFERED, SetupState.PENDING, SetupState.READY, SetupState.DEALLOCATED,
                    SetupState.RESETUP})


class Waiting:
    """Clusters whose queued jobs no node can run: end them, or say why they wait."""

    def __init__(self, store: SchedulerState, faults: Faults) -> None:
        self.store = store
        self.faults = faults  # settles the jobs of a node whose process is gone

    def _usable(self, cluster: ClusterRecord) -> bool:
        cid = cluster.cluster_id
        return any(node.setup.get(cid) in USABLE for node in self.store.nodes.values())

    def _setup_failures(self, cluster: ClusterRecord) -> list[str]:
        cid = cluster.cluster_id
        return [f"{node.name}: {node.setup_failures.get(cid, 'setup failed')}"
                for node in self.store.nodes.values() if node.setup.get(cid) == SetupState.FAILED]

    def abandon_queued(self, cluster: ClusterRecord, status: str, exception: dict[str, Any]) -> int:
        """End every queued job of ``cluster`` with ``status`` and ``exception``; how many ended."""
        ended = 0
        for job_id in list(cluster.jobs):
            job = self.store.jobs.get(job_id)
            if job is None or job.state is not JobState.QUEUED:
                continue
            cluster.queued -= 1  # (the queue skips it when popped: it is no longer QUEUED)
            self.store.finish(job, {"status": status, "reason": exception["message"],
                                    "exception": dict(exception)}, [], [])
            ended += 1
        return ended

    def settle_nodeless(self, cluster: ClusterRecord, now: float) -> None:
        """Apply the rules above to one cluster now."""
        if cluster.queued <= 0 or self._usable(cluster):
            cluster.no_node_since = None
            cluster.warned_at = None
            return
        if cluster.no_node_since is None:  # (since its jobs began to wait, if that was later)
            cluster.no_node_since = max(cluster.queued_since, now - 1.0)
        failures = self._setup_failures(cluster)
        if failures:
            message = ("setup failed on every node that could run this cluster: "
                       + "; ".join(failures[:20]) + (f"; and {len(failures) - 20} more" if len(failures) > 20 else ""))
            ended = self.abandon_queued(cluster, "terminated",
                                        {"type": "SetupError", "message": message, "traceback": ""})
            self.store.log.warning("event=setup_failed_everywhere cluster=%s jobs_ended=%d",
                                   cluster.cluster_id, ended)
            return
        if cluster.no_node_reason:
            self.abandon_queued(cluster, "abandoned",
                                {"type": "NoNodesError", "message": cluster.no_node_reason, "traceback": ""})
            return
        waited = now - cluster.no_node_since
        node_wait = cluster.options.get("node_wait")
        if isinstance(node_wait, (int, float)) and not isinstance(node_wait, bool) and waited >= node_wait:
            self._event(cluster, "no_nodes", waited)
            message = (f"no node able to run this cluster joined within node_wait={node_wait:g} s "
                       f"({len(self.store.nodes)} node(s) known to the scheduler)")
            ended = self.abandon_queued(cluster, "abandoned",
                                        {"type": "NoNodesError", "message": message, "traceback": ""})
            self.store.log.warning("event=no_nodes cluster=%s waited=%.1f jobs_ended=%d",
                                   cluster.cluster_id, waited, ended)
            return
        if waited >= WARN_AFTER and (cluster.warned_at is None or now - cluster.warned_at >= WARN_EVERY):
            cluster.warned_at = now
            self._event(cluster, "waiting", waited)

    def _event(self, cluster: ClusterRecord, event: str, waited: float) -> None:
        nodes = self.store.nodes
        self.store.send(CLIENT, cluster.client, new_message("CLUSTER_EVENT", {
            "cluster_id": cluster.cluster_id, "event": event, "waited": round(waited, 1),
            "queued": cluster.queued, "nodes": len(nodes),
            "rejected": sum(1 for n in nodes.values()
                            if n.setup.get(cluster.cluster_id) in (SetupState.REJECTED, SetupState.CLOSED))}))

    def node_process_gone(self, pid: int, reason: str, cluster: ClusterRecord | None, now: float) -> None:
        """A node process its client watches (a private local node) exited: settle its jobs now,
        and end ``cluster``'s waiting jobs with ``reason`` unless another node can run them."""
        for node in list(self.store.nodes.values()):
            if node.info.get("pid") == pid:
                self.faults.node_lost(node.node_id, reason)
        if cluster is not None:
            cluster.no_node_reason = reason
            self.settle_nodeless(cluster, now)

    def check_nodeless(self, now: float) -> None:
        """The periodic pass over every cluster with queued jobs."""
        for cluster in list(self.store.clusters.values()):
            if cluster.queued > 0 or cluster.no_node_since is not None:
                self.settle_nodeless(cluster, now)


class _Core(Protocol):
    def node_process_gone(self, pid: int, reason: str, cluster: ClusterRecord | None,
                          now: float) -> None: ...


def node_process_gone(core: _Core, pid: int, reason: str, cluster: ClusterRecord | None,
                      now: float) -> None:
    """The shell's entry point (service.py): :meth:`Waiting.node_process_gone` through the core."""
    core.node_process_gone(pid, reason, cluster, now)
