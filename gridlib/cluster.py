"""``JobCluster``: run a computation on many argument sets across nodes (docs/api.md §1).

The cluster packs the computation once, opens it at the scheduler (embedded
in this process for ``JobCluster``), and turns submissions into ``Job``
objects.  Messages from the scheduler arrive on the I/O thread and are
applied to jobs and nodes on the delivery thread, where user callbacks run.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from gridlib.client_io import ClientConnection
from gridlib.cluster_messages import SchedulerMessages
from gridlib.completion import AsCompleted
from gridlib.daemons.runtime.payload import pack_args, pack_computation, pack_value
from gridlib.delivery import Delivery
from gridlib.job import Job, JobStatus
from gridlib.journal import Journal
from gridlib.local_node import LocalNode, node_listening
from gridlib.logger import set_loglevel
from gridlib.node_targets import dispy_wildcards, is_loopback, node_specs, wants_local_node
from gridlib.nodes import ClusterStatus, Node, NodeAllocate
from gridlib.protocol.addresses import expand_targets
from gridlib.protocol.codec import Message, new_message
from gridlib.protocol.errors import GridError, PayloadTooLarge
from gridlib.protocol.keys import resolve_identity
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.sockets import DEFAULT_MAX_MSG_SIZE
from gridlib.stats import ClusterReport, cluster_report, print_report
from gridlib.transports import EmbeddedScheduler
from gridlib.versions import VERSIONS

if TYPE_CHECKING:
    from gridlib.progress_view import Tracked

__all__ = ["JobCluster", "DEFAULT_NODE_PORT"]

DEFAULT_NODE_PORT = 51352
log = logging.getLogger("gridlib.client")


def job_label(job_id: Any) -> str:
    """A job's id as text for the grid's side (at most 128 characters, no NUL)."""
    return str(job_id).replace("\0", "")[:128]


class JobCluster(SchedulerMessages):
    """A computation and its jobs, scheduled by a scheduler embedded in this process."""

    def __init__(
        self,
        computation: Callable[..., Any] | str,
        nodes: Sequence[Any] | str | None = None,
        depends: Sequence[Any] = (),
        job_status: Callable[[Job], None] | None = None,
        cluster_status: Callable[[Any, Node | None, Job | None], None] | None = None,
        setup: Callable[..., Any] | None = None,
        cleanup: Callable[..., Any] | bool = True,
        reentrant: bool = False,
        max_attempts: int = 3,
        timeout: float | None = None,
        secret: str | None = None,
        keys: str | os.PathLike[str] | None = None,
        recover_file: str | None = None,
        dest_path: str | None = None,
        pulse_interval: float = 2.0,
        host: str | None = None,
        callback: Callable[[Job], None] | None = None,
        setup_args: Sequence[Any] = (),
        node_port: int = DEFAULT_NODE_PORT,
        local_cpus: int = 0,
        scheduler_port: int = 0,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        node_wait: float | None = None,
        loglevel: int | str | None = None,
        ip_addr: str | None = None,
    ) -> None:
        if loglevel is not None:
            set_loglevel(loglevel)
        nodes = dispy_wildcards(nodes)
        if node_wait is not None and (isinstance(node_wait, bool) or not node_wait >= 0):
            raise ValueError("node_wait must be a number of seconds >= 0, or None to wait")
        host = host or ip_addr  # dispy's name
        packed = pack_computation(computation, depends, setup, cleanup)
        options = {"dest_path": dest_path, "cleanup": bool(cleanup), "reentrant": bool(reentrant),
                   "max_attempts": int(max_attempts), "setup_args": list(setup_args),
                   "node_wait": None if node_wait is None else float(node_wait)}
        self._start(packed, options, nodes, job_status or callback, cluster_status, timeout,
                    secret, keys, pulse_interval, host, node_port, local_cpus,
                    Journal(recover_file) if recover_file else None,
                    scheduler_port=scheduler_port, max_msg_size=max_msg_size)

    def _start(self, packed: tuple[str, bytes, list[tuple[str, bytes, int]]],
               options: dict[str, Any], nodes: Sequence[Any] | str | None,
               job_status: Callable[[Job], None] | None, cluster_status: Any,
               timeout: float | None, secret: str | None, keys: Any, pulse_interval: float,
               host: str | None, node_port: int, local_cpus: int, journal: Journal | None,
               cluster_id: str | None = None, scheduler_port: int = 0,
               max_msg_size: int = DEFAULT_MAX_MSG_SIZE) -> None:
        """Open the cluster: I/O thread, embedded scheduler, nodes (shared with recovery)."""
        self.job_status, self.cluster_status, self.timeout = job_status, cluster_status, timeout
        self.cluster_id = cluster_id or uuid.uuid4().hex
        self.start_time = time.time()
        self._jobs: dict[str, Job] = {}
        self._nodes: dict[str, Node] = {}
        self._node_names: dict[str, Node] = {}
        self._ids = itertools.count()
        self._uid_prefix = uuid.uuid4().hex[:16]  # fresh per cluster object, so also after recovery
        self._uids = itertools.count()
        self._cond = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._local_node: LocalNode | None = None
        self._journal = journal
        self._node_port = node_port
        self._allocations = [n for n in ([] if nodes is None or isinstance(nodes, str) else
                                         [nodes] if isinstance(nodes, NodeAllocate) else nodes)
                             if isinstance(n, NodeAllocate)]
        self._msg_limits: dict[str, int] = {}  # node id -> its message size limit
        self._scheduler_limit: int | None = None  # a shared scheduler's limit for our messages
        self._identity: Any = None
        self._targets: list[tuple[str, int]] = []
        self._no_nodes: str = ""  # why no node runs this cluster, as last explained
        self._unjournaled: list[Message] = []
        self._inbox: list[Message] = []  # this loop turn's messages for the delivery thread
        self.duplicates = 0
        kind, blob, files = packed
        self._kind = kind
        try:
            targets = expand_targets(node_specs(nodes), node_port)
        except ValueError as exc:
            raise GridError(str(exc)) from None
        if journal is not None and cluster_id is None:
            journal.add_cluster(self.cluster_id, kind, blob, files, options,
                                None if nodes is None else node_specs(nodes), node_port,
                                scheduler_port)
        identity = resolve_identity(secret, keys)
        self._identity, self._targets = identity, targets
        self._delivery = Delivery(log)
        self._conn = self._connect(identity, targets, host, LivenessPolicy(pulse_interval),
                                   scheduler_port, max_msg_size,
                                   self._journal_results if journal else None)
        self._conn.reactor.after_turn.append(self._post_inbox)
        try:
            self._conn.start()
        except BaseException:
            self._delivery.close()
            self._conn.close()
            raise
        try:
            self._open(kind, blob, files, {**options, "recover": cluster_id is not None})
            self._reach_nodes(nodes, targets, identity, secret, keys, local_cpus, node_port)
        except BaseException:
            self._shutdown_io()
            raise

    def _connect(self, identity: Any, targets: list[tuple[str, int]], host: str | None,
                 liveness: LivenessPolicy, scheduler_port: int, max_msg_size: int,
                 before_ack: Callable[[], None] | None) -> ClientConnection:
        """The I/O thread with the scheduler embedded (``SharedJobCluster`` dials one)."""
        # loopback only while every node is local; a fixed scheduler_port is for nodes that dial in
        local = bool(targets) and all(is_loopback(h) for h, _ in targets) and not scheduler_port
        bind = host or ("127.0.0.1" if local else "0.0.0.0")
        transport = EmbeddedScheduler(host=bind, node_port=scheduler_port,
                                      max_msg_size=max_msg_size, liveness=liveness)
        return ClientConnection(identity, self._on_message, transport, liveness=liveness, log=log,
                                before_ack=before_ack)

    def _reach_nodes(self, nodes: Any, targets: list[tuple[str, int]], identity: Any,
                     secret: str | None, keys: Any, local_cpus: int, node_port: int) -> None:
        """Announce the embedded scheduler to the nodes; start a private node if wanted."""
        if wants_local_node(nodes, targets, node_port) and not node_listening("127.0.0.1", node_port):
            service = self._conn.scheduler
            self._local_node = LocalNode(service.node_endpoint(), identity.keypair.public,
                                         cpus=local_cpus, secret=secret,
                                         keys=str(keys) if keys else None)
            self._conn.call(lambda: self._conn.reactor.call_every(0.25, self._watch_local_node))
        self._conn.call(lambda: self._conn.scheduler.announce_to(targets))

    def _watch_local_node(self) -> None:
        """I/O thread: the private node exited (crashed, killed, or could not start)?  Its jobs
        and the jobs waiting for it end with its last log lines, instead of waiting for ever."""
        node = self._local_node
        reason = node.exited() if node is not None else None
        if reason is None or node is None or getattr(node, "reported", False):
            return
        node.reported = True  # type: ignore[attr-defined]
        log.warning("event=local_node_exited reason=%r", reason)
        self._conn.scheduler.node_process_gone(node.pid, reason, self.cluster_id)

    # -- opening --------------------------------------------------------------
    def _hello(self) -> None:
        self._conn.request(new_message("HELLO", {"name": f"pid-{os.getpid()}"}))

    def _open(self, kind: str, blob: bytes, files: list[tuple[str, bytes, int]],
              options: dict[str, Any]) -> None:
        self._hello()
        fields = {"cluster_id": self.cluster_id, "kind": kind, **options, **VERSIONS,
                  "files": [{"name": name, "mode": mode} for name, _, mode in files]}
        frames = [blob, *(data for _, data, _ in files)]
        labels = ["computation", *(["file"] * len(files))]
        self._conn.request(new_message("CLUSTER_OPEN", fields, frames, labels))

    # -- submitting -------------------------------------------------------------
    def submit(self, *args: Any, **kwargs: Any) -> Job:
        """Run the computation with these arguments on some node; returns the ``Job``."""
        return self.submit_job(args, kwargs)

    def submit_node(self, node: Node | str, *args: Any, **kwargs: Any) -> Job:
        """Run a job on one particular node (a ``Node``, its name or its address)."""
        return self.submit_job(args, kwargs, node=node)

    def submit_job_id(self, job_id: Any, *args: Any, **kwargs: Any) -> Job:
        """Like :meth:`submit`, with your own ``job.id``."""
        return self.submit_job(args, kwargs, job_id=job_id)

    def submit_job_id_node(self, job_id: Any, node: Node | str, *args: Any, **kwargs: Any) -> Job:
        """:meth:`submit_node` with your own ``job.id`` (dispy's name)."""
        return self.submit_job(args, kwargs, job_id=job_id, node=node)

    def submit_job(self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                   depends: Sequence[Any] = (), node: Node | str | None = None,
                   job_id: Any = None, timeout: float | None = None, priority: int = 0) -> Job:
        """Submit a job with every option; bad arguments raise here, at once."""
        if self._closed:
            raise GridError("the cluster is closed")
        if depends:
            raise GridError("per-job depends are not supported yet; list files in the cluster's depends")
        args, kwargs = tuple(args), dict(kwargs or {})
        if self._kind == "program" and kwargs:
            raise GridError("a program computation takes positional arguments only")
        frames = pack_args(args, kwargs)
        self._check_size(frames)
        uid = f"{self._uid_prefix}{next(self._uids):x}"
        job = Job(next(self._ids) if job_id is None else job_id, uid, args, kwargs, time.time())
        limit = timeout if timeout is not None else self.timeout
        # "label": the job's id as its user knows it (a program's GRID_JOB_ID, the monitor's rows)
        spec: dict[str, Any] = {"id": uid, "n": len(frames), "priority": int(priority),
                                "label": job_label(job.id)}
        if limit is not None:
            spec["timeout"] = float(limit)
        if node is not None:
            spec["node"] = node.node_id if isinstance(node, Node) else str(node)
        if self._journal is not None:  # durable before it is sent
            self._journal.add_job(self.cluster_id, uid, pack_value(job.id)[0], frames, spec,
                                  job.submit_time)
        self._send_job(job, spec, frames)
        return job

    def _check_size(self, frames: list[Any]) -> None:
        """Arguments no known node (or the shared scheduler) would accept are refused here."""
        limits = list(self._msg_limits.values())
        node_limit = max(limits) if limits else None
        size = sum(memoryview(f).nbytes for f in frames) + 65536
        for limit, whose in ((self._scheduler_limit, "the scheduler's"), (node_limit, "every node's")):
            if limit is not None and size > limit:
                raise PayloadTooLarge(
                    f"the job's arguments are {size - 65536} bytes, over {whose} message limit of "
                    f"{limit} bytes: send less (ship data as a file with depends= or "
                    f"cluster.send_file), or raise the limit (gridlib node/scheduler --max-msg-size)")

    def _send_job(self, job: Job, spec: dict[str, Any], frames: list[Any]) -> None:
        with self._cond:
            self._jobs[job.uid] = job
            self._unfinished += 1
        self._conn.submit(self.cluster_id, spec, frames)

    def as_completed(self, jobs: Iterable[Job] | None = None, timeout: float | None = None,
                     progress: bool | str = False) -> AsCompleted | Tracked:
        """Jobs as they finish: ``for job in ...`` in threads, ``async for job in ...`` in asyncio.

        ``jobs`` defaults to every job of this cluster not final yet.  With
        ``timeout``, ``TimeoutError`` comes once that many seconds have passed
        and some are still unfinished.  ``progress=True`` (or a label) shows how
        many are done as they come: a bar on a terminal, a line each tenth of
        the way elsewhere (gridlib/progress_view.py).
        """
        if jobs is None:
            with self._cond:
                jobs = list(self._jobs.values())
        jobs = list(dict.fromkeys(jobs))
        finished = AsCompleted(jobs, timeout)
        if not progress:
            return finished
        from gridlib.progress_view import Tracked

        return Tracked(finished, len(jobs), progress if isinstance(progress, str) else "jobs")

    def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job (a running job's process is killed)."""
        if job.finished or job.uid not in self._jobs:
            return False
        self._conn.post(new_message("JOB_CANCEL", {"job_ids": [job.uid]}))
        return True

    # -- waiting and closing -----------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job is final; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Wait for the jobs (or cancel them with ``terminate``), then release everything."""
        if self._closed:
            return
        if terminate:
            for job in list(self._jobs.values()):
                self.cancel(job)
            self.wait(30.0 if timeout is None else timeout)
        elif not self.wait(timeout):
            raise TimeoutError(f"jobs still running after {timeout} s; use terminate=True")
        self._closed = True
        if self._journal is not None:
            self._journal.close_cluster(self.cluster_id)
        try:
            self._conn.request(new_message("CLUSTER_CLOSE", {"cluster_id": self.cluster_id}), 10.0)
        except GridError as exc:
            log.warning("event=close_failed error=%s", exc)
        self._shutdown_io()

    def shutdown(self) -> None:
        """Close at once: cancel what is left."""
        self.close(terminate=True)

    def _shutdown_io(self) -> None:
        self._closed = True
        self._conn.close()
        if self._local_node is not None:
            self._local_node.stop()
        self._delivery.close()

    def __call__(self, timeout: float | None = None) -> bool:
        """dispy's ``cluster()``: :meth:`wait`."""
        return self.wait(timeout)

    def __enter__(self) -> JobCluster:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(terminate=exc_type is not None)

    # -- status -----------------------------------------------------------------
    def status(self) -> ClusterStatus:
        """Nodes, and ``jobs_pending``: jobs submitted and not final yet (queued or running)."""
        pending = sum(1 for j in list(self._jobs.values()) if not j.finished)
        return ClusterStatus(list(self._nodes.values()), pending)

    def node_jobs(self, node: Node | str) -> list[Job]:
        """The jobs of this cluster running on ``node`` now."""
        name = node.name if isinstance(node, Node) else node
        return [j for j in list(self._jobs.values())
                if j.status in (JobStatus.Running, JobStatus.ProvisionalResult)
                and name in (j.node, j.ip_addr)]

    def report(self) -> ClusterReport:
        """The ``print_status`` figures as data: per node jobs, seconds per job and node
        time, then total job time, wall time, speedup and jobs done/pending."""
        pending = sum(1 for j in list(self._jobs.values()) if not j.finished)
        return cluster_report(list(self._nodes.values()), self.start_time, pending)

    def print_status(self) -> None:
        """Per-node table and totals (a ``rich`` table on a terminal); alias ``stats()``."""
        print_report(self.report())

    stats = print_status
