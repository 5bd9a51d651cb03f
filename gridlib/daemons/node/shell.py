"""The node daemon's shell: sockets, worker processes, files and timers (docs/architecture.md §5).

A node is passive: it binds a plaintext beacon SUB port and waits.  When a
beacon names a scheduler whose key the node trusts, the core decides to dial
it; the shell opens a CURVE DEALER (the handshake proves the scheduler holds
that key).  Everything the node decides is decided in :class:`~.core.NodeCore`;
this class only turns what happens into events for it and carries out the
effects it returns -- nothing here chooses.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from gridlib.protocol.beacon import Beacon
from gridlib.protocol.codec import (
    MAJOR_VERSION,
    MINOR_VERSION,
    Message,
    encode,
    new_message,
)
from gridlib.protocol.discovery import BeaconListener
from gridlib.protocol.errors import BAD_REQUEST, ProtocolError
from gridlib.protocol.handshake_watch import HandshakeWatch
from gridlib.protocol.keys import Identity
from gridlib.protocol.paths import safe_join, write_file
from gridlib.protocol.reactor import Reactor, Timer
from gridlib.protocol.result_batches import merge_results
from gridlib.protocol.sockets import curve_client_socket, parse_endpoint, recv_message, send_frames

from . import pipes
from .claims import Claims
from .config import NodeConfig
from .core import FREEZE_GAP, NodeCore, NodeFacts, NodeRules
from .events import (
    AheadRevoked,
    BeaconHeard,
    CancelTimer,
    CloseLink,
    ClusterPrepared,
    ClusterPrepareFailed,
    Effect,
    Event,
    FileWritten,
    Interrupt,
    KillWorker,
    LinkFailed,
    LinkMessage,
    LinkOpened,
    OpenLink,
    PrepareCluster,
    Reload,
    RemoveClusterDir,
    ResendSpooled,
    RevokeAhead,
    Send,
    SendHeartbeat,
    SetTimer,
    SpawnWorker,
    SpoolAck,
    SpoolDropCluster,
    SpoolFailed,
    SpoolHold,
    SpoolLoaded,
    SpoolPut,
    SpoolWriteHeld,
    StopNode,
    Terminate,
    Tick,
    TimerFired,
    WorkerExited,
    WorkerReady,
    WorkerReport,
    WorkerResult,
    WorkerSend,
    WorkerSetupFailed,
    WriteClusterFile,
)
from .host_info import address_toward, available_resources
from .job_tree import kill_tree
from .prefix import load_node_id, prepare_prefix
from .spool import ResultSpool
from .worker_entry import start_worker

__all__ = ["NodeService", "NodeConfig", "TICK"]

TICK = 0.5  # seconds between the core's periodic checks
_LINK_FAILURES = {
    zmq.EVENT_CONNECT_RETRIED: "nothing listens at the endpoint the beacon named",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the CURVE handshake failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the CURVE handshake failed (protocol)",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the peer does not hold the key the beacon named",
}
_MP = multiprocessing.get_context("forkserver")
_MP.set_forkserver_preload(["gridlib.daemons.node.worker", "gridlib.daemons.runtime.payload"])


@dataclass
class _Process:
    """A worker process and the node's end of its pipe."""

    process: Any
    conn: pipes.Channel
    fd: int
    claims: Claims


class NodeService:
    """A node: beacon listener, scheduler links and worker processes, steered by its core."""

    def __init__(self, reactor: Reactor, context: zmq.Context[zmq.Socket[bytes]],
                 identity: Identity, config: NodeConfig, log: logging.Logger | None = None) -> None:
        self.reactor, self.context, self.identity, self.config = reactor, context, identity, config
        self.log = log or logging.getLogger("gridlib.node")
        self.prefix = config.prefix_path()
        prepare_prefix(self.prefix)
        host = config.host
        self.beacons: BeaconListener | None = None
        self.port = 0  # the beacon port bound (--port 0: the one the OS chose); 0: none
        if config.listens():  # bound first: the port is one of the facts the node reports
            self.beacons = BeaconListener(reactor, context, host, config.port,
                                          lambda: self.core.trusted, self._on_beacon, self.log)
            self.port = parse_endpoint(
                self.beacons.socket.getsockopt_string(zmq.LAST_ENDPOINT))[1]
        facts = NodeFacts(
            node_id=load_node_id(self.prefix), name=config.name or socket.gethostname(),
            cpus=config.effective_cpus(),
            ip_addr="" if host in ("0.0.0.0", "", "*", "::") else host,  # else: as the scheduler sees us
            port=self.port, platform=platform.platform(), pid=os.getpid(),
            python=f"{sys.version_info.major}.{sys.version_info.minor}",
            protocol=f"{MAJOR_VERSION}.{MINOR_VERSION}")
        rules = NodeRules(
            trusted=config.trusted, scheduler=config.scheduler,
            scheduler_key=config.scheduler_key, max_msg_size=config.max_msg_size,
            zombie_interval=config.zombie_interval, parent_pid=config.parent_pid,
            service_hours=config.service_hours, clock=config.clock, serve=config.serve,
            init=config.init, max_output=config.max_output)
        self.core = NodeCore(facts, rules, identity.trusted_clients, self.log)
        self.name, self.node_id, self.cpus = facts.name, facts.node_id, facts.cpus
        self.spool = ResultSpool(self.prefix / "spool", self.log)
        self.sockets: dict[str, zmq.Socket[bytes]] = {}
        # a turn's JOB_RESULTs per link, sent together after the turn (protocol/result_batches.py)
        self._results: dict[str, list[Message]] = {}
        reactor.after_turn.append(self._send_results)
        # a turn's records to each worker, written together after the turn (one system call,
        # one wake-up of the worker for the jobs a turn hands it)
        self._to_workers: dict[int, list[tuple[str, dict[str, Any] | None, list[Any] | None]]] = {}
        reactor.after_turn.append(self._write_workers)
        self.watches: dict[str, HandshakeWatch] = {}  # sid -> the watch on a link dialed after a beacon
        self.processes: dict[int, _Process] = {}
        self.timers: dict[tuple[Any, ...], Timer] = {}
        self.stopped = False
        self.started = False
        self._queue: list[Event] = []
        self._dispatching = False
        self._performers: dict[type, Callable[[Any], Event | None]] = {
            Send: self._send, SendHeartbeat: self._heartbeat, OpenLink: self._open_link,
            CloseLink: self._close_link, PrepareCluster: self._prepare_cluster,
            RemoveClusterDir: self._remove_dir, WriteClusterFile: self._write_file,
            SpawnWorker: self._spawn, WorkerSend: self._worker_send, KillWorker: self._kill,
            RevokeAhead: self._revoke_ahead,
            SpoolHold: self._spool_hold, SpoolPut: self._spool_put,
            SpoolWriteHeld: self._spool_write_held, SpoolAck: self._spool_ack,
            SpoolDropCluster: self._spool_drop, ResendSpooled: self._resend,
            SetTimer: self._set_timer, CancelTimer: self._cancel_timer, StopNode: self._stop_node,
        }

    # -- running the core -------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        """Hand an event to the core and carry out what it says (follow-up events included)."""
        self._queue.append(event)
        if self._dispatching:
            return  # the loop below picks it up
        self._drain()

    def _drain(self) -> None:
        self._dispatching = True
        try:
            while self._queue:
                self._perform_all(self.core.handle(self._queue.pop(0), time.monotonic()))
        finally:
            self._dispatching = False

    def _perform_all(self, effects: list[Effect]) -> None:
        for effect in effects:
            try:
                follow = self._performers[type(effect)](effect)
            except Exception:  # one effect failing must not strand the others
                self.log.exception("event=effect_failed effect=%s", type(effect).__name__)
                continue
            if follow is not None:
                self._queue.append(follow)

    def start(self) -> None:
        entries = tuple((r.job_id, r.cluster_id, int(r.fields.get("attempt") or 0))
                        for r in self.spool.all())
        self._queue.append(SpoolLoaded(entries))
        self._perform_all(self.core.start(time.monotonic()))
        self._drain()
        self.reactor.call_every(TICK, self._tick)
        self.started = True
        self.log.info("event=node_started name=%s node_id=%s cpus=%d port=%s pid=%d",
                      self.name, self.node_id, self.cpus, self.port or "none", os.getpid())
        if self.config.on_listening is not None:  # last: once it is said, the node runs
            self.config.on_listening({"beacon": self.port or None})

    @property
    def lifecycle(self) -> Any:
        return self.core.lifecycle

    def interrupt(self) -> None:
        self.dispatch(Interrupt())

    def reload(self, identity: Identity) -> None:
        self.dispatch(Reload(identity.trusted_clients))

    def stop(self) -> None:
        if not self.stopped and self.started:
            self.dispatch(Terminate())
        if not self.stopped:  # the core had stopped already: finish the shell's part
            self._stop_node(StopNode(remove_prefix=bool(self.config.parent_pid)))

    def _on_beacon(self, beacon: Beacon) -> None:
        self.dispatch(BeaconHeard(beacon))

    def _tick(self) -> None:
        if self.config.parent_pid and os.getppid() != self.config.parent_pid:
            self.dispatch(Terminate(f"its client (pid {self.config.parent_pid}) is gone"))
            return
        self.dispatch(Tick(self.config.clock()))

    # -- links -----------------------------------------------------------------------
    def _open_link(self, effect: OpenLink) -> Event | None:
        parse_endpoint(effect.endpoint)
        old = self.sockets.pop(effect.sid, None)
        if old is not None:
            self.reactor.remove_reader(old)
            old.close(0)
        sock = curve_client_socket(self.context, zmq.DEALER, self.identity.keypair, effect.key,
                                   self.config.max_msg_size)
        sock.setsockopt(zmq.ROUTING_ID, b"n" + uuid.uuid4().bytes)  # the same route after reconnects
        sock.connect(effect.endpoint)
        self.sockets[effect.sid] = sock
        self.reactor.add_reader(sock, lambda: self._on_link(effect.sid, sock))
        if effect.watch:
            self._watch_link(effect.sid, sock)
        return LinkOpened(effect.sid, address_toward(effect.endpoint))

    def _watch_link(self, sid: str, sock: zmq.Socket[bytes]) -> None:
        """Until its handshake succeeds, say at once if a link cannot work (LinkFailed)."""
        def failed(reason: str) -> None:
            self.watches.pop(sid, None)
            self.dispatch(LinkFailed(sid, reason))

        watch = HandshakeWatch.start(self.reactor, sock, _LINK_FAILURES, failed)
        if watch is not None:
            self.watches[sid] = watch

    def _unwatch(self, sid: str) -> None:
        watch = self.watches.pop(sid, None)
        if watch is not None:
            watch.stop()

    def _close_link(self, effect: CloseLink) -> None:
        self._unwatch(effect.sid)
        self._send_results_to(effect.sid)  # (spooled too: sent again if they do not get there)
        sock = self.sockets.pop(effect.sid, None)
        if sock is not None:
            self.reactor.remove_reader(sock)
            sock.close(effect.linger)

    def _on_link(self, sid: str, sock: zmq.Socket[bytes]) -> None:
        for _ in range(1000):
            if self.sockets.get(sid) is not sock:
                return  # closed (or replaced) while we read
            try:
                msg = recv_message(sock)
            except zmq.Again:
                return
            except ProtocolError as exc:
                self.log.warning("event=bad_message scheduler=%s reason=%r", sid, exc.reason)
                continue
            self.dispatch(LinkMessage(sid, msg))

    def _send(self, effect: Send) -> None:
        if effect.msg.type == "JOB_RESULT":  # held to the end of the turn, to go with others
            self._results.setdefault(effect.sid, []).append(effect.msg)
            return
        if effect.sid in self._results:
            self._send_results_to(effect.sid)  # nothing overtakes a result
        self._send_now(effect.sid, effect.msg)

    def _send_results(self) -> None:
        for sid in list(self._results):
            self._send_results_to(sid)

    def _send_results_to(self, sid: str) -> None:
        results = self._results.pop(sid, [])
        link = self.core.links.get(sid)
        for msg in merge_results(results) if link is not None and link.batches else results:
            self._send_now(sid, msg)

    def _send_now(self, sid: str, msg: Message) -> None:
        sock = self.sockets.get(sid)
        if sock is None:
            return
        try:
            send_frames(sock, [b"", *encode(msg)])
        except (zmq.ZMQError, ProtocolError) as exc:
            self.log.debug("event=send_failed scheduler=%s type=%s error=%s", sid, msg.type, exc)

    def _heartbeat(self, effect: SendHeartbeat) -> None:
        self._send(Send(effect.sid, new_message("HEARTBEAT", {"avail": available_resources(self.prefix)})))

    # -- files -------------------------------------------------------------------------
    def _prepare_cluster(self, effect: PrepareCluster) -> Event:
        """The cluster's directory under <prefix>/clusters (apart from the node's own files)."""
        try:
            base = self.prefix / "clusters"
            base.mkdir(mode=0o700, exist_ok=True)
            try:
                directory = safe_join(base, effect.dest_path)
            except ProtocolError:
                raise ProtocolError(f"dest_path {effect.dest_path!r} is refused: it must be a "
                                    f"relative path that stays inside the node's directory "
                                    f"(no '..', no absolute path, no link)") from None
            directory.mkdir(parents=True, exist_ok=True)
            for name, mode, data in effect.files:
                write_file(directory, name, memoryview(data), mode, self.config.max_file_size)
        except ProtocolError as exc:
            return ClusterPrepareFailed(effect.cluster_id, exc.reason)
        except OSError as exc:
            return ClusterPrepareFailed(effect.cluster_id,
                                        f"node {self.name} cannot write the cluster's files: {exc}")
        return ClusterPrepared(effect.cluster_id, str(directory))

    def _remove_dir(self, effect: RemoveClusterDir) -> None:
        shutil.rmtree(effect.directory, ignore_errors=True)

    def _write_file(self, effect: WriteClusterFile) -> Event:
        try:
            data = memoryview(effect.data)
            write_file(Path(effect.directory), effect.name, data, effect.mode, self.config.max_file_size)
        except ProtocolError as exc:
            self.log.warning("event=file_refused name=%r reason=%r", effect.name, exc.reason)
            return FileWritten(effect.sid, effect.request, code=exc.code, reason=exc.reason)
        except OSError as exc:
            return FileWritten(effect.sid, effect.request, code=BAD_REQUEST,
                               reason=f"cannot write {effect.name!r}: {exc.strerror}")
        return FileWritten(effect.sid, effect.request, size=data.nbytes)

    # -- workers -----------------------------------------------------------------------
    def _spawn(self, effect: SpawnWorker) -> Event | None:
        try:
            parent, child = _MP.Pipe()
            claims = Claims(_MP)
            process = _MP.Process(target=start_worker, daemon=False,
                                  name=f"gridlib-worker-{effect.cluster_id[:8]}",
                                  args=(child, effect.directory, self.name, self.core.facts.ip_addr,
                                        claims))
            process.start()
        except Exception as exc:  # (a broken forkserver raises whatever its preload raised)
            return WorkerExited(effect.wid, None,
                                f"cannot start a worker process ({type(exc).__name__}: {exc}); "
                                f"what went wrong is in the node's log")
        child.close()
        channel = pipes.Channel.from_fd(parent.fileno())
        parent.close()
        entry = _Process(process, channel, channel.fileno(), claims)
        self.processes[effect.wid] = entry
        self.reactor.add_reader(entry.fd, lambda: self._on_worker(effect.wid))
        try:
            channel.send("setup", effect.setup, [effect.blob])
        except OSError:
            pass  # it died at once: its pipe's EOF reports it
        return None

    def _worker_send(self, effect: WorkerSend) -> None:
        if effect.wid in self.processes:
            self._to_workers.setdefault(effect.wid, []).append((effect.kind, effect.fields, effect.frames))

    def _write_workers(self) -> None:
        if not self._to_workers:
            return
        if self.core.quiet_for(time.monotonic()) > FREEZE_GAP:
            # frozen (SIGSTOP, a suspended VM) between handing these jobs over and writing
            # them: the core fences first -- its scheduler may have given the jobs ahead to
            # another node -- so the worker skips the ones taken back
            self.dispatch(Tick())
        pending, self._to_workers = self._to_workers, {}
        for wid, records in pending.items():
            entry = self.processes.get(wid)
            if entry is None:
                continue
            try:
                entry.conn.send_many(records)
            except OSError:
                pass  # the worker died; its pipe's EOF reports it

    def _revoke_ahead(self, effect: RevokeAhead) -> Event | None:
        entry = self.processes.get(effect.wid)
        if entry is None:
            return None  # it exited: the core puts its jobs ahead back then
        claimed, had = entry.claims.revoke(effect.upto, effect.keep)
        return AheadRevoked(effect.wid, claimed, effect.upto, effect.why, stuck=not had)

    def _on_worker(self, wid: int) -> None:
        """Every whole record the worker has written (one read for all of them)."""
        entry = self.processes.get(wid)
        if entry is None:
            return
        try:
            records = entry.conn.read()
        except (EOFError, OSError):
            self.dispatch(self._worker_gone(wid, entry))
            return
        for kind, fields, frames in records:
            if kind == "ready":
                self.dispatch(WorkerReady(wid))
            elif kind == "setup_failed":
                self.dispatch(WorkerSetupFailed(wid, str(fields.get("reason"))))
            elif kind == "result":
                self.dispatch(WorkerResult(wid, fields, frames))
            elif kind in ("provisional", "file"):
                self.dispatch(WorkerReport(wid, kind, fields, frames))

    def _worker_gone(self, wid: int, entry: _Process) -> Event:
        del self.processes[wid]
        self.reactor.remove_reader(entry.fd)
        entry.conn.close()
        entry.process.join(5)
        try:  # what its jobs left running in its process group goes with it (the group id
            os.killpg(entry.process.pid, signal.SIGKILL)  # is not reused while it has members)
        except (ProcessLookupError, PermissionError, TypeError):
            pass
        return WorkerExited(wid, entry.process.exitcode)

    def _kill(self, effect: KillWorker) -> None:
        entry = self.processes.get(effect.wid)
        if entry is not None:
            self._kill_process(entry)

    # -- the spool -----------------------------------------------------------------------
    def _spool_hold(self, e: SpoolHold) -> Event | None:
        try:
            self.spool.hold(e.cluster_id, e.job_id, e.fields, e.frames, e.labels, time.monotonic())
        except OSError as exc:  # (holding past its memory bound writes the oldest)
            return SpoolFailed(str(exc))
        return None

    def _spool_put(self, e: SpoolPut) -> Event | None:
        try:
            self.spool.put(e.cluster_id, e.job_id, e.fields, e.frames, e.labels)
        except OSError as exc:
            return SpoolFailed(str(exc))
        return None

    def _spool_write_held(self, e: SpoolWriteHeld) -> Event | None:
        try:
            self.spool.write_held(e.before)
        except OSError as exc:
            return SpoolFailed(str(exc))
        return None

    def _spool_ack(self, e: SpoolAck) -> None:
        self.spool.ack_many(e.job_ids)

    def _spool_drop(self, e: SpoolDropCluster) -> None:
        self.spool.drop_cluster(e.cluster_id)

    def _resend(self, e: ResendSpooled) -> None:
        for job_id in e.job_ids:
            result = self.spool.get(job_id)
            if result is None:
                continue
            try:
                frames = result.frames()
            except (OSError, ValueError) as exc:
                self.log.warning("event=spool_read_failed job=%s error=%s", job_id, exc)
                continue
            self._send(Send(e.sid, new_message("JOB_RESULT", result.fields, frames, result.labels)))

    # -- timers and stopping ---------------------------------------------------------------
    def _set_timer(self, e: SetTimer) -> None:
        old = self.timers.pop(e.key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self.timers.pop(e.key, None)
            self.dispatch(TimerFired(e.key))
        self.timers[e.key] = self.reactor.call_later(max(0.0, e.at - time.monotonic()), fire)

    def _cancel_timer(self, e: CancelTimer) -> None:
        timer = self.timers.pop(e.key, None)
        if timer is not None:
            timer.cancel()

    def _stop_node(self, e: StopNode) -> None:
        if self.stopped:
            return
        self.stopped = True
        for entry in list(self.processes.values()):  # (the core had them killed)
            self._kill_process(entry)
        for entry in self.processes.values():
            entry.process.join(5)
            self.reactor.remove_reader(entry.fd)
            entry.conn.close()
        self.processes.clear()
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        try:
            self.spool.close()  # what is held is written
        except OSError as exc:
            self.log.error("event=spool_write_failed error=%s", exc)
        for sid in list(self.sockets):
            self._close_link(CloseLink(sid, 0 if self.config.parent_pid else 100))
        clusters = self.prefix / "clusters"
        if e.remove_prefix:  # a client's private node: its files go with it
            shutil.rmtree(self.prefix, ignore_errors=True)
        else:
            for cluster in [*self.core.jobs.clusters.values(), *self.core.jobs.retired.values()]:
                if cluster.cleanup and cluster.directory and Path(cluster.directory).is_relative_to(clusters):
                    shutil.rmtree(cluster.directory, ignore_errors=True)
        if self.beacons is not None:
            self.beacons.close()
        self.reactor.stop()

    @staticmethod
    def _kill_process(entry: _Process) -> None:
        pid = entry.process.pid
        if pid is None or entry.process.exitcode is not None:
            return
        kill_tree(pid)  # what its job started in other sessions too, frozen then killed
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
