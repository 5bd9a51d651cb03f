"""The scheduler's pure state machine (docs/architecture.md §1, §2).

One implementation serves the scheduler embedded in a ``JobCluster`` and the
``gridlib scheduler`` daemon.  Every entry point takes the decoded message
and the current time and returns the messages to send; there is no socket
and no zmq here, so it is unit-tested with a fake clock.  Payload frames
are carried through untouched.  Each handler reads its message through the
message's struct (``msg.as_(JobResult)``, :mod:`gridlib.protocol.bodies`);
a message whose struct check fails is a bad message like any other: its
sender gets ``ERROR``.

:class:`SchedulerCore` is the one public face.  It builds the store
(:class:`~.state.SchedulerState`) and the parts that work on it, each passed
the store and the other parts it calls, and routes every message through
one table of handlers::

    SchedulerState   records, outbox, shared helpers          (state.py)
    Allocation       offers, NODE_ALLOCATE/CONTROL, FILE_PUT  (allocation.py)   store
    Dispatch         credit, candidates, JOB_ASSIGN           (dispatch.py)     store
    StatusReports    snapshot(), STATUS                       (status.py)       store
    Faults           node lost, reconcile, recover, adoption  (faults.py)       store, Allocation
    Waiting          jobs no node can run                     (waiting.py)      store, Faults
    ClientRequests   HELLO ... RESULT_ACK, resends, timeouts  (client_requests.py)
                                                              store, Allocation, Faults, Waiting
    NodeReports      READY ... JOB_RESULT                     (node_reports.py)
                                                              store, Allocation, Faults, Waiting, Dispatch
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE, Message, error_reply, new_message
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.liveness import Liveness, LivenessPolicy

from .allocation import Allocation
from .client_requests import ClientRequests
from .dispatch import PREFETCH_PER_CPU, PREFETCH_WORK, Dispatch
from .faults import Faults
from .node_reports import NodeReports
from .records import Change, ClientRecord, ClusterRecord, JobRecord, NodeRecord, Route
from .state import CLIENT, NODE, Peer, SchedulerOptions, SchedulerState, Send
from .status import StatusReports
from .waiting import Waiting

__all__ = ["Peer", "Send", "SchedulerCore", "CLIENT", "NODE", "PREFETCH_WORK", "PREFETCH_PER_CPU"]

Handler = Callable[[Peer, Message, float], None]


class SchedulerCore:
    """Jobs, clusters and nodes; least-load dispatch with credit."""

    def __init__(
        self,
        scheduler_id: str,
        liveness: LivenessPolicy | None = None,
        prefetch: int = 1,
        log: logging.Logger | None = None,
        options: SchedulerOptions | None = None,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
    ) -> None:
        self.store = store = SchedulerState(scheduler_id, liveness, log, options, max_msg_size)
        self.allocation = allocation = Allocation(store)
        self.dispatcher = dispatcher = Dispatch(store, prefetch)
        self.status = status = StatusReports(store)
        self.faults = faults = Faults(store, allocation)
        self.waiting = waiting = Waiting(store, faults)
        self.client_requests = clients = ClientRequests(store, allocation, faults, waiting)
        self.node_reports = nodes = NodeReports(store, allocation, faults, waiting, dispatcher)
        # (who sent it, message type) -> its handler
        self.handlers: dict[tuple[str, str], Handler] = {
            (CLIENT, "HELLO"): clients.handle_hello,
            (CLIENT, "CLUSTER_OPEN"): clients.handle_cluster_open,
            (CLIENT, "JOB_SUBMIT"): clients.handle_job_submit,
            (CLIENT, "JOB_CANCEL"): clients.handle_job_cancel,
            (CLIENT, "RESULT_ACK"): clients.handle_result_ack,
            (CLIENT, "CLUSTER_CLOSE"): clients.handle_cluster_close,
            (CLIENT, "STATUS"): status.handle_status,
            (CLIENT, "HEARTBEAT"): clients.handle_heartbeat,
            (CLIENT, "DISCONNECT"): clients.handle_disconnect,
            (CLIENT, "NODE_ALLOCATE"): allocation.handle_node_allocate,
            (CLIENT, "NODE_CONTROL"): allocation.handle_node_control,
            (CLIENT, "FILE_PUT"): allocation.handle_file_put,
            (NODE, "OK"): allocation.handle_node_reply,
            (NODE, "ERROR"): allocation.handle_node_reply,
            (NODE, "READY"): nodes.handle_ready,
            (NODE, "SETUP_OK"): nodes.handle_setup_ok,
            (NODE, "SETUP_FAIL"): nodes.handle_setup_fail,
            (NODE, "NODE_ALERT"): nodes.handle_node_alert,
            (NODE, "JOB_STARTED"): nodes.handle_job_started,
            (NODE, "JOB_PROVISIONAL"): nodes.handle_job_provisional,
            (NODE, "JOB_FILE"): nodes.handle_job_file,
            (NODE, "JOB_RESULT"): nodes.handle_job_result,
            (NODE, "JOBS_RESULT"): nodes.handle_jobs_result,
            (NODE, "HEARTBEAT"): nodes.handle_heartbeat,
            (NODE, "LOOKAHEAD"): nodes.handle_lookahead,
            (NODE, "DISCONNECT"): nodes.handle_disconnect,
            (NODE, "STATUS"): status.handle_status,
        }

    # -- entry points ---------------------------------------------------------------
    def handle(self, peer: Peer, msg: Message, now: float, flush: bool = True) -> list[Send]:
        """Handle one message; returns (and clears) the messages to send.

        With ``flush=False`` the messages stay queued until :meth:`flush`, so a
        shell can handle a batch of messages and dispatch once.
        """
        store = self.store
        store.now = now
        handler = self.handlers.get((peer.kind, msg.type))
        try:
            if handler is None:
                raise ProtocolError(f"unexpected message {msg.type} from a {peer.kind}")
            if peer.kind == NODE:
                store.touch_node(peer, now)
            elif peer.route in store.clients:
                store.client_liveness.touch(peer.route, now)
                if not store.clients[peer.route].seen:
                    self.faults.client_back(store.clients[peer.route])
            handler(peer, msg, now)
        except ProtocolError as exc:
            store.log.warning("event=bad_message kind=%s type=%s reason=%r", peer.kind, msg.type, exc.reason)
            store.send(peer.kind, peer.route, error_reply(msg, exc.code, exc.reason))
        return self.flush() if flush else []

    def flush(self) -> list[Send]:
        """Dispatch if anything may be dispatchable; returns (and clears) the messages to send."""
        store = self.store
        if store.dirty:
            store.dirty = False
            self.dispatcher.dispatch()
        if store.acks_due:
            store.ack_nodes(every=False)
        if store.replies_after_dispatch:
            store.out.extend(store.replies_after_dispatch)
            store.replies_after_dispatch = []
        out, store.out = store.out, []
        return out

    def check(self, now: float) -> list[Send]:
        """Liveness: settle lost nodes and expired adoptions (run a few times an interval)."""
        store = self.store
        store.now = now
        for node_id in store.node_liveness.lost(now):
            self.faults.node_lost(str(node_id), "no heartbeat")
        self.allocation.drain()
        self.waiting.check_nodeless(now)
        self.faults.expire_adoptions(now)
        self.client_requests.resend_results(now)
        self.client_requests.expire_clients(now)
        store.ack_nodes(every=True)
        return self.flush()

    def tick(self, now: float) -> list[Send]:
        """Once an interval: liveness, then heartbeats to every node and client."""
        store = self.store
        settled = self.check(now)  # (flushes the outbox, so read it after)
        store.out.extend(settled)
        for node in store.nodes.values():
            node.suspect = store.node_liveness.state(node.node_id, now) is Liveness.SUSPECT
            store.send(NODE, node.route, new_message("HEARTBEAT"))
        for client in store.clients.values():
            store.send(CLIENT, client.route, new_message("HEARTBEAT"))
        store.dirty = store.rescan = True  # (suspicions changed; and a backstop for the hungry set)
        return self.flush()

    def goodbye(self) -> list[Send]:
        """The scheduler closes: tell every node, so none waits for a heartbeat to know."""
        self.store.ack_nodes(every=True)
        for node in self.store.nodes.values():
            self.store.send(NODE, node.route, new_message("DISCONNECT", {"reason": "the scheduler closed"}))
        return self.flush()

    def dispatch(self) -> None:
        """Give queued jobs to nodes with credit, least loaded first (:meth:`flush` does)."""
        self.dispatcher.dispatch()

    def operator_cancel(self, job_ids: list[str], now: float) -> tuple[list[str], list[Send]]:
        """The grid's operator (the scheduler's web monitor) cancels jobs of any user.

        Returns the ids of the jobs cancelled or being cancelled (unknown and
        final ones are left out) and the messages to send.  Each job's client
        gets its ``cancelled`` result as if it had cancelled the job itself.
        """
        store = self.store
        store.now = now
        acted = [job_id for job_id in job_ids
                 if (job := store.jobs.get(job_id)) is not None and self.client_requests.cancel_job(job)]
        store.log.info("event=operator_cancel jobs=%d cancelled=%d", len(job_ids), len(acted))
        return acted, self.flush()

    def restore(self, clusters: list[ClusterRecord], jobs: list[JobRecord], now: float) -> None:
        """After a restart: the journaled clusters and jobs (see :meth:`.Faults.restore`)."""
        self.faults.restore(clusters, jobs, now)

    def snapshot(self, now: float, user: str | None = None) -> dict[str, Any]:
        """The grid as status tools show it (see :meth:`.StatusReports.snapshot`)."""
        return self.status.snapshot(now, user)

    def node_process_gone(self, pid: int, reason: str, cluster: ClusterRecord | None, now: float) -> None:
        """A private node's process exited (see :meth:`.Waiting.node_process_gone`); :meth:`flush` after."""
        self.store.now = now
        self.waiting.node_process_gone(pid, reason, cluster, now)

    # -- the store, as the shell, the monitor, the bench and the tests read it --------
    @property
    def now(self) -> float:
        return self.store.now

    @now.setter
    def now(self, value: float) -> None:
        self.store.now = value

    @property
    def scheduler_id(self) -> str:
        return self.store.scheduler_id

    @property
    def options(self) -> SchedulerOptions:
        return self.store.options

    @property
    def policy(self) -> LivenessPolicy:
        return self.store.policy

    @property
    def log(self) -> logging.Logger:
        return self.store.log

    @property
    def persist(self) -> list[Change]:
        """Durable changes since the shell last journaled (it clears the list)."""
        return self.store.persist

    @property
    def clients(self) -> dict[Route, ClientRecord]:
        return self.store.clients

    @property
    def clusters(self) -> dict[str, ClusterRecord]:
        return self.store.clusters

    @property
    def nodes(self) -> dict[str, NodeRecord]:
        return self.store.nodes

    @property
    def jobs(self) -> dict[str, JobRecord]:
        return self.store.jobs

    @property
    def duplicates(self) -> int:
        """Stale or repeated results and resubmitted job ids, dropped."""
        return self.store.duplicates
