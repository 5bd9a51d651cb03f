"""What status tools see of the grid (the ``STATUS`` message and the web monitor).

A part of :class:`~gridlib.daemons.scheduler.core.SchedulerCore` that only
reads the store (pure, no I/O, like the rest of the core): ``snapshot``
builds the report, and ``handle_status`` answers a client's ``STATUS`` with
the part that client may see.
"""

from __future__ import annotations

from typing import Any

from gridlib.protocol.codec import Message, reply

from .state import Peer, SchedulerState

__all__ = ["StatusReports"]


class StatusReports:
    """Nodes, clusters and counts, as ``gridlib status`` and the monitor show them."""

    def __init__(self, store: SchedulerState) -> None:
        self.store = store

    def handle_status(self, peer: Peer, msg: Message, now: float) -> None:
        """Nodes, the asker's clusters, other users' clusters as totals only."""
        self.store.send(peer.kind, peer.route, reply(msg, "STATUS", self.snapshot(now, peer.user)))

    def snapshot(self, now: float, user: str | None = None) -> dict[str, Any]:
        """The grid as status tools show it (``user``: whose running jobs to list; None: all).

        ``nodes``: each node's public record plus ``last_heard`` (seconds ago),
        ``suspect``, and ``running`` (job and cluster ids of its jobs in flight,
        for clusters the asker may see).  ``clusters``: the asker's (id, kind,
        jobs queued / running / done); ``others``: the same counts summed over
        every other user's clusters, which are never named.  O(nodes + jobs in
        flight): for status tools, not for the hot path.
        """
        store = self.store

        def visible(cluster_id: str) -> bool:
            cluster = store.clusters.get(cluster_id)
            return cluster is not None and (user is None or cluster.user == user)

        nodes = []
        running: dict[str, int] = {}
        for node in store.nodes.values():
            jobs = []
            for job_id in node.inflight:
                job = store.jobs.get(job_id)
                if job is None:
                    continue
                running[job.cluster_id] = running.get(job.cluster_id, 0) + 1
                if visible(job.cluster_id):
                    jobs.append({"job_id": job_id, "cluster_id": job.cluster_id,
                                 "state": job.state.name.lower(), "attempt": job.attempt,
                                 "label": job.label})
            heard = store.node_liveness.last(node.node_id) or node.last_seen
            nodes.append({**node.public(), "last_heard": round(max(0.0, now - heard), 3),
                          "suspect": node.suspect, "running": jobs})
        clusters, others = [], {"clusters": 0, "queued": 0, "running": 0, "done": 0}
        for c in store.clusters.values():
            counts = {"queued": c.queued, "running": running.get(c.cluster_id, 0), "done": c.done}
            if visible(c.cluster_id):
                clusters.append({"cluster_id": c.cluster_id, "kind": c.kind,
                                 "exclusive": c.exclusive, **counts})
            else:  # another user's: counted, never named
                others["clusters"] += 1
                for key, value in counts.items():
                    others[key] += value
        return {"nodes": nodes, "clusters": clusters, "others": others,
                "policy": store.options.policy}
