"""Which queued job goes to which node (docs/architecture.md §2, §5).

Least-loaded dispatch with credit: a node may hold its CPUs' worth of jobs
plus a prefetch sized by the recent average job time, so no worker waits a
round trip for its next job.  The clusters that may give a node a job are
ordered by the scheduler's policy (``fifo``, ``fair``, ``early``); an
exclusive cluster runs alone.  :class:`Dispatch` works on the store alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from gridlib.protocol.codec import new_message

from .records import ClusterRecord, JobQueue, JobRecord, JobState, NodeRecord, SetupState, next_seq
from .state import NODE, SchedulerState

__all__ = ["Dispatch", "PREFETCH_WORK", "PREFETCH_PER_CPU", "HEADER_ALLOWANCE"]

# A node holds, beyond one job per CPU, about this many seconds of work per CPU (by the
# recent average run time), so that no worker waits a round trip for its next job while
# the work a node hoards -- and so the imbalance at the end of a run -- stays this small.
PREFETCH_WORK = 0.005
PREFETCH_PER_CPU = 16  # at most this many jobs per CPU waiting on a node
HEADER_ALLOWANCE = 65536  # room kept for a message's header within a node's size limit


def _pinned_for(cluster: ClusterRecord, node: NodeRecord) -> JobQueue | None:
    return cluster.pinned.get(node.node_id) or cluster.pinned.get(node.name) \
        or cluster.pinned.get(node.ip_addr)


class _Credit(dict[int, int]):
    """Credit by CPU count, computed on first use (no scan of the nodes for their sizes)."""

    def __init__(self, credit_for: Callable[[int], int]) -> None:
        super().__init__()
        self.credit_for = credit_for

    def __missing__(self, cpus: int) -> int:
        value = self[cpus] = self.credit_for(cpus)
        return value


class Dispatch:
    """Credit, candidate clusters and assignment; owns the recent job time."""

    def __init__(self, store: SchedulerState, prefetch: int = 1) -> None:
        self.store = store
        self.prefetch = prefetch  # the least prefetch per node (jobs beyond its CPUs)
        self.job_time = float("inf")  # recent average job run time (seconds), for the prefetch
        self.credit_seen: dict[int, int] = {}  # CPU count -> the credit the last dispatch gave

    def job_ran(self, seconds: float) -> None:
        """A job's run time, from its result: the average the prefetch follows."""
        self.job_time = 0.9 * self.job_time + 0.1 * seconds \
            if self.job_time != float("inf") else float(seconds)

    def credit_for(self, cpus: int) -> int:
        """Jobs a node of ``cpus`` CPUs may hold: its CPUs plus a prefetch so no worker waits for the next job.

        The prefetch is ``PREFETCH_WORK`` seconds of work per CPU at the recent average
        job time (at least the configured ``prefetch``, at most ``PREFETCH_PER_CPU`` jobs
        per CPU): deep for jobs shorter than a round trip, the minimum for long ones.
        """
        if self.job_time == float("inf"):
            return cpus + self.prefetch
        deep = math.ceil(cpus * PREFETCH_WORK / max(self.job_time, 1e-6))
        return cpus + max(self.prefetch, min(deep, PREFETCH_PER_CPU * cpus))

    def dispatch(self) -> None:
        """Give queued jobs to nodes with credit, least loaded first.

        Only the nodes in ``store.hungry`` are looked at: every node with credit
        is there (a node is added whenever it may have gained credit -- it joined,
        a job of it ended, was cancelled or taken back -- and removed here when
        it is full), so a dispatch costs the same for 1 or 1,000 nodes.  A full
        scan (``store.rescan``: every tick, and whenever the credit per CPU grew)
        re-establishes the set from scratch, so a missed event would cost one
        heartbeat interval, never a job waiting for ever.
        """
        store = self.store
        if not any(c.queued > 0 for c in store.clusters.values()):
            return  # nothing to give: no node need be looked at
        credit = self._credit_now()
        nodes = store.nodes
        if store.rescan:
            store.rescan = False
            candidates = list(nodes.values())
        else:
            candidates = [node for i in store.hungry if (node := nodes.get(i)) is not None]
        hungry = [n for n in candidates if len(n.inflight) < credit[n.cpus] and not n.suspect]
        store.hungry = {n.node_id for n in hungry}
        self.credit_seen.update(credit)
        while hungry:
            if len(hungry) > 1:
                hungry.sort(key=lambda n: len(n.inflight) / n.cpus)
            owner = self._exclusive_owner()
            progressed = []
            for node in hungry:
                if self._assign_one(node, owner):
                    if len(node.inflight) < credit[node.cpus]:
                        progressed.append(node)
                    else:
                        store.hungry.discard(node.node_id)
            hungry = progressed

    def _credit_now(self) -> _Credit:
        """Credit by CPU count, each computed once; a credit grown since the last dispatch
        asks for a full scan (nodes that were full may have room again)."""
        credit = _Credit(self.credit_for)
        if any(credit[cpus] > before for cpus, before in self.credit_seen.items()):
            self.store.rescan = True
        return credit

    def _candidates(self, node: NodeRecord, owner: ClusterRecord | None) -> list[ClusterRecord]:
        """The clusters that may give ``node`` a job now, in the policy's order."""
        clusters, jobs = self.store.clusters, self.store.jobs
        ready = [clusters[cid] for cid, state in node.setup.items()
                 if state == SetupState.READY and clusters[cid].queued > 0]
        if not ready:
            return []
        if owner is not None:  # an exclusive cluster runs alone, on nodes free of others' jobs
            others = any((j := jobs.get(i)) and j.cluster_id != owner.cluster_id
                         for i in node.inflight)
            return [owner] if owner in ready and not others else []
        policy = self.store.options.policy
        if policy == "fair":
            return sorted(ready, key=lambda c: c.served)
        if policy == "early":
            return sorted(ready, key=lambda c: c.created)

        def head(cluster: ClusterRecord) -> tuple[int, int]:
            pinned = _pinned_for(cluster, node)
            heads = [h for h in (cluster.queue.head(jobs),
                                 pinned.head(jobs) if pinned else None) if h is not None]
            return min(heads) if heads else (1 << 62, 1 << 62)
        return sorted(ready, key=head)

    def _exclusive_owner(self) -> ClusterRecord | None:
        jobs = self.store.jobs
        active = [c for c in self.store.clusters.values() if c.exclusive and c.jobs
                  and any(jobs[j].state is not JobState.DONE for j in c.jobs)]
        return min(active, key=lambda c: c.created) if active else None

    def _assign_one(self, node: NodeRecord, owner: ClusterRecord | None) -> bool:
        store = self.store
        for cluster in self._candidates(node, owner):
            cluster_id = cluster.cluster_id
            limit = node.cluster_cpus.get(cluster_id, node.cpus)
            if limit < node.cpus and store.busy_for(node, cluster_id) >= limit:
                continue  # a cluster limited to part of a node gets no prefetch: exact CPUs
            job = None
            pinned = _pinned_for(cluster, node)
            if pinned is not None:
                job = pinned.pop(store.jobs)
            if job is None:
                job = cluster.queue.pop(store.jobs)
            if job is None:
                continue
            cluster.queued -= 1
            cluster.served = next_seq()
            msg_limit = node.info.get("max_msg_size")
            if isinstance(msg_limit, int) and job.size + HEADER_ALLOWANCE > msg_limit:
                self._too_large_for(job, node, msg_limit)
                return True
            job.state = JobState.DISPATCHED
            job.attempt += 1
            job.node_id = node.node_id
            node.inflight[job.job_id] = job.attempt
            fields = {"cluster_id": cluster_id, "job_id": job.job_id, "attempt": job.attempt,
                      "timeout": job.timeout, "label": job.label}
            store.send(NODE, node.route, new_message("JOB_ASSIGN", fields, job.frames, job.labels))
            return True
        return False

    def _too_large_for(self, job: JobRecord, node: NodeRecord, limit: int) -> None:
        """A node would drop the link for a message over its limit: the job ends instead."""
        message = (f"the job's arguments are {job.size} bytes, over node {node.name}'s message "
                   f"limit of {limit} bytes (gridlib node --max-msg-size): send less (ship data "
                   f"as a file with depends= or cluster.send_file), or raise the node's limit")
        self.store.finish(job, {"status": "terminated", "node": node.name, "reason": message,
                                "exception": {"type": "PayloadTooLarge", "message": message,
                                              "traceback": ""}}, [], [])
