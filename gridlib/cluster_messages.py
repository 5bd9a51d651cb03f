"""What a cluster does with the scheduler's messages (docs/architecture.md §7).

Each message is checked and, for a result, acknowledged on the I/O thread
(``_on_*``), queued, and applied to its job or node once a loop turn
(``_apply_*``): on the I/O thread itself when no user callback is set and the
message is light, else on the delivery thread, where user callbacks run in
order.  ``JobCluster`` (cluster.py) inherits these, as it does ``NodeControl``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gridlib.daemons.runtime.payload import unpack_value
from gridlib.delivery import Delivery
from gridlib.diagnosis import describe_no_nodes
from gridlib.job import Job, JobStatus, run_callback
from gridlib.job_results import fill_result
from gridlib.journal import Journal
from gridlib.local_node import LocalNode
from gridlib.node_control import NodeControl
from gridlib.nodes import Node
from gridlib.protocol.bodies import ClusterEvent, Error, JobEvent, JobFile, JobResult, NodeEvent
from gridlib.protocol.codec import Message
from gridlib.protocol.errors import ProtocolError, SerializationError
from gridlib.protocol.paths import write_file
from gridlib.protocol.result_batches import payload_size

__all__ = ["SchedulerMessages"]

log = logging.getLogger("gridlib.client")


def _light(msg: Message) -> bool:
    """A message cheap to apply on the I/O thread: a result of < 64 KiB, a running event."""
    if msg.type == "JOB_EVENT":
        return msg.fields.get("event") == "running"
    return msg.type == "JOB_RESULT" and payload_size(msg) < 65536


class SchedulerMessages(NodeControl):
    """The scheduler's messages to a cluster: checked on the I/O thread, then applied."""

    # provided by JobCluster
    job_status: Callable[[Job], Any] | None
    cluster_status: Callable[..., Any] | None
    duplicates: int
    _jobs: dict[str, Job]
    _cond: threading.Condition
    _unfinished: int
    _kind: str
    _journal: Journal | None
    _unjournaled: list[Message]
    _inbox: list[Message]
    _msg_limits: dict[str, int]
    _local_node: LocalNode | None
    _identity: Any
    _no_nodes: str
    _delivery: Delivery

    # -- messages from the scheduler (I/O thread) ----------------------------------
    def _on_message(self, msg: Message) -> None:
        """I/O thread: a message from the scheduler, checked, then queued for the delivery thread."""
        handler = _ON_MESSAGE.get(msg.type)
        if handler is None:  # OK to a posted request, HEARTBEAT ...: nothing to do
            return
        try:
            handler(self, msg)
        except ProtocolError as exc:
            log.warning("event=bad_message type=%s reason=%r", msg.type, exc.reason)

    def _on_result(self, msg: Message) -> None:
        job_id = msg.as_(JobResult).job_id
        if self._journal is not None:
            self._unjournaled.append(msg)  # journaled before the ack goes (before_ack)
        self._conn.ack(job_id)
        self._inbox.append(msg)

    def _on_job_report(self, msg: Message) -> None:
        msg.as_(JobEvent if msg.type == "JOB_EVENT" else JobFile)  # checked here, once
        self._inbox.append(msg)

    def _on_node_event(self, msg: Message) -> None:
        event = msg.as_(NodeEvent)
        limit, node_id = event.node.get("max_msg_size"), str(event.node.get("node_id"))
        if isinstance(limit, int) and event.event in ("discovered", "initialized"):
            self._msg_limits[node_id] = limit
        elif event.event == "closed":
            self._msg_limits.pop(node_id, None)
        self._inbox.append(msg)

    def _on_error(self, msg: Message) -> None:
        error = msg.as_(Error)
        log.warning("event=scheduler_error code=%s reason=%r", error.code, error.reason)

    def _explain_waiting(self, msg: Message) -> None:
        """I/O thread: the scheduler says no node can run our jobs; tell the user why (once
        now, again every half minute while it lasts) in one WARNING."""
        event = msg.as_(ClusterEvent)
        announcer = getattr(self._conn.scheduler, "announcer", None)
        private = self._local_node is not None
        text = describe_no_nodes(
            float(event.waited or 0), event.queued or 0,
            dict(announcer.reach) if announcer is not None else None,
            self._identity.keypair.public.decode() if self._identity else "",
            scheduler=self._scheduler_name(), known_nodes=event.nodes or 0,
            rejected=event.rejected or 0, private_node=private)
        self._no_nodes = text
        log.warning("event=no_node_can_run cluster=%s %s", self.cluster_id[:8], text)

    def _scheduler_name(self) -> str | None:
        """A shared scheduler's address; None for the scheduler embedded in this client."""
        return None

    def _post_inbox(self) -> None:
        """I/O thread, once a loop turn: hand this turn's messages to the delivery thread at once.

        Without callbacks there is no user code to keep off this thread: small results
        (and running events) are applied here, saving a thread hand-off per turn -- as
        long as the delivery thread has nothing earlier still to apply.
        """
        if not self._inbox:
            return
        batch, self._inbox = self._inbox, []
        if (self.job_status is None and self.cluster_status is None and self._delivery.idle()
                and all(_light(msg) for msg in batch)):
            self._apply_all(batch)
        else:
            self._delivery.post(lambda: self._apply_all(batch))

    def _apply_all(self, batch: list[Message]) -> None:
        for msg in batch:
            try:
                self._apply(msg)
            except Exception:
                log.exception("event=apply_failed type=%s", msg.type)

    def _apply(self, msg: Message) -> None:
        _APPLY[msg.type](self, msg)

    # -- applying them (delivery thread) ---------------------------------------------
    def _notify(self, status: Any, node: Node | None, job: Job | None) -> None:
        if self.cluster_status is not None:
            try:
                self.cluster_status(status, node, job)
            except Exception:
                log.exception("event=cluster_status_callback_failed")

    def _apply_result(self, msg: Message) -> None:
        job = self._jobs.get(msg.as_(JobResult).job_id)
        if job is None or job.finished:
            self.duplicates += 1
            return
        try:
            fill_result(job, msg, self._kind, self._no_nodes)
        except Exception as err:  # a malformed result must not leave the job hanging
            job.status = JobStatus.Terminated
            job.exception = f"ProtocolError: malformed result from the node: {err}"
        node = self._node_names.get(job.node) if job.node else None
        if node is not None and job.start_time and job.end_time:
            node.jobs_done += 1
            node.cpu_time += max(0.0, job.end_time - job.start_time)
            node.busy = max(0, node.busy - 1)
        self._complete(job)
        self._notify(job.status, node, job)

    def _restore(self, job: Job, stored: dict[str, Any]) -> None:
        """Give a recovered job the result the journal holds for it."""
        with self._cond:
            self._jobs[job.uid] = job
            self._unfinished += 1
        fields = {**stored["fields"], "job_id": job.uid}
        self._apply_result(Message("JOB_RESULT", fields, list(stored["labels"]), list(stored["frames"])))

    def _journal_results(self) -> None:
        """I/O thread, once a loop turn: make this turn's results durable before acking them."""
        if self._journal is not None and self._unjournaled:
            batch, self._unjournaled = self._unjournaled, []
            self._journal.add_results((str(m.fields["job_id"]), m.fields, m.labels, m.frames)
                                      for m in batch)

    def _complete(self, job: Job) -> None:
        with self._cond:
            later = job._set_done()
            self._unfinished -= 1
            self._cond.notify_all()
        self._jobs.pop(job.uid, None)
        if later:  # user code: on the delivery thread, in order, never on the I/O thread
            self._delivery.post(functools.partial(_run_callbacks, later, job))
        if self.job_status is not None:
            try:
                self.job_status(job)
            except Exception:
                log.exception("event=job_status_callback_failed job=%s", job.id)

    def _apply_event(self, msg: Message) -> None:
        event = msg.as_(JobEvent)
        job = self._jobs.get(event.job_id)
        if job is None or job.finished:
            return
        if event.event == "running":
            job.status = JobStatus.Running
            job.start_time = event.start_time or time.time()
            job.node, job.ip_addr = event.node, event.ip_addr
            node = self._node_names.get(job.node) if job.node else None
            if node is not None:
                node.busy += 1
            if job._on_running is not None:
                job._on_running(job)
            self._notify(JobStatus.Running, node, job)
        elif event.event == "provisional":
            try:
                job.result = unpack_value(msg.frames)
            except Exception as err:
                log.warning("event=bad_provisional_result job=%s error=%s", job.id, err)
                return
            job.status = JobStatus.ProvisionalResult
            if self.job_status is not None:
                try:
                    self.job_status(job)
                except Exception:
                    log.exception("event=job_status_callback_failed job=%s", job.id)
            self._notify(JobStatus.ProvisionalResult, self._node_names.get(job.node or ""), job)

    def _apply_file(self, msg: Message) -> None:
        path = msg.as_(JobFile).path
        try:
            data = b"".join(bytes(memoryview(f)) for f in msg.frames)
            write_file(Path.cwd(), path, data, 0o644, 1 << 40)
        except (ProtocolError, OSError) as exc:
            log.warning("event=file_refused path=%r reason=%s", path, exc)
        except SerializationError:
            raise


def _run_callbacks(callbacks: Sequence[Callable[[Job], None]], job: Job) -> None:
    for fn in callbacks:
        run_callback(fn, job)


# one dispatch table per thread: what the I/O thread does with each message from the scheduler
# (check it, acknowledge a result, queue it), then what the delivery thread does with it
_ON_MESSAGE: dict[str, Callable[[SchedulerMessages, Message], None]] = {
    "JOB_RESULT": SchedulerMessages._on_result,
    "JOB_EVENT": SchedulerMessages._on_job_report,
    "JOB_FILE": SchedulerMessages._on_job_report,
    "NODE_EVENT": SchedulerMessages._on_node_event,
    "CLUSTER_EVENT": SchedulerMessages._explain_waiting,
    "ERROR": SchedulerMessages._on_error,
}

_APPLY: dict[str, Callable[[SchedulerMessages, Message], None]] = {
    "JOB_RESULT": SchedulerMessages._apply_result,
    "JOB_EVENT": SchedulerMessages._apply_event,
    "NODE_EVENT": SchedulerMessages._apply_node_event,
    "JOB_FILE": SchedulerMessages._apply_file,
}
