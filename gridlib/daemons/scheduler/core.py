"""The scheduler's pure state machine (docs/architecture.md §1, §2).

One implementation serves the scheduler embedded in a ``JobCluster`` and the
``gridlib scheduler`` daemon.  Every entry point takes the decoded message
and the current time and returns the messages to send; there is no socket
and no zmq here, so it is unit-tested with a fake clock.  Payload frames
are carried through untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gridlib.protocol.codec import Message, error_reply, new_message, reply
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.liveness import Liveness
from gridlib.protocol.messages import opt

from .allocation import TAKES_JOBS, NodeAllocation
from .faults import FaultHandling
from .records import (
    ClientRecord,
    ClusterRecord,
    JobQueue,
    JobRecord,
    JobState,
    NodeRecord,
    Route,
    next_seq,
)
from .state import CLIENT, NODE, Peer, Send
from .status import StatusReports
from .waiting import check_nodeless, settle_nodeless

__all__ = ["Peer", "Send", "SchedulerCore", "CLIENT", "NODE", "PREFETCH_WORK", "PREFETCH_PER_CPU"]

# A node holds, beyond one job per CPU, about this many seconds of work per CPU (by the
# recent average run time), so that no worker waits a round trip for its next job while
# the work a node hoards -- and so the imbalance at the end of a run -- stays this small.
PREFETCH_WORK = 0.005
PREFETCH_PER_CPU = 16  # at most this many jobs per CPU waiting on a node
HEADER_ALLOWANCE = 65536  # room kept for a message's header within a node's size limit


def _job_entries(entries: Any) -> list[tuple[str, int]]:
    """``[[job id, attempt], ...]`` from a node, the malformed ones left out."""
    return [(e[0], e[1]) for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
            and isinstance(e[1], int) and not isinstance(e[1], bool)]


def _valid_job_spec(spec: Any) -> dict[str, Any]:
    """Check one job of a JOB_SUBMIT before anything is stored."""
    if not isinstance(spec, dict):
        raise ProtocolError("JOB_SUBMIT: each job must be a map")
    job_id = opt(spec, "id", str)
    count = opt(spec, "n", int, 1)
    if not job_id or len(job_id) > 128 or count < 0:
        raise ProtocolError("JOB_SUBMIT: each job needs an id and a frame count")
    opt(spec, "priority", int, 0)
    opt(spec, "node", str)
    timeout = opt(spec, "timeout", (int, float))
    if timeout is not None and timeout <= 0:
        raise ProtocolError("JOB_SUBMIT: timeout must be positive")
    return {**spec, "id": job_id, "n": count}


class SchedulerCore(FaultHandling, NodeAllocation, StatusReports):
    """Jobs, clusters and nodes; least-load dispatch with credit."""

    def handle(self, peer: Peer, msg: Message, now: float, flush: bool = True) -> list[Send]:
        """Handle one message; returns (and clears) the messages to send.

        With ``flush=False`` the messages stay queued until :meth:`flush`, so a
        shell can handle a batch of messages and dispatch once.
        """
        self.now = now
        table = self._client_handlers if peer.kind == CLIENT else self._node_handlers
        handler = table.get(msg.type)
        try:
            if handler is None:
                raise ProtocolError(f"unexpected message {msg.type} from a {peer.kind}")
            if peer.kind == NODE:
                self._touch_node(peer, now)
            elif peer.route in self.clients:
                self.client_liveness.touch(peer.route, now)
                if not self.clients[peer.route].seen:
                    self._client_back(self.clients[peer.route])
            handler(self, peer, msg, now)
        except ProtocolError as exc:
            self.log.warning("event=bad_message kind=%s type=%s reason=%r", peer.kind, msg.type, exc.reason)
            self._send(peer.kind, peer.route, error_reply(msg, exc.code, exc.reason))
        return self.flush() if flush else []

    def flush(self) -> list[Send]:
        if self._dirty:
            self._dirty = False
            self.dispatch()
        if self._replies_after_dispatch:
            self.out.extend(self._replies_after_dispatch)
            self._replies_after_dispatch = []
        out, self.out = self.out, []
        return out

    def check(self, now: float) -> list[Send]:
        """Liveness: settle lost nodes and expired adoptions (run a few times an interval)."""
        self.now = now
        for node_id in self.node_liveness.lost(now):
            self._node_lost(str(node_id), "no heartbeat")
        self._drain()
        check_nodeless(self, now)
        self._expire_adoptions(now)
        self._resend_results(now)
        for route in self.client_liveness.lost(now):
            if now - self.client_liveness.last(route) >= self.options.client_timeout:
                self.log.warning("event=client_gone reason=timeout")
                self.client_liveness.forget(route)
                self._client_gone(route)
        return self.flush()

    def _resend_results(self, now: float) -> None:
        """Results not acknowledged for 3 intervals are sent again (a client may have
        reconnected, and a ROUTER drops what it sends to a peer that is away).

        ``_unacked`` is kept in send order, so a pass stops at the first result
        that is not late.  A client that is not heard from gets nothing resent
        (its results wait, rotating, until it speaks again).
        """
        late = now - 3 * self.policy.interval
        while self._unacked:
            job_id, sent = next(iter(self._unacked.items()))
            if sent > late:
                break
            del self._unacked[job_id]
            job = self.jobs.get(job_id)
            if job is None or job.result is None:
                continue
            self._unacked[job_id] = now  # to the end: the dict stays in send order
            client = self.clusters[job.cluster_id].client
            if self.client_liveness.state(client, now) is Liveness.ALIVE:
                self._send(CLIENT, client, job.result)

    def tick(self, now: float) -> list[Send]:
        """Once an interval: liveness, then heartbeats to every node and client."""
        settled = self.check(now)  # (flushes self.out, so read it after)
        self.out.extend(settled)
        for node in self.nodes.values():
            node.suspect = self.node_liveness.state(node.node_id, now) is Liveness.SUSPECT
            self._send(NODE, node.route, new_message("HEARTBEAT"))
        for client in self.clients.values():
            self._send(CLIENT, client.route, new_message("HEARTBEAT"))
        self._dirty = True
        return self.flush()

    def handle_hello(self, peer: Peer, msg: Message, now: float) -> None:
        known = self.clients.get(peer.route)
        if known is None or known.user != peer.user:  # a reconnecting client keeps its clusters
            self.clients[peer.route] = ClientRecord(peer.route, peer.user, str(msg.get("name")))
        self.client_liveness.touch(peer.route, now)
        self._send(CLIENT, peer.route, reply(msg, "WELCOME", {
            "sid": self.scheduler_id, **self.policy.to_map(), "max_msg_size": self.max_msg_size,
            "nodes": [n.public() for n in self.nodes.values()],
        }))

    def handle_cluster_open(self, peer: Peer, msg: Message, now: float) -> None:
        client = self.clients.get(peer.route)
        if client is None:
            raise ProtocolError("HELLO first", ILLEGAL_STATE)
        cluster_id = str(msg.fields["cluster_id"])
        if cluster_id in self.clusters:
            raise ProtocolError(f"cluster {cluster_id} is already open", ILLEGAL_STATE)
        options = {k: v for k, v in msg.fields.items() if k not in ("cluster_id", "kind")}
        if self.options.cleanup_nodes:
            options["cleanup"] = True
        cluster = ClusterRecord(cluster_id, peer.route, peer.user, str(msg.fields["kind"]),
                                options, list(msg.labels), list(msg.frames))
        self.clusters[cluster_id] = cluster
        client.clusters.add(cluster_id)
        self.persist.append(("cluster", cluster))
        self._send(CLIENT, peer.route, reply(msg, "OK", {"cluster_id": cluster_id}))
        for node in self.nodes.values():
            self._offer(cluster, node)

    def handle_job_submit(self, peer: Peer, msg: Message, now: float) -> None:
        cluster = self._cluster_for(peer, str(msg.fields["cluster_id"]))
        specs = [_valid_job_spec(spec) for spec in msg.fields["jobs"]]
        if sum(int(spec["n"]) for spec in specs) != len(msg.frames):
            raise ProtocolError("JOB_SUBMIT: job frame counts do not match the frames")
        offset = 0
        if cluster.queued <= 0:
            cluster.queued_since = now
        for spec in specs:
            job_id, count = str(spec["id"]), int(spec["n"])
            frames = msg.frames[offset: offset + count]
            labels = msg.labels[offset: offset + count]
            offset += count
            if job_id in self.jobs:
                self.duplicates += 1  # a resubmission of a known id is idempotent
                continue
            job = JobRecord(job_id, cluster.cluster_id, spec, labels, frames, next_seq())
            job.size = sum(memoryview(f).nbytes for f in frames)
            self.jobs[job_id] = job
            cluster.jobs.add(job_id)
            if spec.get("recover") is True:
                self._recover(cluster, job, now)
            else:
                self._enqueue(cluster, job)
            self.persist.append(("job", job))
        if cluster.no_node_since is not None:  # no node can run them: say so now, not later
            settle_nodeless(self, cluster, now)
        # after the shell journaled them, and after this turn's dispatch: the jobs first
        self._replies_after_dispatch.append(Send(CLIENT, peer.route, reply(msg, "OK")))

    def handle_job_cancel(self, peer: Peer, msg: Message, now: float) -> None:
        foreign = []
        for job_id in msg.fields["job_ids"]:
            job = self.jobs.get(job_id) if isinstance(job_id, str) else None
            if job is None or self.clusters[job.cluster_id].user != peer.user:
                foreign.append(str(job_id))
            else:
                self._cancel_job(job)
        if foreign:  # another client's jobs are not yours to cancel, nor to see
            raise ProtocolError(f"no such job of yours: {', '.join(foreign[:5])}", NOT_FOUND)

    def _cancel_job(self, job: JobRecord) -> bool:
        """Cancel one job: at once if queued, through its node if dispatched or running.

        False if it is already final (its result stands); True if it is cancelled
        or on its way to be.
        """
        if job.state in (JobState.QUEUED, JobState.ADOPTING):
            if job.state is JobState.QUEUED:
                self.clusters[job.cluster_id].queued -= 1
            self._adopting.pop(job.job_id, None)  # a node reporting it later is told to drop it
            self._finish(job, {"status": "cancelled"}, [], [])
            return True
        if job.state in (JobState.DISPATCHED, JobState.RUNNING) and job.node_id:
            job.state = JobState.CANCELLING
            node = self.nodes[job.node_id]
            self._send(NODE, node.route, new_message("JOB_CANCEL", {"job_ids": [job.job_id],
                                                                    "attempts": [job.attempt]}))
            return True
        return job.state is JobState.CANCELLING

    def operator_cancel(self, job_ids: list[str], now: float) -> tuple[list[str], list[Send]]:
        """The grid's operator (the scheduler's web monitor) cancels jobs of any user.

        Returns the ids of the jobs cancelled or being cancelled (unknown and
        final ones are left out) and the messages to send.  Each job's client
        gets its ``cancelled`` result as if it had cancelled the job itself.
        """
        self.now = now
        acted = [job_id for job_id in job_ids
                 if (job := self.jobs.get(job_id)) is not None and self._cancel_job(job)]
        self.log.info("event=operator_cancel jobs=%d cancelled=%d", len(job_ids), len(acted))
        return acted, self.flush()

    def handle_result_ack(self, peer: Peer, msg: Message, now: float) -> None:
        per_node: dict[str, list[str]] = {}
        for job_id in msg.fields["job_ids"]:
            job = self.jobs.get(job_id) if isinstance(job_id, str) else None
            if job is None or job.state is not JobState.DONE:
                continue
            if self.clusters[job.cluster_id].user != peer.user:
                continue
            del self.jobs[job_id]
            self._unacked.pop(job_id, None)
            self.clusters[job.cluster_id].jobs.discard(job_id)
            self.persist.append(("drop_job", job_id))
            if job.result_node:
                per_node.setdefault(job.result_node, []).append(job_id)
        for node_id, ids in per_node.items():
            node = self.nodes.get(node_id)
            if node is not None:
                self._send(NODE, node.route, new_message("RESULT_ACK", {"job_ids": ids}))

    def handle_cluster_close(self, peer: Peer, msg: Message, now: float) -> None:
        cluster = self._cluster_for(peer, str(msg.fields["cluster_id"]))
        for job_id in list(cluster.jobs):
            job = self.jobs[job_id]
            if job.state in (JobState.DISPATCHED, JobState.RUNNING, JobState.CANCELLING) and job.node_id:
                self.nodes[job.node_id].inflight.pop(job_id, None)
            del self.jobs[job_id]
        for node in self.nodes.values():
            if node.setup.pop(cluster.cluster_id, None) is not None:
                self._send(NODE, node.route, new_message("TEARDOWN", {"cluster_id": cluster.cluster_id}))
        del self.clusters[cluster.cluster_id]
        self.persist.append(("drop_cluster", cluster.cluster_id))
        client = self.clients.get(peer.route)
        if client:
            client.clusters.discard(cluster.cluster_id)
        self._send(CLIENT, peer.route, reply(msg, "OK"))
        self._dirty = True

    def handle_heartbeat(self, peer: Peer, msg: Message, now: float) -> None:
        if peer.kind == NODE:
            node = self.node_by_route.get(peer.route)
            if node is None:  # e.g. this scheduler restarted: the node must register again
                raise ProtocolError("node has not sent READY", ILLEGAL_STATE)
            avail = msg.get("avail")
            if node is not None and isinstance(avail, dict):
                self.nodes[node].info["avail"] = avail
                self._announce_avail(self.nodes[node])

    def handle_disconnect(self, peer: Peer, msg: Message, now: float) -> None:
        if peer.kind == NODE:
            node_id = self.node_by_route.get(peer.route)
            if node_id is not None:
                self._node_lost(node_id, "node disconnected")
        else:
            self._client_gone(peer.route)

    def handle_ready(self, peer: Peer, msg: Message, now: float) -> None:
        node_id = str(msg.fields["node_id"])
        cpus = int(msg.fields["cpus"])
        if not 0 < cpus <= 4096 or not node_id:
            raise ProtocolError("READY: bad node id or cpu count")
        known = self.nodes.get(node_id)
        if known is not None and known.user != peer.user:
            raise ProtocolError("that node id belongs to another key", ILLEGAL_STATE)
        session = msg.get("session")
        if (known is not None and isinstance(session, str) and session
                and known.info.get("session") == session and known.route == peer.route):
            # the same registration again: a retry of a READY whose WELCOME was slow to arrive
            self._send(NODE, peer.route, reply(msg, "WELCOME", {
                "sid": self.scheduler_id, **self.policy.to_map(), "max_msg_size": self.max_msg_size}))
            return
        previous = self.node_by_route.get(peer.route)
        if previous is not None and previous != node_id:  # one connection, one node
            self._node_lost(previous, "another node id on the same connection")
        if node_id in self.nodes:
            # a node that registers again reports what it still holds in SETUP_OK
            self._node_lost(node_id, "node re-registered", adopt_until=now + self.adopt_grace)
        info: dict[str, Any] = {k: msg.fields.get(k) for k in ("platform", "port", "pid", "python", "max_msg_size",
                                               "session") if k in msg.fields}
        ip_addr = str(opt(msg.fields, "ip_addr", str, "")) or peer.address
        node = NodeRecord(node_id, peer.route, peer.user, str(msg.fields["name"]),
                          ip_addr, cpus, info, now)
        self.nodes[node_id] = node
        self.node_by_route[peer.route] = node_id
        self.node_liveness.touch(node_id, now)
        self._send(NODE, peer.route, reply(msg, "WELCOME", {
            "sid": self.scheduler_id, **self.policy.to_map(), "max_msg_size": self.max_msg_size}))
        for cluster in self.clusters.values():
            self._offer(cluster, node)
        self.log.info("event=node_ready node=%s name=%s cpus=%d", node_id, node.name, cpus)

    def handle_setup_ok(self, peer: Peer, msg: Message, now: float) -> None:
        node = self._node_of(peer)
        cluster = self.clusters.get(str(msg.fields["cluster_id"]))
        if cluster is None or node.setup.get(cluster.cluster_id) != "pending":
            return  # a cluster closed meanwhile
        node.setup[cluster.cluster_id] = "ready"
        for key, running in (("running", True), ("results", False)):
            for job_id, attempt in _job_entries(msg.get(key)):
                self._reconcile(cluster, node, job_id, attempt, running, now)
        for job_id, attempt in _job_entries(msg.get("dropped")):
            self._requeue_dropped(cluster, node, job_id, attempt)
        self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "initialized", "cluster_id": cluster.cluster_id,
            "node": self._node_info(node, cluster.cluster_id)}))
        self._dirty = True

    def _requeue_dropped(self, cluster: ClusterRecord, node: NodeRecord, job_id: str,
                         attempt: int) -> None:
        """A node fenced (dropped unstarted) a job of ours after a freeze: run it elsewhere."""
        job = self.jobs.get(job_id)
        if job is None or job.cluster_id != cluster.cluster_id or job.attempt != attempt:
            return  # settled meanwhile, or already given out again
        if job.state is JobState.ADOPTING or (job.state is JobState.DISPATCHED
                                              and job.node_id == node.node_id):
            node.inflight.pop(job_id, None)
            self._adopting.pop(job_id, None)
            job.node_id = None
            self._enqueue(cluster, job)

    def handle_setup_fail(self, peer: Peer, msg: Message, now: float) -> None:
        node = self._node_of(peer)
        cluster = self.clusters.get(str(msg.fields["cluster_id"]))
        if cluster is None:
            return
        reason = str(msg.fields["reason"])[:4000]
        node.setup[cluster.cluster_id] = "failed"
        node.setup_failures[cluster.cluster_id] = reason
        self.log.warning("event=setup_failed node=%s cluster=%s reason=%r",
                         node.name, cluster.cluster_id, reason)
        self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
            "event": "setup_failed", "cluster_id": cluster.cluster_id, "node": node.public(),
            "reason": reason}))
        settle_nodeless(self, cluster, now)  # was it the last node that could run it?

    def handle_node_alert(self, peer: Peer, msg: Message, now: float) -> None:
        """A node reports trouble its clients should hear of (its spool cannot be written)."""
        node = self._node_of(peer)
        reason = str(msg.fields["reason"])[:2000]
        self.log.warning("event=node_alert node=%s reason=%r", node.name, reason)
        for cluster_id in node.setup:
            cluster = self.clusters.get(cluster_id)
            if cluster is not None:
                self._send(CLIENT, cluster.client, new_message("NODE_EVENT", {
                    "event": "alert", "cluster_id": cluster_id, "node": node.public(),
                    "reason": reason}))

    def goodbye(self) -> list[Send]:
        """The scheduler closes: tell every node, so none waits for a heartbeat to know."""
        for node in self.nodes.values():
            self._send(NODE, node.route, new_message("DISCONNECT", {"reason": "the scheduler closed"}))
        return self.flush()

    def _job_from_node(self, peer: Peer, msg: Message) -> tuple[NodeRecord, JobRecord | None]:
        node = self._node_of(peer)
        job = self.jobs.get(str(msg.fields["job_id"]))
        attempt = msg.fields.get("attempt")
        if (job is None or job.node_id != node.node_id or job.attempt != attempt
                or job.state is JobState.DONE):
            return node, None  # stale: an old attempt, a repeat, or a job closed meanwhile
        return node, job

    def handle_job_started(self, peer: Peer, msg: Message, now: float) -> None:
        node, job = self._job_from_node(peer, msg)
        if job is None or job.state is not JobState.DISPATCHED:
            return
        job.state = JobState.RUNNING
        fields = {"job_id": job.job_id, "event": "running", "node": node.name,
                  "ip_addr": node.ip_addr, "start_time": msg.get("start_time")}
        self._send(CLIENT, self.clusters[job.cluster_id].client, new_message("JOB_EVENT", fields))

    def handle_job_provisional(self, peer: Peer, msg: Message, now: float) -> None:
        node, job = self._job_from_node(peer, msg)
        if job is None:
            return
        fields = {"job_id": job.job_id, "event": "provisional", "node": node.name}
        self._send(CLIENT, self.clusters[job.cluster_id].client,
                   new_message("JOB_EVENT", fields, msg.frames, msg.labels))

    def handle_job_file(self, peer: Peer, msg: Message, now: float) -> None:
        node, job = self._job_from_node(peer, msg)
        if job is None:
            return
        fields = {"job_id": job.job_id, "path": msg.fields["path"], "node": node.name}
        self._send(CLIENT, self.clusters[job.cluster_id].client,
                   new_message("JOB_FILE", fields, msg.frames, msg.labels))

    def handle_job_result(self, peer: Peer, msg: Message, now: float) -> None:
        node, job = self._job_from_node(peer, msg)
        job_id = str(msg.fields["job_id"])
        if job is None:
            self.duplicates += 1
            if job_id not in self.jobs or self.jobs[job_id].state is JobState.DONE:
                # acknowledge so the node can drop its spooled copy
                self._send(NODE, node.route, new_message("RESULT_ACK", {"job_ids": [job_id]}))
            return
        node.inflight.pop(job_id, None)
        node.jobs_done += 1
        start, end = msg.get("start_time"), msg.get("end_time")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
            self.job_time = 0.9 * self.job_time + 0.1 * (end - start) \
                if self.job_time != float("inf") else float(end - start)
        fields = {k: v for k, v in msg.fields.items() if k != "attempt"}
        fields.update(node=node.name, ip_addr=node.ip_addr, attempts=job.attempt)
        self._finish(job, fields, msg.frames, msg.labels, node.node_id)
        self._dirty = True

    def _credit_for(self, cpus: int) -> int:
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
        """Give queued jobs to nodes with credit, least loaded first."""
        if not any(c.queued > 0 for c in self.clusters.values()):
            return  # nothing to give: no node need be looked at
        # credit by CPU count: the same for every node of a size (one scan, no call per node)
        credit = {n.cpus: 0 for n in self.nodes.values()}
        for cpus in credit:
            credit[cpus] = self._credit_for(cpus)
        hungry = [n for n in self.nodes.values()
                  if len(n.inflight) < credit[n.cpus] and not n.suspect]
        while hungry:
            if len(hungry) > 1:
                hungry.sort(key=lambda n: len(n.inflight) / n.cpus)
            progressed = []
            for node in hungry:
                if self._assign_one(node) and len(node.inflight) < credit[node.cpus]:
                    progressed.append(node)
            hungry = progressed

    def _pinned_for(self, cluster: ClusterRecord, node: NodeRecord) -> JobQueue | None:
        return cluster.pinned.get(node.node_id) or cluster.pinned.get(node.name) \
            or cluster.pinned.get(node.ip_addr)

    def _candidates(self, node: NodeRecord) -> list[ClusterRecord]:
        """The clusters that may give ``node`` a job now, in the policy's order."""
        ready = [self.clusters[cid] for cid, state in node.setup.items()
                 if state == TAKES_JOBS and self.clusters[cid].queued > 0]
        if not ready:
            return []
        owner = self._exclusive_owner()
        if owner is not None:  # an exclusive cluster runs alone, on nodes free of others' jobs
            others = any((j := self.jobs.get(i)) and j.cluster_id != owner.cluster_id
                         for i in node.inflight)
            return [owner] if owner in ready and not others else []
        policy = self.options.policy
        if policy == "fair":
            return sorted(ready, key=lambda c: c.served)
        if policy == "early":
            return sorted(ready, key=lambda c: c.created)

        def head(cluster: ClusterRecord) -> tuple[int, int]:
            pinned = self._pinned_for(cluster, node)
            heads = [h for h in (cluster.queue.head(self.jobs),
                                 pinned.head(self.jobs) if pinned else None) if h is not None]
            return min(heads) if heads else (1 << 62, 1 << 62)
        return sorted(ready, key=head)

    def _exclusive_owner(self) -> ClusterRecord | None:
        active = [c for c in self.clusters.values() if c.exclusive and c.jobs
                  and any(self.jobs[j].state is not JobState.DONE for j in c.jobs)]
        return min(active, key=lambda c: c.created) if active else None

    def _assign_one(self, node: NodeRecord) -> bool:
        for cluster in self._candidates(node):
            cluster_id = cluster.cluster_id
            limit = node.cluster_cpus.get(cluster_id, node.cpus)
            if limit < node.cpus and self._busy_for(node, cluster_id) >= limit:
                continue  # a cluster limited to part of a node gets no prefetch: exact CPUs
            job = None
            pinned = self._pinned_for(cluster, node)
            if pinned is not None:
                job = pinned.pop(self.jobs)
            if job is None:
                job = cluster.queue.pop(self.jobs)
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
                      "timeout": job.spec.get("timeout")}
            self._send(NODE, node.route, new_message("JOB_ASSIGN", fields, job.frames, job.labels))
            return True
        return False

    def _too_large_for(self, job: JobRecord, node: NodeRecord, limit: int) -> None:
        """A node would drop the link for a message over its limit: the job ends instead."""
        message = (f"the job's arguments are {job.size} bytes, over node {node.name}'s message "
                   f"limit of {limit} bytes (gridlib node --max-msg-size): send less (ship data "
                   f"as a file with depends= or cluster.send_file), or raise the node's limit")
        self._finish(job, {"status": "terminated", "node": node.name, "reason": message,
                           "exception": {"type": "PayloadTooLarge", "message": message,
                                         "traceback": ""}}, [], [])

    def _client_gone(self, route: Route) -> None:
        client = self.clients.pop(route, None)
        if client is None:
            return
        for cluster_id in list(client.clusters):
            cluster = self.clusters.get(cluster_id)
            if cluster is not None:
                fake = new_message("CLUSTER_CLOSE", {"cluster_id": cluster_id})
                self.handle_cluster_close(Peer(CLIENT, route, client.user), fake, 0.0)
        self.out = [s for s in self.out if not (s.to == CLIENT and s.route == route)]
        self._replies_after_dispatch = [s for s in self._replies_after_dispatch if s.route != route]

    _client_handlers: dict[str, Callable[[SchedulerCore, Peer, Message, float], None]] = {}
    _node_handlers: dict[str, Callable[[SchedulerCore, Peer, Message, float], None]] = {}


SchedulerCore._client_handlers = {
    "HELLO": SchedulerCore.handle_hello,
    "CLUSTER_OPEN": SchedulerCore.handle_cluster_open,
    "JOB_SUBMIT": SchedulerCore.handle_job_submit,
    "JOB_CANCEL": SchedulerCore.handle_job_cancel,
    "RESULT_ACK": SchedulerCore.handle_result_ack,
    "CLUSTER_CLOSE": SchedulerCore.handle_cluster_close,
    "STATUS": SchedulerCore.handle_status,
    "HEARTBEAT": SchedulerCore.handle_heartbeat,
    "DISCONNECT": SchedulerCore.handle_disconnect,
    "NODE_ALLOCATE": SchedulerCore.handle_node_allocate,
    "NODE_CONTROL": SchedulerCore.handle_node_control,
    "FILE_PUT": SchedulerCore.handle_file_put,
}
SchedulerCore._node_handlers = {
    "OK": SchedulerCore.handle_node_reply,
    "ERROR": SchedulerCore.handle_node_reply,
    "READY": SchedulerCore.handle_ready,
    "SETUP_OK": SchedulerCore.handle_setup_ok,
    "SETUP_FAIL": SchedulerCore.handle_setup_fail,
    "NODE_ALERT": SchedulerCore.handle_node_alert,
    "JOB_STARTED": SchedulerCore.handle_job_started,
    "JOB_PROVISIONAL": SchedulerCore.handle_job_provisional,
    "JOB_FILE": SchedulerCore.handle_job_file,
    "JOB_RESULT": SchedulerCore.handle_job_result,
    "HEARTBEAT": SchedulerCore.handle_heartbeat,
    "DISCONNECT": SchedulerCore.handle_disconnect,
    "STATUS": SchedulerCore.handle_status,
}
