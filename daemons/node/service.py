"""The node daemon's socket shell (DESIGN §3, §5, §7).

A node is passive: it binds a plaintext beacon SUB port and waits.  When a
beacon names a scheduler whose key the node trusts, the node dials it with a
CURVE DEALER (the handshake proves the scheduler holds that key) and sends
``READY``.  A node behind NAT dials a configured scheduler directly.  Each
scheduler link carries heartbeats both ways; jobs run in the
:class:`~.executor.JobExecutor`'s worker processes, never in this loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from gridlib.protocol.beacon import Beacon
from gridlib.protocol.codec import (
    Message,
    decode,
    encode,
    error_reply,
    new_message,
    reply,
    split_envelope,
)
from gridlib.protocol.discovery import BeaconListener
from gridlib.protocol.errors import BAD_REQUEST, ILLEGAL_STATE, NOT_FOUND, ProtocolError
from gridlib.protocol.keys import Identity
from gridlib.protocol.liveness import Backoff
from gridlib.protocol.messages import opt
from gridlib.protocol.paths import write_file
from gridlib.protocol.reactor import Reactor, Timer
from gridlib.protocol.sockets import (
    DEFAULT_MAX_MSG_SIZE,
    curve_client_socket,
    parse_endpoint,
    recv_frames,
    send_frames,
)

from .executor import Assignment, JobExecutor
from .host_info import address_toward, available_resources
from .lifecycle import NodeLifecycle
from .prefix import load_node_id, prepare_prefix
from .service_hours import ServiceHours
from .spool import ResultSpool

__all__ = ["NodeConfig", "NodeService"]

_MAX_PENDING_LINKS = 16  # schedulers dialed but not yet answering
_PENDING_LINK_TIMEOUT = 30.0  # seconds a dialed scheduler has to answer READY
# A result sent over a live link is written to the spool only if it is still
# unacknowledged this long after (acks take milliseconds), or when more than
# spool.HELD_BYTES are held: most never touch the disk.  One sent while no link is
# up is written at once, and so is everything held when the link is lost.
SPOOL_GRACE = 1.0


@dataclass
class NodeConfig:
    """How a node runs (the ``gridlib node`` options)."""

    cpus: int = 0  # 0: all; negative: all but that many
    host: str = "0.0.0.0"
    port: int = 51352  # beacon port; 0: no beacon listener (dial-out only)
    name: str = ""
    dest_path_prefix: str = ""
    scheduler: str = ""  # tcp://host:port to dial directly
    scheduler_key: bytes = b""
    max_file_size: int = 100 * 1024 * 1024
    zombie_interval: float = 3600.0
    parent_pid: int = 0  # exit when this process is gone (a client's private node)
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE  # larger messages drop the connection
    trusted: frozenset[bytes] = field(default_factory=frozenset)
    service_hours: ServiceHours | None = None  # None: always in service
    clock: Callable[[], dt.datetime] = dt.datetime.now  # local time, for service_hours
    serve: int = 0  # exit after this many clusters are done (0: never)
    init: tuple[str, str] | None = None  # the --init file: (path, source)

    def effective_cpus(self) -> int:
        total = os.cpu_count() or 1
        if self.cpus > 0:
            return min(self.cpus, 4096)
        return max(1, total + self.cpus)

    def prefix_path(self) -> Path:
        """The node's state directory: --dest-path-prefix, or one per beacon port."""
        return Path(self.dest_path_prefix or f"/tmp/gridlib-{os.getuid()}/node-{self.port}")


@dataclass
class SchedulerLink:
    """One scheduler this node serves."""

    sid: str
    epoch: int
    endpoint: str
    key: bytes
    socket: zmq.Socket[bytes]
    last_heard: float
    interval: float = 2.0
    lost_after: int = 5
    welcomed: bool = False
    dial_out: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    next_ready: float = 0.0
    last_beat: float = 0.0


class NodeService:
    """A node: beacon listener, scheduler links and the job executor."""

    def __init__(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]],
                 identity: Identity, config: NodeConfig, log: logging.Logger | None = None) -> None:
        self.reactor, self.context, self.identity, self.config = reactor, context, identity, config
        self.log = log or logging.getLogger("gridlib.node")
        self.trusted = config.trusted or identity.trusted_clients
        self.name = config.name or socket.gethostname()
        self.cpus = config.effective_cpus()
        self.prefix = config.prefix_path()
        prepare_prefix(self.prefix)
        self.node_id = load_node_id(self.prefix)
        # bound to every interface: the scheduler takes the address it sees us connect from
        self.ip_addr = "" if config.host in ("0.0.0.0", "", "*", "::") else config.host
        self.links: dict[str, SchedulerLink] = {}
        self.spool = ResultSpool(self.prefix / "spool", self.log)
        self._spool_timer: Timer | None = None
        self.executor = JobExecutor(reactor, self.cpus, self.prefix, self.name, self.ip_addr,
                                    self._emit, config.max_file_size, self.log, config.init)
        self.lifecycle = NodeLifecycle(self, config.service_hours, config.clock, config.serve,
                                       self.log)
        self.beacons: BeaconListener | None = None
        self.stopped = False
        self._scheduler_key = b""

    # -- start and stop -------------------------------------------------------
    def start(self) -> None:
        if self.config.port:
            self.beacons = BeaconListener(self.reactor, self.context, self.config.host,
                                          self.config.port, lambda: self.trusted,
                                          self._on_beacon, self.log)
        if self.config.scheduler:
            self._scheduler_key = self.config.scheduler_key or self._only_trusted_key()
        if self.lifecycle.start():
            self.rejoin()
        self.reactor.call_every(0.5, self._tick)
        if len(self.spool):  # results of an earlier run: kept until their cluster is set up again
            self.reactor.call_later(self.config.zombie_interval, self._expire_spool)
        self.log.info("event=node_started name=%s node_id=%s cpus=%d port=%s pid=%d",
                      self.name, self.node_id, self.cpus, self.config.port, os.getpid())

    def reload(self, identity: Identity) -> None:
        """New allowlists (SIGHUP): links to schedulers no longer trusted are closed."""
        self.trusted = self.config.trusted or identity.trusted_clients
        for link in list(self.links.values()):
            if link.key not in self.trusted and not link.dial_out:
                self._close_link(link, "key revoked")
        self.log.info("event=allowlist_reloaded trusted=%d", len(self.trusted))

    def rejoin(self) -> None:
        """Back in the grid: dial the configured scheduler (beacons bring the others)."""
        if self.config.scheduler and "dial-out" not in self.links:
            self._open_link("dial-out", 0, self.config.scheduler, self._scheduler_key,
                            dial_out=True)

    def leave_grid(self, reason: str, kill: bool) -> None:
        """Out of service: DISCONNECT every scheduler and tear every cluster down.

        Unacknowledged results stay in the spool (sent again when their
        cluster is set up here again); ``kill`` kills running jobs.
        """
        self._write_all_held()
        for link in list(self.links.values()):
            self.links.pop(link.sid, None)
            self.reactor.remove_reader(link.socket)
            self._send(link, new_message("DISCONNECT", {"reason": reason}))
            link.socket.close(500)  # the DISCONNECT gets out in the background
        self.executor.leave(kill)
        self.log.info("event=left_grid reason=%r killed_jobs=%s", reason, kill)

    def unacked_results(self) -> int:
        """Results of clusters of live links not acknowledged yet."""
        live = {c.cluster_id for c in self.executor.clusters.values() if c.link in self.links}
        return sum(1 for r in self.spool.all() if r.cluster_id in live)

    def _only_trusted_key(self) -> bytes:
        if len(self.trusted) != 1:
            raise ProtocolError("--scheduler needs --scheduler-key when several keys are trusted")
        return next(iter(self.trusted))

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for link in self.links.values():
            self._send(link, new_message("DISCONNECT"))
        self.executor.shutdown()
        try:
            self.spool.close()  # what is held is written
        except OSError as exc:
            self.log.error("event=spool_write_failed error=%s", exc)
        for link in self.links.values():
            self.reactor.remove_reader(link.socket)
            link.socket.close(0 if self.config.parent_pid else 100)  # let DISCONNECT out
        if self.config.parent_pid:  # a client's private node: its files go with it
            shutil.rmtree(self.prefix, ignore_errors=True)
        if self.beacons is not None:
            self.beacons.close()
        self.reactor.stop()

    # -- discovery ------------------------------------------------------------
    def _on_beacon(self, beacon: Beacon) -> None:
        """A valid beacon naming a trusted key: dial that scheduler unless already linked."""
        now = time.monotonic()
        link = self.links.get(beacon.scheduler_id)
        if not self.lifecycle.may_link(beacon.scheduler_id, link is not None):
            return
        if link is not None and (link.epoch == beacon.epoch or self._link_alive(link, now)):
            return  # a live link is never disturbed by a beacon
        if link is None and self._unwelcomed() >= _MAX_PENDING_LINKS:
            return  # bound what beacons can make us dial
        if link is not None:
            self._close_link(link, "scheduler restarted")
        self._open_link(beacon.scheduler_id, beacon.epoch, beacon.endpoint, beacon.key)
        self.links[beacon.scheduler_id].interval = beacon.heartbeat

    def _link_alive(self, link: SchedulerLink, now: float) -> bool:
        return link.welcomed and now - link.last_heard < link.interval * link.lost_after

    def _unwelcomed(self) -> int:
        return sum(1 for link in self.links.values() if not link.welcomed)

    def _open_link(self, sid: str, epoch: int, endpoint: str, key: bytes, dial_out: bool = False) -> None:
        parse_endpoint(endpoint)
        sock = curve_client_socket(self.context, zmq.DEALER, self.identity.keypair, key,
                                   self.config.max_msg_size)
        sock.setsockopt(zmq.ROUTING_ID, b"n" + uuid.uuid4().bytes)  # the same route after reconnects
        sock.connect(endpoint)
        link = SchedulerLink(sid, epoch, endpoint, key, sock, time.monotonic(), dial_out=dial_out)
        self.links[sid] = link
        self.reactor.add_reader(sock, lambda: self._on_link(link))
        self._send_ready(link)
        self.log.info("event=dialing scheduler=%s endpoint=%s", sid, endpoint)

    def _send_ready(self, link: SchedulerLink) -> None:
        self._send(link, new_message("READY", {
            "node_id": self.node_id, "name": self.name, "cpus": self.cpus,
            "ip_addr": self.ip_addr or address_toward(link.endpoint),
            "platform": platform.platform(), "port": self.config.port,
            "pid": os.getpid(), "spooled": len(self.spool),
        }))
        link.next_ready = time.monotonic() + link.backoff.next()

    def _close_link(self, link: SchedulerLink, reason: str) -> None:
        self.log.warning("event=scheduler_lost scheduler=%s reason=%r", link.sid, reason)
        self.links.pop(link.sid, None)
        self.reactor.remove_reader(link.socket)
        self._send(link, new_message("DISCONNECT", {"reason": reason}))  # best effort
        link.socket.close(100)
        self._orphan(link.sid)

    def _orphan(self, sid: str) -> None:
        self._write_all_held()  # its results may now wait for a long time: make them durable
        orphaned = self.executor.orphan(sid, time.monotonic())
        if orphaned:
            self.reactor.call_later(self.config.zombie_interval,
                                    lambda: self._reap_orphans(orphaned))

    def _reap_orphans(self, orphaned: list[tuple[str, float]]) -> None:
        for cluster_id, since in orphaned:
            cluster = self.executor.clusters.get(cluster_id)
            if cluster is not None and cluster.orphaned_since == since:  # not adopted since
                self.log.warning("event=zombie_cluster_removed cluster=%s", cluster_id)
                self.executor.teardown(cluster_id)
                self.spool.drop_cluster(cluster_id)

    def _expire_spool(self) -> None:
        """Drop spooled results whose cluster nobody set up again within zombie_interval."""
        for cluster_id in {r.cluster_id for r in self.spool.all()}:
            if cluster_id not in self.executor.clusters:
                self.log.warning("event=spool_expired cluster=%s", cluster_id)
                self.spool.drop_cluster(cluster_id)

    # -- messages from schedulers ---------------------------------------------
    def _on_link(self, link: SchedulerLink) -> None:
        for _ in range(1000):
            try:
                frames = recv_frames(link.socket)
            except zmq.Again:
                return
            link.last_heard = time.monotonic()
            try:
                _, body = split_envelope(frames)
                msg = decode(body)
                self._handle(link, msg)
            except ProtocolError as exc:
                self.log.warning("event=bad_message scheduler=%s reason=%r", link.sid, exc.reason)

    def _handle(self, link: SchedulerLink, msg: Message) -> None:
        t = msg.type
        if t == "WELCOME":
            link.welcomed = True
            link.backoff.reset()
            link.interval = float(opt(msg.fields, "heartbeat", (int, float), link.interval))
            link.lost_after = int(opt(msg.fields, "lost_after", int, link.lost_after))
        elif t == "SETUP":
            self._handle_setup(link, msg)
        elif t == "JOB_ASSIGN":
            f = msg.fields
            owner = self.executor.clusters.get(str(f["cluster_id"]))
            if owner is not None and owner.link != link.sid:
                raise ProtocolError("JOB_ASSIGN for another scheduler's cluster")
            self.executor.assign(Assignment(
                link.sid, str(f["cluster_id"]), str(f["job_id"]), int(f["attempt"]),
                opt(f, "timeout", (int, float)), list(msg.frames)))
        elif t == "JOB_CANCEL":
            for job_id in msg.fields["job_ids"]:
                if isinstance(job_id, str):
                    self.executor.cancel(job_id, link.sid)
        elif t == "RESULT_ACK":
            self.spool.ack_many([job_id for job_id in msg.fields["job_ids"]
                                 if isinstance(job_id, str) and self._may_ack(job_id, link)])
            self.lifecycle.poke()
        elif t == "FILE_PUT":
            self._handle_file_put(link, msg)
        elif t == "TEARDOWN":
            cluster = self.executor.clusters.get(str(msg.fields["cluster_id"]))
            if cluster is not None and cluster.link == link.sid:
                resetup = msg.get("keep_files") is True  # set up again next: keep its files
                self.executor.teardown(cluster.cluster_id, keep_files=resetup)
                if not resetup:  # (a resetup's unacknowledged results are still acked later)
                    self.spool.drop_cluster(cluster.cluster_id)
        elif t == "ERROR" and msg.get("code") == ILLEGAL_STATE and link.welcomed:
            # the scheduler no longer knows us (it declared us lost, or restarted): register
            # again -- unless another link already serves that endpoint (a restarted scheduler
            # with a new id): then this one is stale
            if any(o is not link and o.welcomed and o.endpoint == link.endpoint
                   for o in self.links.values()):
                self._close_link(link, "superseded by a newer link to the same endpoint")
                return
            self.log.warning("event=reregister scheduler=%s reason=%r", link.sid, msg.get("reason"))
            link.welcomed = False
            link.backoff.reset()
            self._send_ready(link)
        elif t == "ERROR":
            self.log.warning("event=scheduler_error scheduler=%s code=%s reason=%r",
                             link.sid, msg.get("code"), msg.get("reason"))
        elif t != "HEARTBEAT":
            self.log.warning("event=unexpected_message scheduler=%s type=%s", link.sid, t)

    def _may_ack(self, job_id: str, link: SchedulerLink) -> bool:
        """Only the scheduler that owns a result's cluster may release it."""
        entry = self.spool.get(job_id)
        if entry is None:
            return False
        cluster = self.executor.clusters.get(entry.cluster_id)
        return cluster is None or cluster.link == link.sid

    def _handle_file_put(self, link: SchedulerLink, msg: Message) -> None:
        """A file for a cluster's directory (``cluster.send_file``): written safely, answered."""
        cluster = self.executor.clusters.get(str(msg.fields["cluster_id"]))
        if cluster is None or cluster.link != link.sid or len(msg.frames) != 1:
            self._send(link, error_reply(msg, NOT_FOUND, "no such cluster on this node"))
            return
        name = str(msg.fields["name"])
        try:
            data = memoryview(msg.frames[0])
            write_file(cluster.directory, name, data, int(opt(msg.fields, "mode", int, 0o600)),
                       self.config.max_file_size)
        except ProtocolError as exc:
            self.log.warning("event=file_refused cluster=%s name=%r reason=%r",
                             cluster.cluster_id, name, exc.reason)
            self._send(link, error_reply(msg, exc.code, exc.reason))
            return
        except OSError as exc:
            self._send(link, error_reply(msg, BAD_REQUEST, f"cannot write {name!r}: {exc.strerror}"))
            return
        self._send(link, reply(msg, "OK", {"name": name, "size": data.nbytes}))

    def _handle_setup(self, link: SchedulerLink, msg: Message) -> None:
        cluster_id = str(msg.fields["cluster_id"])
        new = cluster_id not in self.executor.clusters
        try:
            refusal = self.lifecycle.admit_cluster(cluster_id) if new else None
            if refusal:
                raise ProtocolError(refusal, ILLEGAL_STATE)
            ready = self.executor.setup(link.sid, link.key, cluster_id, dict(msg.fields),
                                        list(msg.frames), list(msg.labels))
            if new:
                self.lifecycle.cluster_added(cluster_id)
            if ready:
                self._setup_ok(link, cluster_id)
        except (ProtocolError, OSError) as exc:
            reason = exc.reason if isinstance(exc, ProtocolError) else str(exc)
            self.log.warning("event=setup_refused cluster=%s reason=%r", cluster_id, reason)
            self._send(link, new_message("SETUP_FAIL", {"cluster_id": cluster_id, "reason": reason}))

    # -- sending ----------------------------------------------------------------
    def _setup_ok(self, link: SchedulerLink, cluster_id: str) -> None:
        """Report the cluster ready, with the jobs this node holds for it, and resend results."""
        spooled = self.spool.of_cluster(cluster_id)
        self._send(link, new_message("SETUP_OK", {
            "cluster_id": cluster_id, "running": self.executor.jobs_of(cluster_id),
            "results": [[r.job_id, r.fields.get("attempt")] for r in spooled]}))
        for result in spooled:
            try:
                frames = result.frames()
            except (OSError, ValueError) as exc:
                self.log.warning("event=spool_read_failed job=%s error=%s", result.job_id, exc)
                continue
            self._send(link, new_message("JOB_RESULT", result.fields, frames, result.labels))

    def _emit(self, sid: str, mtype: str, fields: dict[str, Any], frames: list[Any],
              labels: list[str]) -> None:
        link = self.links.get(sid)
        if mtype == "SETUP_OK":
            if link is not None:
                self._setup_ok(link, str(fields["cluster_id"]))
            return
        if mtype == "JOB_RESULT":
            cluster_id, job_id = str(fields["cluster_id"]), str(fields["job_id"])
            if link is not None and link.welcomed:  # durable within SPOOL_GRACE, unless acked first
                self.spool.hold(cluster_id, job_id, fields, frames, labels, time.monotonic())
                if self._spool_timer is None:
                    self._spool_timer = self.reactor.call_later(SPOOL_GRACE, self._write_held)
            else:
                self._spool_put(cluster_id, job_id, fields, frames, labels)
            self.lifecycle.poke()
        if link is not None:
            self._send(link, new_message(mtype, fields, frames, labels))

    def _spool_put(self, cluster_id: str, job_id: str, fields: dict[str, Any], frames: list[Any],
                   labels: list[str]) -> None:
        try:
            self.spool.put(cluster_id, job_id, fields, frames, labels)
        except OSError as exc:
            self.log.error("event=spool_write_failed job=%s error=%s", job_id, exc)

    def _write_all_held(self) -> None:
        try:
            self.spool.write_held()
        except OSError as exc:
            self.log.error("event=spool_write_failed error=%s", exc)

    def _write_held(self) -> None:
        """Make durable the results still unacknowledged SPOOL_GRACE after they were sent."""
        self._spool_timer = None
        try:
            left = self.spool.write_held(time.monotonic() - SPOOL_GRACE)
        except OSError as exc:
            self.log.error("event=spool_write_failed error=%s", exc)
            left = len(self.spool)
        if left:
            self._spool_timer = self.reactor.call_later(SPOOL_GRACE / 2, self._write_held)

    def _send(self, link: SchedulerLink, msg: Message) -> None:
        try:
            send_frames(link.socket, [b"", *encode(msg)])
        except zmq.ZMQError as exc:
            self.log.debug("event=send_failed scheduler=%s type=%s error=%s", link.sid, msg.type, exc)

    # -- timers -----------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        if self.config.parent_pid and os.getppid() != self.config.parent_pid:
            self.log.warning("event=parent_gone parent_pid=%d", self.config.parent_pid)
            self.stop()
            return
        self.lifecycle.tick()
        if self.stopped:
            return
        for link in list(self.links.values()):
            silent = now - link.last_heard
            if not link.welcomed:
                if not link.dial_out and silent > _PENDING_LINK_TIMEOUT:
                    self._close_link(link, "no answer to READY")
                elif now >= link.next_ready:
                    self._send_ready(link)
                continue
            if silent > link.interval * link.lost_after:
                if link.dial_out:  # keep dialing; the clusters wait zombie_interval for it
                    self.log.warning("event=scheduler_silent scheduler=%s", link.sid)
                    link.welcomed = False
                    self._orphan(link.sid)
                    self._send_ready(link)
                else:
                    self._close_link(link, "no heartbeat")
                continue
            if now - link.last_beat >= link.interval:
                link.last_beat = now
                self._send(link, new_message("HEARTBEAT", {"avail": available_resources(self.prefix)}))
