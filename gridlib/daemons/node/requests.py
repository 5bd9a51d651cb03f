"""What a node does with each message from a scheduler (docs/architecture.md §5).

:class:`SchedulerRequests` is part of the node's I/O-free core: ``NodeCore``
checks that a message comes over a link it knows and hands it here by type
(``MESSAGE_HANDLERS``); each handler changes the core's state and appends
effects (``core.out``), and a handler that raises ``ProtocolError`` gets the
scheduler an ERROR naming what was wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from gridlib.protocol.bodies import (
    Disconnect,
    Error,
    FilePut,
    JobAssign,
    JobCancel,
    JobsAssign,
    LookaheadOk,
    ResultAck,
    Setup,
    Teardown,
    Welcome,
)
from gridlib.protocol.codec import Message, error_reply, new_message
from gridlib.protocol.errors import ILLEGAL_STATE, NOT_FOUND, UNAUTHORIZED, ProtocolError

from .dialing import DialPolicy
from .events import Effect, SendHeartbeat, WriteClusterFile
from .jobs import Assignment, ClusterPhase, ClusterState, JobRunner
from .lifecycle import NodeLifecycle
from .links import Link
from .spool_index import SpoolIndex

__all__ = ["SchedulerRequests", "MESSAGE_HANDLERS", "RequestsHost"]


class _Facts(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def python(self) -> str: ...

    @property
    def protocol(self) -> str: ...


class RequestsHost(Protocol):
    """What the handlers use of the node's core (``NodeCore``)."""

    log: logging.Logger
    now: float
    out: list[Effect]
    links: dict[str, Link]
    jobs: JobRunner
    dialer: DialPolicy
    lifecycle: NodeLifecycle
    spooled: SpoolIndex
    wall: Callable[[], float]

    @property
    def facts(self) -> _Facts: ...

    def send(self, link: Link, msg: Message) -> None: ...

    def send_ready(self, link: Link, fresh: bool = False) -> None: ...

    def close_link(self, link: Link, reason: str, quiet: bool = False) -> None: ...

    def orphan(self, sid: str) -> None: ...

    def setup_answer(self, cluster: ClusterState) -> None: ...


class SchedulerRequests:
    """The handlers of a scheduler's messages, over the node's core."""

    def __init__(self, core: RequestsHost) -> None:
        self.core = core

    def on_welcome(self, link: Link, msg: Message) -> None:
        core = self.core
        if not link.welcomed:
            core.log.info("event=linked scheduler=%s endpoint=%s", link.sid, link.endpoint)
            core.jobs.forget_ahead(link.sid)  # a new registration: nothing granted yet
            core.dialer.registered(link.endpoint, core.now)
            link.last_beat = core.now  # the first heartbeat tells the scheduler our resources now
            core.out.append(SendHeartbeat(link.sid))
        link.welcomed = True
        link.backoff.reset()
        welcome = msg.as_(Welcome)
        link.interval = float(welcome.heartbeat)
        if welcome.lost_after is not None:
            link.lost_after = welcome.lost_after
        if welcome.max_msg_size is not None:
            link.max_msg_size = welcome.max_msg_size
        link.batches = bool(welcome.batches)  # results may travel together (JOBS_RESULT)
        link.lookahead = bool(welcome.lookahead)

    def on_lookahead_ok(self, link: Link, msg: Message) -> None:
        core = self.core
        ok = msg.as_(LookaheadOk)
        core.log.info("event=jobs_ahead cluster=%s depth=%d", ok.cluster_id, ok.depth)
        core.jobs.grant_ahead(ok.cluster_id, link.sid, int(ok.depth))

    def on_setup(self, link: Link, msg: Message) -> None:
        core = self.core
        setup = msg.as_(Setup)
        cluster_id = setup.cluster_id
        cluster = core.jobs.clusters.get(cluster_id)
        try:
            if cluster is not None:  # its scheduler reconnected, or asks again
                if cluster.owner != link.key:
                    raise ProtocolError("that cluster belongs to another scheduler key", UNAUTHORIZED)
                core.jobs.adopt(cluster, link.sid)
                cluster.answers_owed += 1
                if cluster.phase in (ClusterPhase.READY, ClusterPhase.FAILED):
                    core.setup_answer(cluster)
                return
            refusal = core.lifecycle.admit_cluster(cluster_id) or self._version_refusal(setup)
            if refusal:
                raise ProtocolError(refusal, ILLEGAL_STATE)
            files, blob = _setup_payload(msg, setup)
            core.jobs.setup(link.sid, link.key, setup, files, blob)
            core.lifecycle.cluster_added(cluster_id)
        except ProtocolError as exc:
            core.log.warning("event=setup_refused cluster=%s reason=%r", cluster_id, exc.reason)
            core.send(link, new_message("SETUP_FAIL", {"cluster_id": cluster_id, "reason": exc.reason}))

    def _version_refusal(self, setup: Setup) -> str | None:
        core = self.core
        theirs, ours = setup.python, core.facts.python
        if theirs and ours and theirs != ours:
            return (f"version mismatch: the client runs Python {theirs}, this node ({core.facts.name}) "
                    f"Python {ours}; code and data travel pickled, so the client and its nodes must "
                    f"run the same Python minor version (start the node with python{theirs}, or the "
                    f"client with python{ours})")
        theirs, ours = setup.protocol, core.facts.protocol
        if theirs and ours and theirs != ours:
            return (f"version mismatch: the client speaks gridlib protocol {theirs}, this node "
                    f"({core.facts.name}) {ours}; install the same gridlib version on both")
        return None

    def on_job_assign(self, link: Link, msg: Message) -> None:
        core = self.core
        assign = msg.as_(JobAssign)
        owner = core.jobs.clusters.get(assign.cluster_id)
        if owner is not None and owner.link != link.sid:
            raise ProtocolError("JOB_ASSIGN for another scheduler's cluster", UNAUTHORIZED)
        if not link.welcomed and owner is not None:
            # sent before the scheduler heard our new READY (we were frozen and fenced): it
            # has given this job to another node, or will ask what we hold -- not run here
            owner.dropped.append([assign.job_id, assign.attempt])
            return
        core.jobs.assign(Assignment(link.sid, assign.cluster_id, assign.job_id, assign.attempt,
                                    float(assign.timeout) if assign.timeout else None, list(msg.frames),
                                    label=assign.label))

    def on_jobs_assign(self, link: Link, msg: Message) -> None:
        """Several JOB_ASSIGNs in one message: each handled as if it had come alone (a bad one
        is answered alone, the others run)."""
        core = self.core
        entries = msg.as_(JobsAssign).jobs
        if not all(_entry_ok(e) for e in entries) or sum(e[4] for e in entries) != len(msg.frames):
            raise ProtocolError("JOBS_ASSIGN: each job is [cluster_id, job_id, attempt, timeout, "
                                "frames] and the frames add up to the payload")
        at = 0
        for cluster_id, job_id, attempt, timeout, count, *rest in entries:
            label = rest[0] if rest else None
            fields = {"cluster_id": cluster_id, "job_id": job_id, "attempt": attempt, "timeout": timeout,
                      "label": label}
            one = Message("JOB_ASSIGN", fields, msg.labels[at:at + count], msg.frames[at:at + count],
                          msg.mid, body=JobAssign(cluster_id, job_id, attempt, timeout, label))  # checked above
            at += count
            try:
                self.on_job_assign(link, one)
            except ProtocolError as exc:
                core.log.warning("event=bad_message scheduler=%s type=JOB_ASSIGN reason=%r",
                                 link.sid, exc.reason)
                core.send(link, error_reply(one, exc.code, exc.reason))

    def on_job_cancel(self, link: Link, msg: Message) -> None:
        core = self.core
        cancel = msg.as_(JobCancel)
        attempts = cancel.attempts or []
        for i, job_id in enumerate(cancel.job_ids):
            if core.jobs.cancel(job_id, link.sid):
                continue
            attempt = attempts[i] if i < len(attempts) else None
            if attempt is not None and job_id not in core.spooled:
                # not here (never arrived, or ended and acknowledged): the canceller still
                # gets its one answer; a result already sent stands (it went first)
                core.send(link, new_message("JOB_RESULT", {
                    "job_id": job_id, "attempt": attempt, "status": "cancelled",
                    "end_time": core.wall(), "reason": "the job was not on the node"}))

    def on_result_ack(self, link: Link, msg: Message) -> None:
        core = self.core
        acked = [job_id for job_id in msg.as_(ResultAck).job_ids if self._may_ack(job_id, link)]
        core.spooled.acked(acked)
        core.lifecycle.poke()

    def _may_ack(self, job_id: str, link: Link) -> bool:
        """Only the scheduler that owns a result's cluster may release it."""
        core = self.core
        entry = core.spooled.get(job_id)
        if entry is None:
            return False
        cluster = core.jobs.clusters.get(entry.cluster_id)
        return cluster is None or cluster.link == link.sid

    def on_file_put(self, link: Link, msg: Message) -> None:
        """A file for a cluster's directory (``cluster.send_file``): written by the shell, answered."""
        core = self.core
        put = msg.as_(FilePut)
        cluster = core.jobs.clusters.get(put.cluster_id)
        if cluster is None or cluster.link != link.sid or len(msg.frames) != 1 or not cluster.directory:
            core.send(link, error_reply(msg, NOT_FOUND, "no such cluster on this node"))
            return
        mode = 0o600 if put.mode is None else put.mode
        core.out.append(WriteClusterFile(link.sid, msg, cluster.directory, put.name, mode, msg.frames[0]))

    def on_teardown(self, link: Link, msg: Message) -> None:
        core = self.core
        teardown = msg.as_(Teardown)
        cluster = core.jobs.clusters.get(teardown.cluster_id)
        if cluster is not None and cluster.link == link.sid:
            resetup = teardown.keep_files is True  # set up again next: keep its files
            core.jobs.teardown(cluster.cluster_id, keep_files=resetup)
            if not resetup:  # (a resetup's unacknowledged results are still acked later)
                core.spooled.drop_cluster(cluster.cluster_id)

    def on_error(self, link: Link, msg: Message) -> None:
        core = self.core
        error = msg.as_(Error)
        if error.code == ILLEGAL_STATE and link.welcomed:
            # the scheduler no longer knows us (it declared us lost, or restarted): register
            # again -- unless another link already serves that endpoint (a restarted scheduler
            # with a new id): then this one is stale
            if any(o is not link and o.welcomed and o.endpoint == link.endpoint
                   for o in core.links.values()):
                core.close_link(link, "superseded by a newer link to the same endpoint")
                return
            core.log.warning("event=reregister scheduler=%s reason=%r", link.sid, error.reason)
            link.welcomed = False
            link.backoff.reset()
            core.send_ready(link, fresh=True)
            return
        core.log.warning("event=scheduler_error scheduler=%s code=%s reason=%r",
                         link.sid, error.code, error.reason)

    def on_disconnect(self, link: Link, msg: Message) -> None:
        """The scheduler said goodbye (its client closed): nothing is wrong."""
        core = self.core
        reason = msg.as_(Disconnect).reason
        if link.dial_out:
            link.welcomed = False  # it may come back: keep dialing
            link.next_ready = core.now + link.backoff.next()
            core.orphan(link.sid)
            core.log.info("event=scheduler_left scheduler=%s reason=%r", link.sid, reason)
            return
        core.close_link(link, reason or "the scheduler closed", quiet=True)

    def on_heartbeat(self, link: Link, msg: Message) -> None:
        """Its arrival is the news (``link.last_heard``, set for every message)."""


def _entry_ok(entry: Any) -> bool:
    """One JOBS_ASSIGN entry: [cluster_id, job_id, attempt, timeout or nil, frames, label or nil]
    (the label may be left out)."""
    return (isinstance(entry, list) and len(entry) in (5, 6) and isinstance(entry[0], str)
            and isinstance(entry[1], str) and type(entry[2]) is int
            and (entry[3] is None or (isinstance(entry[3], (int, float)) and not isinstance(entry[3], bool)))
            and type(entry[4]) is int and entry[4] >= 0
            and (len(entry) == 5 or entry[5] is None or isinstance(entry[5], str)))


def _setup_payload(msg: Message, setup: Setup) -> tuple[list[tuple[str, int, Any]], bytes]:
    """The computation and the files of a SETUP, paired strictly: one file entry per file frame."""
    specs = setup.files or []
    blob: bytes | None = None
    datas = []
    for label, frame in zip(msg.labels, msg.frames, strict=True):
        if label == "computation" and blob is None:
            blob = bytes(memoryview(frame))
        elif label == "file":
            datas.append(frame)
        else:
            raise ProtocolError(f"SETUP: unexpected frame {label!r}")
    if blob is None or len(datas) != len(specs):
        raise ProtocolError("SETUP: one computation frame and one file entry per file frame")
    files = []
    for spec, data in zip(specs, datas, strict=True):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ProtocolError("SETUP: a file entry needs a name")
        mode = spec.get("mode")
        files.append((spec["name"], mode if isinstance(mode, int) else 0o600, data))
    return files, blob


MESSAGE_HANDLERS: dict[str, Callable[[SchedulerRequests, Link, Message], None]] = {
    "WELCOME": SchedulerRequests.on_welcome,
    "SETUP": SchedulerRequests.on_setup,
    "JOB_ASSIGN": SchedulerRequests.on_job_assign,
    "JOBS_ASSIGN": SchedulerRequests.on_jobs_assign,
    "JOB_CANCEL": SchedulerRequests.on_job_cancel,
    "RESULT_ACK": SchedulerRequests.on_result_ack,
    "FILE_PUT": SchedulerRequests.on_file_put,
    "TEARDOWN": SchedulerRequests.on_teardown,
    "ERROR": SchedulerRequests.on_error,
    "DISCONNECT": SchedulerRequests.on_disconnect,
    "HEARTBEAT": SchedulerRequests.on_heartbeat,
    "LOOKAHEAD_OK": SchedulerRequests.on_lookahead_ok,
}
