"""Scale figures: deep queues, the scheduler core's cost per job, many nodes on real sockets.

Run from the repository root: ``.venv/bin/python bench/scale.py [--quick] [--json PATH]``
(``--only a,b,c`` runs some parts; ``--jobs N`` sets part a's queue).  This
measures and prints; it asserts nothing (its exit status says only whether it
ran cleanly).  The run uses a throwaway key under its own temporary directory
(``GRIDLIB_CONFIG_DIR``), never the user's.

The Performance issue's deep-queue targets: ``.venv/bin/python bench/scale.py --million``
(= ``--only a --jobs 1000000``; about 5 minutes on 2 cores, 1.3-2.6 GB of memory) runs
part a with 1,000,000 queued jobs and prints, after part a's tables, whether

- the client process (client + embedded scheduler) stayed within 2 GB (2,000 MB, 1 MB =
  10^6 bytes) at its peak RSS with 1,000,000 jobs queued; with fewer ``--jobs`` the peak is
  projected to 1,000,000 (before + growth per job x 1,000,000) and the line says so;
- the cost per job did not grow as the queue drained: the client+scheduler CPU per job in
  the last window (the queue drains from a tenth of the jobs to none) is at most 1.2x the
  one in the first window after submitting ended (20 % for the noise of a shared 2-core
  machine; the rate and the other processes' load per window are printed beside it).

Both verdicts, with the figure and the bound, are also in the JSON (``targets``).

a. Queue depth.  One ``JobCluster(task, local_cpus=2)`` (embedded scheduler,
   private local node).  After a warm-up batch (its rate is the shallow-queue
   baseline), ``--jobs`` no-op jobs (100,000) are submitted at once.  Figures:
   the time to submit them; this process's RSS (client + embedded scheduler)
   before, right after submitting, at the peak while running and at the end;
   the private node daemon's peak RSS; the time this process spent in Python's
   cyclic GC (``gc.callbacks``); and, in 10 windows of equal job counts, the
   completion rate, this process's CPU time per job and the part of it spent in
   the GC, each window with the queue depth (submitted - completed) at its start
   and end, and the CPU the machine's other processes used meanwhile (cores:
   the system's busy time minus this process, its node and the node's workers).  A sampler thread
   polls the job handles in submission order every 5 ms (no ``job_status``
   callback, which would take results off the client's fast path).  Flat
   figures across the windows mean the cost per job does not grow with the
   queue.

b. The scheduler core without sockets.  ``SchedulerCore`` is driven in this
   process the way ``tests/unit/scheduler/test_core.py`` does: messages built
   with ``protocol.codec.new_message`` go through ``handle``/``flush``, with
   ``check`` and ``tick`` on the shell's schedule (the clock is
   ``time.monotonic``).  Fake nodes (2 CPUs each, READY, allocated, SETUP_OK)
   answer every JOB_ASSIGN at once with a JOB_RESULT (timestamps and the 3
   frames a node sends; no JOB_STARTED, which a node sends only for jobs
   running over 10 ms); the fake client acknowledges the results of a turn in
   one RESULT_ACK, as ``gridlib/client_io.py`` does.  Jobs go in as
   JOB_SUBMITs of 512 (the client's batch).  Two ways to feed the core:
   "batched" handles up to 2,000 node messages per turn, then flushes (the
   shell's limit; a saturated scheduler); "1 msg/turn" flushes after every
   message (a scheduler whose results trickle in, as with real jobs).  Figures
   are wall microseconds spent inside core calls per job (a single-threaded
   CPU-bound loop; the whole loop's process CPU time is in the JSON), split
   into the initial fill, the steady state while jobs are queued and the
   drain, for 1, 10, 100 and 1,000 nodes; and for 1k vs 100k jobs queued at
   once (10 nodes, batched, with and without the cyclic GC).  Also: bytes of
   core records per queued job (``tracemalloc``, payload frames excluded).

c. Real sockets.  A ``JobCluster(task, nodes=[<a port nobody listens on>])``
   (so no local node) and one stub process holding 1, 100 or 1,000 CURVE DEALER
   sockets that speak the node protocol (READY, SETUP_OK, JOB_RESULT,
   HEARTBEAT, DISCONNECT) and answer every job at once.  Figures: jobs/s and
   CPU microseconds per job in this process (client + scheduler) and in the
   stub process.

Every process started here is stopped by PID; leftovers (anything with this
run's directory on its command line or in ``GRIDLIB_CONFIG_DIR``) are listed.
"""

from __future__ import annotations

import argparse
import array
import bisect
import datetime as dt
import gc
import logging
import os
import pickle
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    # the script's own folder would make ``bench`` mean bench/bench.py
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import psutil  # noqa: E402

import gridlib  # noqa: E402
from bench.harness import end_run, isolated_run, revision, write_json  # noqa: E402
from gridlib.cluster import DEFAULT_NODE_PORT  # noqa: E402
from gridlib.daemons.scheduler import core as core_module  # noqa: E402
from gridlib.daemons.scheduler.core import CLIENT, NODE, Peer, SchedulerCore, Send  # noqa: E402
from gridlib.daemons.scheduler.state import SchedulerOptions  # noqa: E402
from gridlib.local_node import node_listening  # noqa: E402
from gridlib.protocol.codec import Message, new_message  # noqa: E402
from gridlib.protocol.liveness import LivenessPolicy  # noqa: E402
from tests.helpers import free_port, wait_for  # noqa: E402

MB = 1e6
MILLION = 1_000_000
MEMORY_BOUND_MB = 2000.0  # the issue: 1,000,000 queued jobs, client + scheduler <= 2 GB
DRAIN_TOLERANCE = 1.2  # last window's CPU per job / first one's after submitting, at most
WAIT_TIMEOUT = 1800.0  # seconds a whole batch may take
RESULT_LABELS = ["result", "stdout", "stderr"]
RESULT_FRAMES = [pickle.dumps(None, protocol=5), b"", b""]  # what a no-op job sends back


def task(op: str = "noop") -> None:
    """The no-op job."""
    return None


@dataclass(frozen=True)
class Sizes:
    depth_jobs: int  # part a
    warmup_jobs: int
    core_nodes: tuple[int, ...]  # part b
    core_jobs: int  # completions while jobs are queued (jobs = this + what the nodes hold)
    drain_sample: int  # completions timed after the queue ran empty, 1 msg/turn
    core_depths: tuple[int, int]
    socket_nodes: tuple[int, ...]  # part c
    socket_jobs: int


FULL = Sizes(100_000, 2000, (1, 10, 100, 1000), 10_000, 2000, (1000, 100_000), (1, 100, 1000), 20_000)
QUICK = Sizes(2000, 200, (1, 10, 100, 1000), 300, 100, (200, 2000), (1, 10), 500)


class GcClock:
    """Seconds this process spends in the cyclic GC (any thread), and full collections.

    ``log``: every collection's start and duration (``perf_counter`` seconds), in pairs.
    """

    def __init__(self) -> None:
        self.seconds, self.full, self._t0 = 0.0, 0, 0.0
        self.log = array.array("d")

    def between(self, t0: float, t1: float) -> float:
        """Seconds of the collections that started between ``t0`` and ``t1``."""
        log = self.log
        return sum(log[i + 1] for i in range(0, len(log), 2) if t0 <= log[i] < t1)

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            took = time.perf_counter() - self._t0
            self.seconds += took
            self.full += info["generation"] == 2
            self.log.extend((self._t0, took))


# -- a. queue depth -----------------------------------------------------------------
class Sampler(threading.Thread):
    """Every 5 ms: which of ``jobs`` (in submission order) have finished, and this process's
    CPU time; every 20 ms its RSS (peak), every 200 ms another process's RSS (peak); every
    second the CPU time the machine's other processes used (not this one, not the other
    process and its descendants).

    Jobs are dispatched first in, first out, so "the first k submitted have finished"
    trails "k have finished" by at most the jobs a node holds; no callback is needed,
    which would move results off the client's fast path.
    """

    def __init__(self, jobs: list[Any], other_pid: int | None) -> None:
        super().__init__(name="scale-sampler", daemon=True)
        self.jobs = jobs
        self.done_at = array.array("d")  # 8 bytes a job: the sampler's own memory counts in the RSS
        self.me = psutil.Process()
        self.other = psutil.Process(other_pid) if other_pid else None
        self.peak = self.other_peak = 0
        self.cpu: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]
        self.others: list[tuple[float, float]] = []  # (when, CPU seconds used by other processes)
        self._others_sample()
        self._stop_event = threading.Event()

    def _others_sample(self) -> None:
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        ours = sum(self.me.cpu_times()[:2])
        if self.other is not None:
            try:
                family = [self.other, *self.other.children(recursive=True)]
                ours += sum(sum(p.cpu_times()[:2]) for p in family)
            except psutil.Error:
                pass
        self.others.append((time.perf_counter(), busy - ours))

    def others_cores(self, t0: float, t1: float) -> float | None:
        """Cores the machine's other processes used on average between ``t0`` and ``t1``
        (from the samples around them); None without two samples."""
        samples = self.others
        i = max(0, bisect.bisect_right(samples, (t0, float("inf"))) - 1)
        j = min(len(samples) - 1, bisect.bisect_left(samples, (t1, float("-inf"))))
        if j <= i:
            return None
        (a, ca), (b, cb) = samples[i], samples[j]
        return max(0.0, (cb - ca) / max(b - a, 1e-9))

    def cpu_at(self, t: float) -> float:
        """This process's CPU seconds at ``t`` (linear between samples)."""
        i = max(1, min(bisect.bisect_left(self.cpu, (t, 0.0)), len(self.cpu) - 1))
        (t0, c0), (t1, c1) = self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)

    def _sample(self, turn: int) -> None:
        now = time.perf_counter()
        self.cpu.append((now, time.process_time()))
        jobs, done = self.jobs, self.done_at
        while len(done) < len(jobs) and jobs[len(done)].finished:
            done.append(now)
        if turn % 4 == 0:
            self.peak = max(self.peak, self.me.memory_info().rss)
        if self.other is not None and turn % 40 == 0:
            try:
                self.other_peak = max(self.other_peak, self.other.memory_info().rss)
            except psutil.Error:
                self.other = None
        if turn % 200 == 0:
            self._others_sample()

    def run(self) -> None:
        turn = 0
        while not self._stop_event.wait(0.005):
            self._sample(turn)
            turn += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self._sample(1)
        self._others_sample()


def windows(t0: float, done: Sequence[float], marks: list[tuple[float, int]], submit_end: float,
            cpu_at: Callable[[float], float], count: int = 10,
            gc_between: Callable[[float, float], float] | None = None,
            others: Callable[[float, float], float | None] | None = None) -> list[dict[str, Any]]:
    """Completion rate, this process's CPU per job (and GC time per job) in ``count`` windows of
    equal job counts, with the queue depth at each end and the other processes' load."""
    mark_times = [t for t, _ in marks]

    def submitted(t: float) -> int:
        return marks[max(0, bisect.bisect_right(mark_times, t) - 1)][1]

    # window ends: equal job counts, but a window must end at a later sample than it began
    # (results arrive in batches, so many jobs can share one sample): such a window joins the next
    n, ends, last_t = len(done), [], t0
    for w in range(count):
        k = n if w == count - 1 else (w + 1) * n // count
        if done[k - 1] > last_t:
            ends.append(k)
            last_t = done[k - 1]
        elif w == count - 1 and ends:
            ends[-1] = n
    rows: list[dict[str, Any]] = []
    prev_t, prev_k = t0, 0
    for k in ends:
        t = done[k - 1]
        rows.append({"first": prev_k + 1, "last": k, "jobs_per_s": (k - prev_k) / max(t - prev_t, 1e-9),
                     "cpu_us_per_job": (cpu_at(t) - cpu_at(prev_t)) / (k - prev_k) * 1e6,
                     "gc_us_per_job": gc_between(prev_t, t) / (k - prev_k) * 1e6 if gc_between else None,
                     "other_processes_cores": others(prev_t, t) if others else None,
                     "depth_at_start": submitted(prev_t) - prev_k, "depth_at_end": submitted(t) - k,
                     "during_submit": prev_t < submit_end})
        prev_t, prev_k = t, k
    return rows


def warm_up(cluster: Any, jobs: int) -> float:
    """Warm the workers, then run ``jobs`` at once: jobs/s with a shallow queue."""
    for batch in (100, jobs):
        t0 = time.perf_counter()
        for _ in range(batch):
            cluster.submit()
        if not cluster.wait(60.0):  # a node that cannot start fails the run here, not in 30 minutes
            raise RuntimeError("warm-up jobs did not finish within 60 s")
    return jobs / (time.perf_counter() - t0)


def queue_depth(sizes: Sizes) -> dict[str, Any]:
    clock, rss, n = time.perf_counter, lambda: psutil.Process().memory_info().rss, sizes.depth_jobs
    cluster = gridlib.JobCluster(task, local_cpus=2)
    failed = True
    try:
        warm_rate = warm_up(cluster, sizes.warmup_jobs)
        gc.collect()
        jobs: list[Any] = []
        sampler = Sampler(jobs, cluster._local_node.pid if cluster._local_node else None)
        rss_before = rss()
        sampler.start()
        with GcClock() as gcc:
            marks = [(clock(), 0)]
            t0 = clock()
            for i in range(1, n + 1):
                jobs.append(cluster.submit())
                if i % 1000 == 0 or i == n:
                    marks.append((clock(), i))
            submit_end, rss_submitted = clock(), rss()
            if not cluster.wait(WAIT_TIMEOUT):
                raise RuntimeError(f"jobs not done after {WAIT_TIMEOUT} s")
            sampler.stop()
        end = sampler.done_at[-1]
        finished = sum(j.status == gridlib.JobStatus.Finished for j in jobs)
        rss_done = rss()
        jobs.clear()  # the user lets go of the finished jobs
        gc.collect()
        rss_released = rss()
        failed = finished != n
    finally:
        cluster.close(timeout=60.0, terminate=failed)
    return {
        "jobs": n, "finished": finished, "warmup_jobs": sizes.warmup_jobs,
        "warmup_jobs_per_s": warm_rate, "submit_s": submit_end - t0,
        "submit_jobs_per_s": n / (submit_end - t0), "total_s": end - t0, "jobs_per_s": n / (end - t0),
        "rss_mb": {"before": rss_before / MB, "after_submit": rss_submitted / MB,
                   "peak": max(sampler.peak, rss_submitted, rss_done) / MB, "after_done": rss_done / MB,
                   "after_release": rss_released / MB},
        "rss_bytes_per_queued_job": (rss_submitted - rss_before) / n,
        "node_daemon_peak_rss_mb": sampler.other_peak / MB,
        "gc_s": gcc.seconds, "gc_full_collections": gcc.full,
        "cpu_us_per_job": (sampler.cpu_at(end) - sampler.cpu_at(t0)) / n * 1e6,
        "windows": windows(t0, sampler.done_at, marks, submit_end, sampler.cpu_at,
                           gc_between=gcc.between, others=sampler.others_cores),
    }


def depth_targets(a: dict[str, Any]) -> dict[str, Any]:
    """The issue's two deep-queue targets, judged on part a's figures."""
    rss, n = a["rss_mb"], a["jobs"]
    measured = n >= MILLION
    at_million = rss["peak"] if measured else rss["before"] + (rss["peak"] - rss["before"]) * MILLION / n
    drained = [w for w in a["windows"] if not w["during_submit"]]
    memory = {"jobs": n, "peak_rss_mb": rss["peak"], "at_1m_jobs_mb": at_million,
              "how": "measured" if measured else f"projected from {n} jobs",
              "bound_mb": MEMORY_BOUND_MB, "met": at_million <= MEMORY_BOUND_MB}
    if len(drained) < 2:
        return {"memory": memory, "drain": {"met": None, "why": "fewer than 2 windows after submitting"}}
    first, last = drained[0], drained[-1]
    ratio = last["cpu_us_per_job"] / first["cpu_us_per_job"]
    drain = {"first_window": f"{first['first']}-{first['last']}", "last_window": f"{last['first']}-{last['last']}",
             "first_cpu_us_per_job": first["cpu_us_per_job"], "last_cpu_us_per_job": last["cpu_us_per_job"],
             "cpu_ratio": ratio, "rate_ratio": last["jobs_per_s"] / first["jobs_per_s"],
             "bound_ratio": DRAIN_TOLERANCE, "met": ratio <= DRAIN_TOLERANCE}
    return {"memory": memory, "drain": drain}


# -- b. the scheduler core without sockets ------------------------------------------------
class CoreDrive:
    """A ``SchedulerCore``, fake nodes answering at once, and a fake client acking per turn."""

    def __init__(self, nodes: int, cpus: int = 2) -> None:
        log = logging.getLogger("gridlib.bench.scale.core")
        log.setLevel(logging.WARNING)
        self.policy = LivenessPolicy()
        self.core = SchedulerCore("scale", self.policy, log=log, options=SchedulerOptions())
        self.client = Peer(CLIENT, (b"client",), "bench")
        self.nodes = {(f"n{i}".encode(),): Peer(NODE, (f"n{i}".encode(),), "bench") for i in range(nodes)}
        self.node_inbox: deque[tuple[Peer, Message]] = deque()
        self.client_inbox: deque[Message] = deque()
        self.acks: list[str] = []
        self.completed = 0
        self.in_core = 0.0  # perf_counter seconds inside core calls
        self.next_check = self.next_tick = 0.0
        self._open(cpus)

    def call(self, fn: Callable[..., list[Send]], *args: Any) -> None:
        t = time.perf_counter()
        out = fn(*args)
        self.in_core += time.perf_counter() - t
        self.route(out)

    def _open(self, cpus: int) -> None:
        now = time.monotonic()
        self.call(self.core.handle, self.client, new_message("HELLO", {"name": "bench"}), now)
        self.call(self.core.handle, self.client, new_message(
            "CLUSTER_OPEN", {"cluster_id": "c1", "kind": "function"}, [b"computation"], ["computation"]), now)
        for i, peer in enumerate(self.nodes.values()):
            self.call(self.core.handle, peer, new_message("READY", {
                "node_id": f"id-{i}", "name": f"n{i}", "cpus": cpus, "ip_addr": "127.0.0.1"}), now)
        while self.client_inbox or self.node_inbox:
            self.turn(len(self.node_inbox))
        self.in_core = 0.0

    def route(self, sends: list[Send]) -> None:
        for send in sends:
            msg, fields = send.msg, send.msg.fields
            if send.to == CLIENT:
                if msg.type == "JOB_RESULT":
                    self.acks.append(fields["job_id"])
                    self.completed += 1
                elif msg.type == "NODE_EVENT" and fields["event"] == "discovered":
                    self.client_inbox.append(new_message("NODE_ALLOCATE", {
                        "cluster_id": "c1", "node_id": fields["node"]["node_id"],
                        "cpus": fields["node"]["cpus"]}))
                continue
            peer = self.nodes[send.route]
            if msg.type == "JOB_ASSIGN":
                ids, now = {"job_id": fields["job_id"], "attempt": fields["attempt"]}, time.time()
                self.node_inbox.append((peer, new_message("JOB_RESULT", {
                    **ids, "cluster_id": "c1", "status": "finished", "start_time": now, "end_time": now},
                    RESULT_FRAMES, RESULT_LABELS)))
            elif msg.type == "SETUP":
                self.node_inbox.append((peer, new_message("SETUP_OK", {"cluster_id": "c1"})))
            elif msg.type == "HEARTBEAT":
                self.node_inbox.append((peer, new_message("HEARTBEAT")))

    def turn(self, batch: int) -> None:
        """One loop turn of the shell: up to ``batch`` node messages, flush, the client's messages."""
        now = time.monotonic()
        for _ in range(min(batch, len(self.node_inbox))):
            peer, msg = self.node_inbox.popleft()
            self.call(self.core.handle, peer, msg, now, False)
        self.call(self.core.flush)
        while self.client_inbox:
            self.call(self.core.handle, self.client, self.client_inbox.popleft(), now)
        if self.acks:
            acks, self.acks = self.acks, []
            self.call(self.core.handle, self.client, new_message("RESULT_ACK", {"job_ids": acks}), now)
        if now >= self.next_check:  # the shell's timers: check every 1/4 interval, tick every interval
            self.next_check = now + self.policy.interval / 4
            self.call(self.core.check, now)
        if now >= self.next_tick:
            self.next_tick = now + self.policy.interval
            self.call(self.core.tick, now)

    def submit(self, jobs: int) -> None:
        for msg in submit_messages(jobs):
            self.call(self.core.handle, self.client, msg, time.monotonic(), False)


def submit_messages(jobs: int) -> list[Message]:
    """JOB_SUBMITs of 512 jobs (the client's batch), each job with its own args frame."""
    ids = [uuid.uuid4().hex for _ in range(jobs)]
    args = [pickle.dumps((("noop",), {}), protocol=5) for _ in range(jobs)]
    return [new_message("JOB_SUBMIT", {"cluster_id": "c1", "jobs": [
        {"id": j, "n": 1, "priority": 0} for j in ids[k:k + 512]]}, args[k:k + 512],
        ["args"] * len(ids[k:k + 512])) for k in range(0, jobs, 512)]


def core_run(nodes: int, jobs: int, batch: int, collect: bool = True,
             drain_sample: int | None = None) -> dict[str, Any]:
    """Submit ``jobs`` at once to a core with ``nodes`` fake nodes and run them all.

    One job runs first, so the core knows the job time (and so its prefetch)
    from the start.  Time inside the core is then split in three: the first
    turn ("fill": every node gets its credit), "steady" (until the queue runs
    empty: each completion is answered by one new assignment) and "drain" (jobs
    still in flight; with ``drain_sample`` only that many completions are timed,
    the rest run batched, untimed).
    """
    drive = CoreDrive(nodes)
    drive.submit(1)
    while drive.completed < 1 or drive.acks or drive.node_inbox:
        drive.turn(2000)
    drive.completed = 0
    gc.collect()
    if not collect:
        gc.disable()
    marks: list[tuple[float, int]] = []  # (seconds in the core, completions) at each phase end
    try:
        with GcClock() as gcc:
            cpu0 = time.process_time()
            drive.submit(jobs)
            submit_s, drive.in_core = drive.in_core, 0.0
            gc0 = gcc.seconds
            while drive.completed < jobs or drive.acks or drive.node_inbox:
                drive.turn(batch if len(marks) < 3 else 2000)
                if not marks or len(marks) == 1 and not drive.core.clusters["c1"].queued:
                    marks.append((drive.in_core, drive.completed))
                if len(marks) == 2 and (drive.completed == jobs or drain_sample is not None
                                        and drive.completed - marks[1][1] >= drain_sample):
                    marks.append((drive.in_core, drive.completed))
                    cpu, gc_s = time.process_time() - cpu0, gcc.seconds - gc0
    finally:
        gc.enable()
    left = len(drive.core.jobs)
    if left or len(marks) < 3:
        raise RuntimeError(f"core bench: {left} jobs still known to the core")
    (fill_s, _), (steady_s, steady_n), (end_s, end_n) = marks

    def per_job(seconds: float, count: int) -> float:
        return seconds / max(1, count) * 1e6

    return {"nodes": nodes, "jobs": jobs, "batch": batch, "gc": collect,
            "submit_us_per_job": per_job(submit_s, jobs), "timed_jobs": end_n,
            "run_us_per_job": per_job(end_s, end_n), "fill_s": fill_s,
            "steady_jobs": steady_n, "steady_us_per_job": per_job(steady_s - fill_s, steady_n),
            "drain_jobs": end_n - steady_n, "drain_us_per_job": per_job(end_s - steady_s, end_n - steady_n),
            "gc_us_per_job": per_job(gc_s, end_n), "loop_cpu_us_per_job": per_job(cpu, end_n)}


def core_bytes_per_queued_job(jobs: int) -> float:
    """tracemalloc bytes the core keeps per queued job (no nodes, so every job stays queued)."""
    drive, msgs = CoreDrive(0), submit_messages(jobs)
    frames = [frame for msg in msgs for frame in msg.frames]  # payloads are not the core's
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for msg in msgs:
        drive.core.handle(drive.client, msg, time.monotonic(), False)
    del msgs  # what stays is the core's
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del frames
    return held / jobs


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure the median over ``runs`` (the same set-up run again)."""
    return {k: statistics.median(r[k] for r in runs) if isinstance(v, float) else v
            for k, v in runs[0].items()} | {"runs": len(runs)}


def core_costs(sizes: Sizes, repeat: int) -> dict[str, Any]:
    """The sweep over node counts, and 1k vs 100k jobs queued at once; medians of ``repeat`` runs."""
    cap = getattr(core_module, "PREFETCH_PER_CPU", 16) + 1  # jobs a node may hold, per CPU
    sweep = []
    for nodes in sizes.core_nodes:
        jobs = sizes.core_jobs + nodes * 2 * cap  # about core_jobs complete while jobs are queued
        for batch, sample in ((2000, None), (1, sizes.drain_sample)):
            r = median_run([core_run(nodes, jobs, batch, drain_sample=sample) for _ in range(repeat)])
            sweep.append(r)
            print(f"  core: {nodes} nodes, batch {batch}: {fmt(r['run_us_per_job'])} us/job, "
                  f"{fmt(r['steady_us_per_job'])} steady, {fmt(r['drain_us_per_job'])} draining",
                  flush=True)
    depth = [median_run([core_run(10, jobs, 2000, collect) for _ in range(repeat)])
             for collect in (True, False) for jobs in sizes.core_depths]
    return {"sweep": sweep, "depth": depth,
            "bytes_per_queued_job": core_bytes_per_queued_job(sizes.core_depths[-1])}


# -- c. real sockets: stub nodes (bench/stub_nodes.py) ----------------------------------------
def socket_run(nodes: int, jobs: int) -> dict[str, Any]:
    """A JobCluster and one stub process with ``nodes`` nodes; ``jobs`` no-op jobs at once."""
    cluster = gridlib.JobCluster(task, nodes=[f"127.0.0.1:{free_port()}"])
    stub = None
    failed = True
    try:
        endpoint = cluster._conn.scheduler.node_endpoint()
        key = cluster._conn.identity.keypair.public
        stub = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "stub_nodes.py"),
                                 str(nodes), endpoint, key.decode()],
                                stdin=subprocess.DEVNULL)
        ready = wait_for(lambda: sum(n.status == gridlib.NodeStatus.Initialized
                                     for n in cluster.status().nodes) == nodes, 60)
        if not ready:
            raise RuntimeError(f"{nodes} stub nodes did not all set up within 60 s")
        handles = [cluster.submit() for _ in range(min(jobs, 200))]  # warm-up
        if not cluster.wait(60.0):
            raise RuntimeError("stub run: warm-up jobs did not finish within 60 s")
        me, other = psutil.Process(), psutil.Process(stub.pid)
        cpu0, stub0, t0 = sum(me.cpu_times()[:2]), sum(other.cpu_times()[:2]), time.perf_counter()
        handles = [cluster.submit() for _ in range(jobs)]
        if not cluster.wait(WAIT_TIMEOUT):
            raise RuntimeError(f"stub run: jobs not done after {WAIT_TIMEOUT} s")
        wall = time.perf_counter() - t0
        cpu, stub_cpu = sum(me.cpu_times()[:2]) - cpu0, sum(other.cpu_times()[:2]) - stub0
        finished = sum(h.status == gridlib.JobStatus.Finished for h in handles)
        used = {n.name for n in cluster.status().nodes if n.jobs_done}
        failed = finished != jobs
    finally:
        cluster.close(timeout=60.0, terminate=failed)
        if stub is not None:
            stub.terminate()
            try:
                stub.wait(15)
            except subprocess.TimeoutExpired:
                stub.kill()
                stub.wait()
    return {"nodes": nodes, "jobs": jobs, "finished": finished, "nodes_used": len(used),
            "jobs_per_s": jobs / wall, "client_cpu_us_per_job": cpu / jobs * 1e6,
            "stub_cpu_us_per_job": stub_cpu / jobs * 1e6}


def socket_costs(sizes: Sizes) -> list[dict[str, Any]]:
    rows = []
    for nodes in sizes.socket_nodes:
        rows.append(socket_run(nodes, sizes.socket_jobs))
        print(f"  sockets: {nodes} stub nodes: {rows[-1]['jobs_per_s']:.0f} jobs/s", flush=True)
    return rows


# -- output ------------------------------------------------------------------------------------
def fmt(x: float) -> str:
    """About three significant digits, never in exponent notation."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)])


def print_depth(a: dict[str, Any]) -> None:
    rss = a["rss_mb"]
    print(f"submit: {a['jobs']} jobs in {fmt(a['submit_s'])} s ({fmt(a['submit_jobs_per_s'])} jobs/s); "
          f"all {a['finished']} finished after {fmt(a['total_s'])} s ({fmt(a['jobs_per_s'])} jobs/s overall)")
    print(f"client+scheduler RSS (MB): before {fmt(rss['before'])}, after submit {fmt(rss['after_submit'])}, "
          f"peak {fmt(rss['peak'])}, after all done {fmt(rss['after_done'])}, after dropping the jobs "
          f"{fmt(rss['after_release'])}; "
          f"{fmt(a['rss_bytes_per_queued_job'])} B per queued job; "
          f"private node daemon peak {fmt(a['node_daemon_peak_rss_mb'])} MB")
    print(f"cyclic GC in this process: {fmt(a['gc_s'])} s ({a['gc_full_collections']} full collections); "
          f"warm-up baseline: {a['warmup_jobs']} jobs at once, {fmt(a['warmup_jobs_per_s'])} jobs/s")
    rows = [[f"{w['first']}-{w['last']}", f"{w['depth_at_start']} -> {w['depth_at_end']}",
             fmt(w["jobs_per_s"]), fmt(w["cpu_us_per_job"]),
             "" if w.get("gc_us_per_job") is None else fmt(w["gc_us_per_job"]),
             "" if w.get("other_processes_cores") is None else f"{w['other_processes_cores']:.2f}",
             "submitting" if w["during_submit"] else ""]
            for w in a["windows"]]
    print(table(("completions", "queue depth", "jobs/s", "client+scheduler CPU us/job", "of it GC us/job",
                 "other processes (cores)", "note"), rows))


def print_targets(t: dict[str, Any]) -> None:
    mem, drain = t["memory"], t["drain"]
    verdict = {True: "met", False: "NOT met", None: "not judged"}
    print(f"target: 1,000,000 queued jobs, client + scheduler <= {fmt(mem['bound_mb'])} MB: "
          f"{fmt(mem['at_1m_jobs_mb'])} MB peak RSS ({mem['how']}): {verdict[mem['met']]}")
    if drain["met"] is None:
        print(f"target: no slowdown per job as the queue drains: not judged ({drain['why']})")
        return
    print(f"target: no slowdown per job as the queue drains (last window's CPU per job <= "
          f"{drain['bound_ratio']}x the first's after submitting): {fmt(drain['first_cpu_us_per_job'])} us "
          f"({drain['first_window']}) -> {fmt(drain['last_cpu_us_per_job'])} us ({drain['last_window']}), "
          f"{drain['cpu_ratio']:.2f}x (rate {drain['rate_ratio']:.2f}x): {verdict[drain['met']]}")


def print_core(b: dict[str, Any]) -> None:
    by = {(r["nodes"], r["batch"]): r for r in b["sweep"]}
    rows = []
    for n in sorted({r["nodes"] for r in b["sweep"]}):
        full, one = by[n, 2000], by[n, 1]
        rows.append([str(n), str(full["jobs"]), fmt(full["submit_us_per_job"]), fmt(full["run_us_per_job"]),
                     fmt(full["steady_us_per_job"]), fmt(one["steady_us_per_job"]),
                     fmt(one["drain_us_per_job"])])
    print(table(("nodes x 2 CPUs", "jobs", "submit", "batched: all", "batched: steady",
                 "1 msg/turn: steady", "1 msg/turn: drain"), rows))
    print("(us per job inside the core; all: every job from the first dispatch to the last ack; "
          "steady: while jobs are queued, after the first fill; drain: once the queue is empty, "
          f"first {by[n, 1]['drain_jobs']} completions)\n")
    rows = [[str(r["jobs"]), "on" if r["gc"] else "off", fmt(r["submit_us_per_job"]),
             fmt(r["run_us_per_job"]), fmt(r["gc_us_per_job"])] for r in b["depth"]]
    print(table(("jobs queued at once (10 nodes, batched)", "cyclic GC", "submit us/job", "run us/job",
                 "GC us/job (whole loop)"), rows))
    print(f"core records per queued job: {fmt(b['bytes_per_queued_job'])} B (tracemalloc; "
          "payload frames excluded)")


def print_sockets(c: list[dict[str, Any]]) -> None:
    rows = [[str(r["nodes"]), str(r["nodes_used"]), str(r["jobs"]), fmt(r["jobs_per_s"]),
             fmt(r["client_cpu_us_per_job"]), fmt(r["stub_cpu_us_per_job"])] for r in c]
    print(table(("stub nodes x 2 CPUs", "nodes used", "jobs", "jobs/s", "client+scheduler CPU us/job",
                 "stub CPU us/job"), rows))


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke), 10-20 s")
    p.add_argument("--jobs", type=int, help="part a: jobs submitted at once (default 100000)")
    p.add_argument("--million", action="store_true",
                   help="the issue's deep-queue targets: part a only, 1,000,000 jobs (about 5 minutes)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="part b: every figure is the median of N runs (default 3, 1 with --quick)")
    p.add_argument("--only", help="parts to run, e.g. a,b (default a,b,c; a with --million)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.million and (args.quick or args.jobs is not None):
        p.error("--million sets the sizes: not with --quick or --jobs")
    if args.million:
        args.jobs = MILLION
    args.only = {part.strip() for part in (args.only or ("a" if args.million else "a,b,c")).split(",")}
    if not args.only <= {"a", "b", "c"}:
        p.error("--only takes a, b and c")
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.jobs is not None and args.jobs < 10:
        p.error("--jobs must be at least 10")
    return args


def run_parts(args: argparse.Namespace, sizes: Sizes, report: dict[str, Any]) -> None:
    if "a" in args.only:
        print(f"\na. queue depth: {sizes.depth_jobs} no-op jobs at once, JobCluster(task, local_cpus=2)",
              flush=True)
        report["queue_depth"] = queue_depth(sizes)
        report["targets"] = depth_targets(report["queue_depth"])
        print_depth(report["queue_depth"])
        print_targets(report["targets"])
    if "b" in args.only:
        print(f"\nb. scheduler core without sockets: microseconds inside core calls per job, "
              f"median of {args.repeat} runs", flush=True)
        report["core"] = core_costs(sizes, args.repeat)
        print_core(report["core"])
    if "c" in args.only:
        print(f"\nc. real sockets: JobCluster + one process of CURVE stub nodes answering at once, "
              f"{sizes.socket_jobs} jobs", flush=True)
        report["sockets"] = socket_costs(sizes)
        print_sockets(report["sockets"])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.jobs:
        sizes = Sizes(**{**asdict(sizes), "depth_jobs": args.jobs})
    if "a" in args.only and node_listening("127.0.0.1", DEFAULT_NODE_PORT):
        print(f"a gridlib node already listens on 127.0.0.1:{DEFAULT_NODE_PORT}: JobCluster would "
              "use it instead of a private 2-CPU node; stop it and run again", file=sys.stderr)
        return 2
    logging.getLogger("gridlib").setLevel(logging.ERROR)
    tmp = isolated_run("gridlib-scale-")
    when = dt.datetime.now(dt.timezone.utc)
    print(f"gridlib {gridlib.__version__} scale figures | Python {platform.python_version()} | "
          f"{platform.system()} {platform.machine()} | {os.cpu_count()} CPUs | load "
          f"{os.getloadavg()[0]:.2f} | {when:%Y-%m-%d %H:%M} UTC | gridlib at {revision()}")
    report: dict[str, Any] = {
        "date": when.isoformat(timespec="seconds"), "revision": revision(), "sizes": asdict(sizes),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_1min_at_start": os.getloadavg()[0]}}
    try:
        run_parts(args, sizes, report)
    finally:
        left = end_run(tmp)
        report["load_average_1min_at_end"] = os.getloadavg()[0]
        print(f"\nprocesses left over: {left or 'none'}; load average at the end "
              f"{report['load_average_1min_at_end']:.2f}")
    write_json(args.json, report)
    return 1 if left else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: close the cluster
    sys.exit(main())
