"""The node's I/O-free core (docs/architecture.md §5).

``NodeCore.handle(event, now) -> list[Effect]``: events in (a message on a
scheduler link, a beacon, a worker's result or exit, a timer, a signal),
effects out (send, dial, spawn or kill a worker, write the spool, set a
timer).  There is no socket, process or file here; the shell
(:mod:`.shell`) performs the effects.  Tests drive it with a fake clock
(tests/unit/node/test_core.py), including the property that every request
a scheduler sends gets exactly one answer:

- ``READY`` (ours) is answered by ``WELCOME`` or retried with backoff;
- ``SETUP`` -> one ``SETUP_OK`` or ``SETUP_FAIL`` (again for a repeated ``SETUP``);
- ``JOB_ASSIGN`` -> one ``JOB_RESULT`` for that attempt, whatever happens to the job;
- ``JOB_CANCEL`` -> the job's ``JOB_RESULT`` (``cancelled`` if it had not ended);
- ``FILE_PUT`` -> ``OK`` or ``ERROR``.

Links, the spool's index and the node's lifecycle live here; clusters,
workers and jobs in :class:`~.jobs.JobRunner`; when the node takes work in
:class:`~.lifecycle.NodeLifecycle`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE, Message, error_reply, new_message, reply
from gridlib.protocol.errors import (
    BAD_REQUEST,
    ProtocolError,
)

from .dialing import MAX_PENDING, Candidate, DialPolicy, Pending
from .events import (
    AheadRevoked,
    BeaconHeard,
    CloseLink,
    ClusterPrepared,
    ClusterPrepareFailed,
    Effect,
    Event,
    FileWritten,
    Interrupt,
    LinkFailed,
    LinkMessage,
    LinkOpened,
    OpenLink,
    Reload,
    ResendSpooled,
    Send,
    SendHeartbeat,
    SpoolFailed,
    SpoolLoaded,
    StopNode,
    Terminate,
    Tick,
    TimerFired,
    WorkerExited,
    WorkerReady,
    WorkerReport,
    WorkerResult,
    WorkerSetupFailed,
)
from .jobs import Assignment, ClusterPhase, ClusterState, JobRunner
from .lifecycle import NodeLifecycle
from .links import Link
from .requests import MESSAGE_HANDLERS, SchedulerRequests
from .service_hours import ServiceHours
from .spool_index import SPOOL_GRACE, SPOOL_TIMER, SpoolIndex

__all__ = ["NodeCore", "NodeFacts", "NodeRules", "SPOOL_GRACE", "PENDING_LINK_TIMEOUT", "FREEZE_GAP",
           "HEADER_ALLOWANCE"]

PENDING_LINK_TIMEOUT = 30.0  # seconds a dialed scheduler has to answer READY
HEADER_ALLOWANCE = 65536  # room left for a message's header within a size limit
# Events come at least twice a second (ticks): a gap this long means the node was frozen;
# a link whose scheduler may have declared it lost meanwhile (heard nothing for lost_after - 1
# intervals) is fenced.
FREEZE_GAP = 1.0


@dataclass(frozen=True)
class NodeFacts:
    """What the node is (measured by the shell at start)."""

    node_id: str
    name: str
    cpus: int
    ip_addr: str = ""  # empty: the address each scheduler sees us connect from
    port: int = 0
    platform: str = ""
    pid: int = 0
    python: str = ""  # "3.11": clients must run the same minor version
    protocol: str = ""  # "1.1": clients must speak the same protocol


@dataclass(frozen=True)
class NodeRules:
    """How the node behaves (the ``gridlib node`` options the core needs)."""

    trusted: frozenset[bytes] = frozenset()  # fixed allowlist (else the key files', reloadable)
    scheduler: str = ""  # dial this scheduler directly (tcp://host:port)
    scheduler_key: bytes = b""
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE
    zombie_interval: float = 3600.0
    parent_pid: int = 0
    service_hours: ServiceHours | None = None
    clock: Callable[[], dt.datetime] = dt.datetime.now
    serve: int = 0
    init: tuple[str, str] | None = None
    max_output: int = 4 * 1024 * 1024  # bytes of a job's stdout (and stderr) sent back


class NodeCore:
    """Links, spool index and lifecycle; clusters and jobs in ``self.jobs``."""

    def __init__(self, facts: NodeFacts, rules: NodeRules, trusted: frozenset[bytes] = frozenset(),
                 log: logging.Logger | None = None, wall: Callable[[], float] = time.time) -> None:
        self.facts, self.rules, self.wall = facts, rules, wall
        self.log = log or logging.getLogger("gridlib.node")
        self.trusted = rules.trusted or trusted  # the keys whose schedulers we serve
        self.parent_pid = rules.parent_pid
        self.now = 0.0
        self.out: list[Effect] = []
        self.links: dict[str, Link] = {}
        self.spooled = SpoolIndex(self.out)
        self.jobs = JobRunner(facts.cpus, self.out, self, rules.init, self.log, rules.max_output)
        self.lifecycle = NodeLifecycle(self, rules.service_hours, rules.clock, rules.serve, self.log)
        self.requests = SchedulerRequests(self)  # what each scheduler message does (requests.py)
        self.stopped = False
        self._spool_expiry: float | None = None
        self._scheduler_key = b""
        self._last_event = 0.0
        self.dialer = DialPolicy()
        self._failed_links = 0
        self._sessions = 0  # pending links that failed at once (logged as a count)
        self._failed_logged = 0.0

    # -- the one entry point ------------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Effect]:
        """Handle one event at monotonic time ``now``; returns (and clears) the effects."""
        previous, self._last_event = self._last_event, now
        self.now = self.jobs.now = now
        if previous and now - previous > FREEZE_GAP:
            self._fence(now - previous)
        handler = _EVENT_HANDLERS[type(event)]
        handler(self, event)
        self.lifecycle.settle()
        out = list(self.out)
        self.out.clear()
        return out

    def quiet_for(self, now: float) -> float:
        """Seconds since the last event was handled (a gap over FREEZE_GAP: the node was frozen)."""
        return now - self._last_event if self._last_event else 0.0

    def start(self, now: float) -> list[Effect]:
        """The node starts: dial the configured scheduler (beacons bring the others)."""
        self.now = self.jobs.now = now
        if self.rules.scheduler:
            self._scheduler_key = self.rules.scheduler_key or self._only_trusted_key()
        if self.lifecycle.start():
            self.rejoin()
        out = list(self.out)
        self.out.clear()
        return out

    def _fence(self, gap: float) -> None:
        """The node was frozen (SIGSTOP, a suspended VM) for ``gap`` seconds: a scheduler that
        heard nothing that long has declared it lost and given its jobs to other nodes.  The
        jobs queued here and not started are dropped (never run twice) and reported in the next
        ``SETUP_OK`` as ``dropped``; the node registers again.  Running jobs carry on: their
        scheduler decides (adoption) whether their results still count."""
        for link in list(self.links.values()):
            if gap < link.interval * (link.lost_after - 1):
                continue
            dropped = self.jobs.drop_pending(link.sid)
            self.log.warning("event=fenced scheduler=%s frozen_for=%.1f dropped_jobs=%d",
                             link.sid, gap, dropped)
            if link.welcomed:
                link.welcomed = False
                link.backoff.reset()
                self.send_ready(link, fresh=True)

    def _only_trusted_key(self) -> bytes:
        if len(self.trusted) != 1:
            raise ProtocolError("--scheduler needs --scheduler-key when several keys are trusted")
        return next(iter(self.trusted))

    # -- the lifecycle's handles ---------------------------------------------------------
    def rejoin(self) -> None:
        """Back in the grid: dial the configured scheduler."""
        if self.rules.scheduler and "dial-out" not in self.links:
            self._open_link("dial-out", 0, self.rules.scheduler, self._scheduler_key, dial_out=True)

    def leave_grid(self, reason: str, kill: bool) -> None:
        """Out of service: DISCONNECT every scheduler and tear every cluster down.

        Unacknowledged results stay in the spool (sent again when their
        cluster is set up here again); ``kill`` kills running jobs.
        """
        self.spooled.write_all_held()
        for link in list(self.links.values()):
            self.links.pop(link.sid, None)
            self.send(link, new_message("DISCONNECT", {"reason": reason}))
            self.out.append(CloseLink(link.sid, 500))  # the DISCONNECT gets out in the background
        self.jobs.leave(kill)
        self.log.info("event=left_grid reason=%r killed_jobs=%s", reason, kill)

    def unacked_results(self) -> int:
        """Results of clusters of live links not acknowledged yet."""
        live = {c.cluster_id for c in self.jobs.clusters.values() if c.link in self.links}
        return sum(1 for entry in self.spooled.entries.values() if entry.cluster_id in live)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for link in self.links.values():
            self.send(link, new_message("DISCONNECT", {"reason": "the node is stopping"}))
        self.jobs.kill_all()
        for link in self.links.values():
            self.out.append(CloseLink(link.sid, 0 if self.parent_pid else 100))
        self.links.clear()
        self.out.append(StopNode(remove_prefix=bool(self.parent_pid)))

    # -- links ---------------------------------------------------------------------------
    def _open_link(self, sid: str, epoch: int, endpoint: str, key: bytes, dial_out: bool = False) -> None:
        self.links[sid] = Link(sid, epoch, endpoint, key, self.now, dial_out=dial_out, opened=self.now)
        self.out.append(OpenLink(sid, endpoint, key, watch=not dial_out))
        log = self.log.info if dial_out or endpoint in self.dialer.proven else self.log.debug
        log("event=dialing scheduler=%s endpoint=%s", sid, endpoint)

    def _try_dial(self, candidate: Candidate) -> None:
        """Dial the scheduler a beacon named, if the dial policy has room (dialing.py)."""
        pending = [Pending(lk.sid, lk.endpoint, lk.opened, lk.persistence)
                   for lk in self.links.values() if not lk.welcomed and not lk.dial_out]
        ok, evict = self.dialer.choose(candidate, pending, self.now)
        if not ok:
            return
        if evict is not None and evict.sid in self.links:
            self._drop_pending(self.links[evict.sid])
        beacon = candidate.beacon
        self._open_link(beacon.scheduler_id, beacon.epoch, beacon.endpoint, beacon.key)
        link = self.links[beacon.scheduler_id]
        link.interval, link.persistence = beacon.heartbeat, candidate.count

    def _drop_pending(self, link: Link) -> None:
        """A link that never registered goes, quietly (beacons can make many of them)."""
        self.links.pop(link.sid, None)
        self.out.append(CloseLink(link.sid, 0))

    def send_ready(self, link: Link, fresh: bool = False) -> None:
        """READY; ``fresh``: a new registration (after a fence, or the scheduler forgot us),
        else the same one again (a retry, which a slow link makes look late)."""
        if fresh or not link.session:
            self._sessions += 1
            link.session = f"{self.facts.node_id[:12]}.{self._sessions}"
        f = self.facts
        self.send(link, new_message("READY", {
            "node_id": f.node_id, "name": f.name, "cpus": f.cpus, "ip_addr": f.ip_addr or link.ip_addr,
            "platform": f.platform, "port": f.port, "pid": f.pid, "spooled": len(self.spooled),
            "python": f.python, "protocol": f.protocol, "max_msg_size": self.rules.max_msg_size,
            "session": link.session, "batches": True,
        }))
        link.next_ready = self.now + link.backoff.next()

    def close_link(self, link: Link, reason: str, quiet: bool = False) -> None:
        if quiet:
            self.log.info("event=scheduler_left scheduler=%s reason=%r", link.sid, reason)
        else:
            self.log.warning("event=scheduler_lost scheduler=%s reason=%r", link.sid, reason)
        self.links.pop(link.sid, None)
        if not quiet:
            self.send(link, new_message("DISCONNECT", {"reason": reason}))  # best effort
        self.out.append(CloseLink(link.sid, 100))
        self.orphan(link.sid)

    def orphan(self, sid: str) -> None:
        self.spooled.write_all_held()  # its results may now wait for a long time: make them durable
        self.jobs.orphan(sid, self.now)

    def _link_alive(self, link: Link) -> bool:
        return link.welcomed and self.now - link.last_heard < link.interval * link.lost_after

    def send(self, link: Link, msg: Message) -> None:
        self.out.append(Send(link.sid, msg))

    def _send_to(self, sid: str, msg: Message) -> None:
        if sid in self.links:
            self.out.append(Send(sid, msg))

    # -- events --------------------------------------------------------------------------
    def on_link_opened(self, event: LinkOpened) -> None:
        link = self.links.get(event.sid)
        if link is not None:
            link.ip_addr = event.ip_addr
            self.send_ready(link)

    def on_beacon(self, event: BeaconHeard) -> None:
        """A valid beacon naming a trusted key: dial that scheduler unless already linked."""
        beacon = event.beacon
        link = self.links.get(beacon.scheduler_id)
        if not self.lifecycle.may_link(beacon.scheduler_id, link is not None):
            return
        if link is not None and (link.epoch == beacon.epoch or self._link_alive(link)):
            return  # a live link is never disturbed by a beacon
        if link is not None:  # a scheduler we served restarted (another epoch): dial it again
            self.close_link(link, "scheduler restarted")
            self._open_link(beacon.scheduler_id, beacon.epoch, beacon.endpoint, beacon.key)
            self.links[beacon.scheduler_id].interval = beacon.heartbeat
            return
        candidate = self.dialer.heard(beacon, self.now)
        if not self.dialer.pressed:  # else the most persistent candidates go first, at ticks
            self._try_dial(candidate)

    def on_link_failed(self, event: LinkFailed) -> None:
        link = self.links.get(event.sid)
        if link is None or link.welcomed or link.dial_out:
            return
        self._drop_pending(link)
        self._failed_links += 1
        if self.now - self._failed_logged >= 10.0:  # forged beacons must not flood the log
            self._failed_logged = self.now
            self.log.warning("event=beacon_endpoint_failed endpoint=%s reason=%r failed_total=%d",
                             link.endpoint, event.reason, self._failed_links)

    def on_link_message(self, event: LinkMessage) -> None:
        link = self.links.get(event.sid)
        if link is None:
            return  # a link closed meanwhile
        link.last_heard = self.now
        msg = event.msg
        handler = MESSAGE_HANDLERS.get(msg.type)
        if handler is None:
            self.log.warning("event=unexpected_message scheduler=%s type=%s", link.sid, msg.type)
            return
        try:
            handler(self.requests, link, msg)
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {exc}"
            code = exc.code if isinstance(exc, ProtocolError) else BAD_REQUEST
            self.log.warning("event=bad_message scheduler=%s type=%s reason=%r", link.sid, msg.type, reason)
            if msg.type not in ("ERROR", "OK", "HEARTBEAT", "WELCOME", "RESULT_ACK", "DISCONNECT"):
                self.send(link, error_reply(msg, code, reason))

    def on_tick(self, event: Tick) -> None:
        self.lifecycle.tick()
        if self.stopped:
            return
        self._expire()
        for candidate in self.dialer.best(self.now, MAX_PENDING):
            if candidate.beacon.scheduler_id not in self.links \
                    and self.lifecycle.may_link(candidate.beacon.scheduler_id, False):
                self._try_dial(candidate)
        for link in list(self.links.values()):
            silent = self.now - link.last_heard
            if not link.welcomed:
                if not link.dial_out and silent > PENDING_LINK_TIMEOUT:
                    self.close_link(link, "no answer to READY")
                elif self.now >= link.next_ready:
                    self.send_ready(link)
                continue
            if silent > link.interval * link.lost_after:
                if link.dial_out:  # keep dialing; the clusters wait zombie_interval for it
                    self.log.warning("event=scheduler_silent scheduler=%s", link.sid)
                    link.welcomed = False
                    self.orphan(link.sid)
                    self.send_ready(link, fresh=True)
                else:
                    self.close_link(link, "no heartbeat")
                continue
            if self.now - link.last_beat >= link.interval:
                link.last_beat = self.now
                self.out.append(SendHeartbeat(link.sid))

    def _expire(self) -> None:
        """Clusters orphaned for zombie_interval, and spooled results nobody came back for."""
        for cluster in list(self.jobs.clusters.values()):
            since = cluster.orphaned_since
            if since is not None and self.now - since >= self.rules.zombie_interval:
                self.log.warning("event=zombie_cluster_removed cluster=%s", cluster.cluster_id)
                self.jobs.teardown(cluster.cluster_id)
                self.spooled.drop_cluster(cluster.cluster_id)
        if self._spool_expiry is not None and self.now >= self._spool_expiry:
            self._spool_expiry = None
            for cluster_id in self.spooled.clusters():
                if cluster_id not in self.jobs.clusters:
                    self.log.warning("event=spool_expired cluster=%s", cluster_id)
                    self.spooled.drop_cluster(cluster_id)

    def on_timer(self, event: TimerFired) -> None:
        if event.key == SPOOL_TIMER:
            self.spooled.grace_ended(self.now)
        else:
            self.jobs.timer(event.key)

    def on_interrupt(self, event: Interrupt) -> None:
        self.lifecycle.interrupt()

    def on_terminate(self, event: Terminate) -> None:
        self.log.info("event=stopping reason=%r", event.reason)
        self.stop()

    def on_reload(self, event: Reload) -> None:
        """New allowlists (SIGHUP): links to schedulers no longer trusted are closed."""
        self.trusted = self.rules.trusted or event.trusted
        for link in list(self.links.values()):
            if link.key not in self.trusted and not link.dial_out:
                self.close_link(link, "key revoked")
        self.log.info("event=allowlist_reloaded trusted=%d", len(self.trusted))

    def on_spool_loaded(self, event: SpoolLoaded) -> None:
        self.spooled.loaded(event.entries)
        if event.entries:  # results of an earlier run: kept until their cluster is set up again
            self._spool_expiry = self.now + self.rules.zombie_interval

    def on_spool_failed(self, event: SpoolFailed) -> None:
        """The spool could not be written: the results are in memory only; say so to every
        scheduler (whose clients log it), not only in this node's log."""
        self.log.error("event=spool_write_failed error=%s", event.error)
        text = (f"node {self.facts.name}: cannot write its result spool ({event.error}); "
                "results not yet acknowledged are lost if this node dies: free disk space "
                "under its --dest-path-prefix")
        for link in self.links.values():
            if link.welcomed:
                self.send(link, new_message("NODE_ALERT", {"reason": text}))

    def on_worker_ready(self, event: WorkerReady) -> None:
        self.jobs.worker_ready(event.wid)

    def on_worker_setup_failed(self, event: WorkerSetupFailed) -> None:
        self.jobs.worker_setup_failed(event.wid, event.reason)

    def on_worker_result(self, event: WorkerResult) -> None:
        self.jobs.worker_result(event.wid, dict(event.fields), list(event.frames))

    def on_worker_report(self, event: WorkerReport) -> None:
        self.jobs.worker_report(event.wid, event.kind, dict(event.fields), list(event.frames))

    def on_worker_exited(self, event: WorkerExited) -> None:
        self.jobs.worker_exited(event.wid, event.exitcode, event.reason)

    def on_cluster_prepared(self, event: ClusterPrepared) -> None:
        self.jobs.prepared(event.cluster_id, event.directory)

    def on_cluster_prepare_failed(self, event: ClusterPrepareFailed) -> None:
        cluster = self.jobs.clusters.get(event.cluster_id)
        if cluster is not None and cluster.phase is ClusterPhase.PREPARING:
            self.log.warning("event=setup_refused cluster=%s reason=%r", event.cluster_id, event.reason)
            self.jobs.fail(cluster, event.reason)

    def on_file_written(self, event: FileWritten) -> None:
        link = self.links.get(event.sid)
        if link is None:
            return
        if event.code:
            self.send(link, error_reply(event.request, event.code, event.reason))
        else:
            self.send(link, reply(event.request, "OK", {"name": event.request.fields.get("name"),
                                                         "size": event.size}))

    # -- messages from schedulers: requests.py -------------------------------------------
    def want_lookahead(self, cluster: ClusterState, depth: int) -> None:
        """Ask the cluster's scheduler to grant jobs ahead (an older one is not asked)."""
        link = self.links.get(cluster.link)
        if link is not None and link.welcomed and link.lookahead:
            self.send(link, new_message("LOOKAHEAD", {"cluster_id": cluster.cluster_id, "depth": depth}))

    def on_ahead_revoked(self, event: AheadRevoked) -> None:
        self.jobs.ahead_revoked(event)

    # -- answers from the job runner ----------------------------------------------------------
    def setup_answer(self, cluster: ClusterState) -> None:
        """The one answer to a cluster's SETUP: ready (with what we hold for it) or failed."""
        link = self.links.get(cluster.link)
        if link is None:
            return
        owed, cluster.answers_owed = cluster.answers_owed, 0
        if cluster.phase is ClusterPhase.FAILED:
            for _ in range(owed):
                self.send(link, new_message("SETUP_FAIL", {"cluster_id": cluster.cluster_id,
                                                            "reason": cluster.fail_reason}))
            return
        if not owed:
            return
        spooled = self.spooled.of_cluster(cluster.cluster_id)
        for _ in range(owed):
            self.send(link, new_message("SETUP_OK", {
                "cluster_id": cluster.cluster_id, "running": self.jobs.jobs_of(cluster.cluster_id),
                "results": [[job_id, attempt] for job_id, attempt in spooled],
                "dropped": cluster.dropped}))
        cluster.dropped = []
        if spooled:
            self.out.append(ResendSpooled(link.sid, [job_id for job_id, _ in spooled]))

    def job_result(self, job: Assignment, fields: dict[str, Any], frames: list[Any],
                   labels: list[str]) -> None:
        """A job's one result: sent, and kept until acknowledged (held, or in the spool)."""
        fields.setdefault("end_time", self.wall())
        if job.start_time:  # a job ended by the node (time limit, cancel, a dead worker)
            fields.setdefault("start_time", self._wall_of(job.start_time))
        link = self.links.get(job.link)
        limit = link.max_msg_size if link is not None else self.rules.max_msg_size
        size = sum(memoryview(f).nbytes for f in frames)
        if size + HEADER_ALLOWANCE > limit:
            fields, frames, labels = _too_large(fields, size, limit), [], []
        live = link is not None and link.welcomed  # durable within SPOOL_GRACE, unless acked first
        self.spooled.keep(job.cluster_id, job.job_id, job.attempt, fields, frames, labels, live,
                          self.now)
        self.lifecycle.poke()
        if link is not None:
            self.send(link, new_message("JOB_RESULT", fields, frames, labels))

    def _wall_of(self, moment: float) -> float:
        """The wall-clock time of ``moment`` on the core's (monotonic) clock."""
        return self.wall() - (self.now - moment)

    def job_report(self, job: Assignment, mtype: str, fields: dict[str, Any], frames: list[Any],
                   labels: list[str]) -> None:
        """JOB_STARTED, JOB_PROVISIONAL or JOB_FILE for a running job."""
        link = self.links.get(job.link)
        if link is None:
            return
        if "start_time" in fields:  # the runner's clock is the core's; clients read wall time
            fields = {**fields, "start_time": self._wall_of(float(fields["start_time"]))}
        size = sum(memoryview(f).nbytes for f in frames)
        if size + HEADER_ALLOWANCE > link.max_msg_size:
            self.log.warning("event=report_too_large job=%s type=%s size=%d limit=%d",
                             job.job_id, mtype, size, link.max_msg_size)
            return
        self.send(link, new_message(mtype, fields, frames, labels))


def _too_large(fields: dict[str, Any], size: int, limit: int) -> dict[str, Any]:
    message = (f"the job's result is {size} bytes, over the {limit}-byte message limit between "
               f"this node and its scheduler (the client's max_msg_size=): return less (write it "
               f"to a file and gridlib.send_file() it), or raise max_msg_size")
    keep = {k: v for k, v in fields.items() if k in ("job_id", "attempt", "cluster_id", "start_time",
                                                      "end_time")}
    return {**keep, "status": "terminated",
            "exception": {"type": "PayloadTooLarge", "message": message, "traceback": ""}}


_EVENT_HANDLERS: dict[type, Callable[[NodeCore, Any], None]] = {
    LinkMessage: NodeCore.on_link_message,
    LinkOpened: NodeCore.on_link_opened,
    LinkFailed: NodeCore.on_link_failed,
    BeaconHeard: NodeCore.on_beacon,
    WorkerReady: NodeCore.on_worker_ready,
    WorkerSetupFailed: NodeCore.on_worker_setup_failed,
    WorkerResult: NodeCore.on_worker_result,
    WorkerReport: NodeCore.on_worker_report,
    WorkerExited: NodeCore.on_worker_exited,
    TimerFired: NodeCore.on_timer,
    Tick: NodeCore.on_tick,
    Interrupt: NodeCore.on_interrupt,
    Terminate: NodeCore.on_terminate,
    Reload: NodeCore.on_reload,
    SpoolLoaded: NodeCore.on_spool_loaded,
    SpoolFailed: NodeCore.on_spool_failed,
    ClusterPrepared: NodeCore.on_cluster_prepared,
    ClusterPrepareFailed: NodeCore.on_cluster_prepare_failed,
    FileWritten: NodeCore.on_file_written,
    AheadRevoked: NodeCore.on_ahead_revoked,
}
