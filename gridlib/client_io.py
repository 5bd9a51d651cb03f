"""The client's I/O thread (docs/architecture.md §1, §7).

One thread owns every socket of a cluster, through its transport
(:mod:`gridlib.transports`): a DEALER to a scheduler daemon or, for a
``JobCluster``, the embedded scheduler itself on the same reactor, called
directly (messages pass as objects, no socket in between).  User threads hand it work through thread-safe
queues; submissions and acknowledgements are batched into one message per
loop turn.  Nothing slow runs here: results are handed to the delivery
thread still serialized.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from gridlib.protocol.codec import MAX_FRAMES, Message, new_message
from gridlib.protocol.errors import ConnectionLost, GridError
from gridlib.protocol.keys import Identity
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.reactor import Reactor
from gridlib.transports import Transport

__all__ = ["ClientConnection"]

_MAX_BATCH_JOBS = 512


class ClientConnection:
    """Sockets and the I/O thread of one cluster."""

    def __init__(
        self,
        identity: Identity,
        on_message: Callable[[Message], None],
        transport: Transport,
        liveness: LivenessPolicy | None = None,
        log: logging.Logger | None = None,
        before_ack: Callable[[], None] | None = None,
        resend_submits: bool = False,
    ) -> None:
        self.identity, self.on_message, self.transport = identity, on_message, transport
        self.policy = liveness or LivenessPolicy()
        self.before_ack = before_ack  # e.g. journal this turn's results first
        # submissions the scheduler has not acknowledged yet (a TCP scheduler may restart):
        # message id -> (when sent, the message); sent again until acknowledged
        self.resend_submits = resend_submits
        self._unconfirmed: dict[bytes, tuple[float, Message]] = {}
        self.log = log or logging.getLogger("gridlib.client")
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.reactor = Reactor(self.log)
        self._pending: dict[bytes, Future[Message]] = {}
        self._submits: deque[tuple[str, dict[str, Any], list[Any]]] = deque()
        self._acks: list[str] = []
        self._wake_lock = threading.Lock()
        self._wake_posted = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gridlib-io", daemon=True)

    # -- life cycle -----------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConnectionLost("the client I/O thread did not start")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            self._open_sockets()
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.reactor.run()
        finally:
            self._close_sockets()

    @property
    def scheduler(self) -> Any:
        """The embedded ``SchedulerService`` (None when the scheduler is a daemon)."""
        return self.transport.scheduler

    def _open_sockets(self) -> None:
        self.transport.open(self.reactor, self.context, self.identity, self._receive, self.log)
        self.reactor.after_turn.append(self._flush_acks)
        # any message counts as a heartbeat; an idle client still says it is alive
        self.reactor.call_every(self.policy.interval, self._beat)

    def _beat(self) -> None:
        self._send(new_message("HEARTBEAT"))
        late = time.monotonic() - self.policy.interval * 5
        for mid, (sent, msg) in list(self._unconfirmed.items()):
            if sent <= late:  # the scheduler may have restarted: job ids make this idempotent
                del self._unconfirmed[mid]
                self._send_submit_message(msg)

    def _close_sockets(self) -> None:
        self.transport.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("the cluster was closed"))
        self.reactor.close()
        self.context.destroy(linger=0)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.reactor.stop()
            self._thread.join(timeout)

    # -- requests from user threads ---------------------------------------------
    def request(self, msg: Message, timeout: float = 30.0) -> Message:
        """Send ``msg`` and wait for its reply (``ERROR`` replies raise)."""
        future: Future[Message] = Future()

        def send() -> None:
            self._pending[msg.mid] = future
            self._send(msg)

        self.reactor.call_soon_threadsafe(send)
        try:
            answer = future.result(timeout)
        except TimeoutError:
            raise ConnectionLost(f"no answer to {msg.type} within {timeout} s") from None
        if answer.type == "ERROR":
            raise GridError(f"{msg.type} refused: {answer.get('reason')} ({answer.get('code')})")
        return answer

    def fail_requests(self, error: BaseException) -> None:
        """I/O thread: every request waiting for an answer ends with ``error`` now."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def post(self, msg: Message) -> None:
        """Send ``msg`` from any thread, without waiting."""
        self.reactor.call_soon_threadsafe(lambda: self._send(msg))

    def submit(self, cluster_id: str, spec: dict[str, Any], frames: list[Any]) -> None:
        """Queue one job; jobs queued in the same loop turn travel in one message."""
        self._submits.append((cluster_id, spec, frames))
        with self._wake_lock:
            if self._wake_posted:
                return
            self._wake_posted = True
        self.reactor.call_soon_threadsafe(self._flush_submits)

    def call(self, fn: Callable[[], None]) -> None:
        self.reactor.call_soon_threadsafe(fn)

    # -- I/O thread ---------------------------------------------------------------
    def ack(self, job_uid: str) -> None:
        """Acknowledge a result (I/O thread only; sent at the end of the loop turn)."""
        self._acks.append(job_uid)

    def _flush_submits(self) -> None:
        with self._wake_lock:
            self._wake_posted = False
        batches: dict[str, tuple[list[dict[str, Any]], list[Any], list[str]]] = {}
        while self._submits:
            cluster_id, spec, frames = self._submits.popleft()
            specs, all_frames, labels = batches.setdefault(cluster_id, ([], [], []))
            if specs and (len(specs) >= _MAX_BATCH_JOBS or len(all_frames) + len(frames) > MAX_FRAMES):
                self._send_submit(cluster_id, specs, all_frames, labels)
                specs, all_frames, labels = batches[cluster_id] = ([], [], [])
            specs.append(spec)
            all_frames.extend(frames)
            labels.extend(["args"] * len(frames))
        for cluster_id, (specs, all_frames, labels) in batches.items():
            if specs:
                self._send_submit(cluster_id, specs, all_frames, labels)

    def _send_submit(self, cluster_id: str, specs: list[dict[str, Any]], frames: list[Any],
                     labels: list[str]) -> None:
        self._send_submit_message(new_message("JOB_SUBMIT", {"cluster_id": cluster_id, "jobs": specs},
                                              frames, labels))

    def _send_submit_message(self, msg: Message) -> None:
        if self.resend_submits:
            fresh = new_message(msg.type, msg.fields, msg.frames, msg.labels)
            self._unconfirmed[fresh.mid] = (time.monotonic(), fresh)
            msg = fresh
        self._send(msg)

    def _flush_acks(self) -> None:
        if self._acks:
            if self.before_ack is not None:
                self.before_ack()
            acks, self._acks = self._acks, []
            self._send(new_message("RESULT_ACK", {"job_ids": acks}))

    def _send(self, msg: Message) -> None:
        self.transport.send(msg)

    def _receive(self, msg: Message) -> None:
        """One message from the scheduler (I/O thread)."""
        if msg.ref and self._unconfirmed.pop(msg.ref, None) is not None:
            if msg.type == "ERROR":
                self.log.warning("event=submit_refused code=%s reason=%r", msg.get("code"),
                                 msg.get("reason"))
            return
        future = self._pending.pop(msg.ref, None) if msg.ref else None
        if future is not None:
            future.set_result(msg)
            return
        try:
            self.on_message(msg)
        except Exception:
            self.log.exception("event=message_handler_failed type=%s", msg.type)
