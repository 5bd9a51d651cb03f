"""Shared-scheduler figures: what the ``gridlib scheduler`` hop costs, and how fast it comes back.

Run from the repository root: ``.venv/bin/python -m bench.shared [--trials N] [--quick]``
(``--only overhead|restart`` runs one part; ``--keep`` keeps the logs).

This measures; it asserts nothing (``tests/system/test_shared_scheduler.py``
does that). Every daemon is a real process on 127.0.0.1, started with
``tests.helpers.SchedulerProcess`` / ``NodeProcess`` (``python -m
gridlib.daemons.scheduler`` is ``gridlib scheduler``) and stopped by PID. One
``gridlib node --cpus 2`` serves the whole run. The run uses a throwaway key
under its own temporary directory (``GRIDLIB_CONFIG_DIR``), never the user's.

a. Overhead. The same two workloads through three set-ups, on the same node:

   - ``embedded``: ``JobCluster(noop, nodes=["127.0.0.1:<node port>"])``, the
     scheduler inside the client process (the baseline);
   - ``shared``: ``SharedJobCluster(noop, scheduler=...)`` against a
     ``gridlib scheduler`` process (client -> scheduler: CURVE over TCP);
   - ``shared+journal``: the same with ``--journal PATH`` (SQLite WAL, one
     transaction per loop turn, committed before acknowledgements go out).

   Workloads: throughput = 2,000 no-op jobs submitted at once, then all waited
   (jobs per wall second); latency = 200 sequential round trips (submit, wait
   for the result, next), p50 and p99 (nearest rank) in ms. Each cluster first
   runs 20 jobs to warm the node's workers. Each trial runs the three set-ups in
   a rotated order; a fresh scheduler (and journal) per set-up and trial.

b. Restart. ``gridlib scheduler --journal PATH --heartbeat 0.5``, a
   ``SharedJobCluster(pulse_interval=0.5)`` submits 1,000 jobs of ~20 ms; once
   ~100 have finished the scheduler gets SIGKILL and is started again at once
   (``--restart-delay S`` waits S seconds first) with the same arguments.
   Figures from that ``Popen``: to ``event=scheduler_started``, to the node
   registering again (``event=node_ready``), to the first job of the restored
   queue starting, and to all 1,000 final. The first restored job is the
   earliest ``job.start_time`` (the node's clock, same host) after
   ``event=scheduler_started`` was seen: only the new scheduler can have
   dispatched it (the <= 3 jobs the node held at the kill started within ~40 ms
   of it). A trial waits at most ``60 s + 8 heartbeats`` for the jobs; jobs not
   final by then are reported as stuck. Jobs lost = not ``Finished`` with the
   right result; duplicates delivered = ``job_status`` final calls per job
   beyond one. Both must be 0 (else the exit status is 1). Also shown: repeat
   results the client discarded (``cluster.duplicates``), never seen by the user.

Every process started here is stopped by PID; leftovers (anything with this
run's directory on its command line or in ``GRIDLIB_CONFIG_DIR``) are listed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gridlib  # noqa: E402
from bench.harness import isolated_run, node_address, revision, strays
from bench.wire_floor import percentile
from gridlib import JobStatus  # noqa: E402
from tests.helpers import NodeProcess, SchedulerProcess, free_port, wait_for  # noqa: E402

PULSE = 0.5  # heartbeat of the restart part (scheduler --heartbeat and client pulse_interval)
SETUPS = ("embedded", "shared", "shared+journal")
PARTS = ("overhead", "restart")
WARMUP = 20
JOB_TIMEOUT = 120.0
WAIT_TIMEOUT = 600.0


# -- the jobs (module level; run as __main__ they travel by value) -----------------
def noop(x):  # type: ignore[no-untyped-def]
    return x


def nap(i):  # type: ignore[no-untyped-def]
    import time
    time.sleep(0.02)
    return i


# -- processes we start ----------------------------------------------------------
@dataclass
class Processes:
    """Every daemon this run starts, so that all of them are stopped by PID."""

    tmp: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    schedulers: list[SchedulerProcess] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)

    def node(self, cpus: int) -> NodeProcess:
        node = NodeProcess(free_port(), self.tmp, "--cpus", str(cpus), "--name", "bench-node")
        self.nodes.append(node)
        return node

    def scheduler(self, node: NodeProcess, *extra: str, journal: Path | None = None) -> SchedulerProcess:
        sched = SchedulerProcess(self.tmp, *extra, nodes=[f"127.0.0.1:{node.port}"], journal=journal)
        self.schedulers.append(sched)
        return sched

    def stop_scheduler(self, sched: SchedulerProcess) -> None:
        """SIGTERM by PID (15 s grace, then SIGKILL): ``SchedulerProcess.stop``."""
        if sched in self.schedulers:
            self.schedulers.remove(sched)
            sched.stop()

    def stop_all(self) -> list[int]:
        for sched in list(self.schedulers):
            self.stop_scheduler(sched)
        for node in list(self.nodes):
            self.nodes.remove(node)
            node.stop()
            self.orphans += node.orphans
        return self.orphans

    def strays(self) -> list[str]:
        return strays(self.tmp)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "no figures"
    if len(values) == 1:
        return fmt.format(values[0])
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}-{fmt.format(max(values))})")


# -- a. overhead -------------------------------------------------------------------
@dataclass
class Overhead:
    throughput: float  # jobs/s
    p50_ms: float
    p99_ms: float


def open_cluster(setup: str, procs: Processes, node: NodeProcess, tmp: Path,
                 trial: int) -> tuple[gridlib.JobCluster, SchedulerProcess | None]:
    if setup == "embedded":
        return gridlib.JobCluster(noop, nodes=[node_address(node)]), None
    journal = tmp / f"journal-{trial}.sqlite" if setup == "shared+journal" else None
    sched = procs.scheduler(node, journal=journal)
    try:
        return gridlib.SharedJobCluster(noop, scheduler=sched.address), sched
    except BaseException:
        procs.stop_scheduler(sched)
        raise


def run_workloads(cluster: gridlib.JobCluster, jobs: int, round_trips: int) -> Overhead:
    if not wait_for(lambda: bool(cluster.status().nodes), 60):
        raise RuntimeError("the node never joined the cluster")
    warm = [cluster.submit(i) for i in range(WARMUP)]
    for job in warm:
        job(timeout=JOB_TIMEOUT)
    start = time.perf_counter()
    batch = [cluster.submit(i) for i in range(jobs)]
    if not cluster.wait(WAIT_TIMEOUT):
        raise RuntimeError("throughput jobs did not finish")
    elapsed = time.perf_counter() - start
    bad = sum(1 for j in batch if j.status != JobStatus.Finished)
    if bad:
        raise RuntimeError(f"{bad} throughput jobs did not finish")
    rtts = []
    for i in range(round_trips):
        t0 = time.perf_counter()
        job = cluster.submit(i)
        job(timeout=JOB_TIMEOUT)
        rtts.append(time.perf_counter() - t0)
        if job.status != JobStatus.Finished:
            raise RuntimeError(f"round trip {i}: {job.status!r} {job.exception}")
    return Overhead(jobs / elapsed, percentile(rtts, 50) * 1000, percentile(rtts, 99) * 1000)


def overhead(procs: Processes, node: NodeProcess, trials: int, jobs: int,
             round_trips: int) -> dict[str, list[Overhead]]:
    figures: dict[str, list[Overhead]] = {s: [] for s in SETUPS}
    for trial in range(trials):
        order = SETUPS[trial % len(SETUPS):] + SETUPS[:trial % len(SETUPS)]
        for setup in order:
            cluster, sched = open_cluster(setup, procs, node, procs.tmp, trial)
            try:
                result = run_workloads(cluster, jobs, round_trips)
            finally:
                cluster.close(terminate=True, timeout=60)
                if sched is not None:
                    procs.stop_scheduler(sched)
            figures[setup].append(result)
            print(f"  trial {trial + 1}/{trials} {setup:15} {result.throughput:8.0f} jobs/s  "
                  f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms", flush=True)
    return figures


def print_overhead(figures: dict[str, list[Overhead]]) -> None:
    base = figures["embedded"]
    base_tp = statistics.median(r.throughput for r in base) if base else 0.0
    base_p50 = statistics.median(r.p50_ms for r in base) if base else 0.0
    print(f"\n  {'set-up':15} {'no-op jobs/s':>22} {'p50 ms':>20} {'p99 ms':>20}  vs embedded")
    for setup, results in figures.items():
        if not results:
            continue
        tp = [r.throughput for r in results]
        p50 = [r.p50_ms for r in results]
        ratio = (f"{statistics.median(tp) / base_tp:.2f}x throughput, "
                 f"{statistics.median(p50) / base_p50:.2f}x p50") if base_tp and base_p50 else ""
        print(f"  {setup:15} {spread(tp, '{:.0f}'):>22} {spread(p50):>20} "
              f"{spread([r.p99_ms for r in results]):>20}  {ratio}")
    print("  (median of the trials, min-max in brackets)")


# -- b. restart --------------------------------------------------------------------
@dataclass
class Restart:
    to_started: float | None  # Popen -> event=scheduler_started
    to_node: float | None  # Popen -> event=node_ready (the node registered again)
    to_first: float | None  # Popen -> first restored job started (job.start_time)
    to_done: float | None  # Popen -> every job final
    finished_at_kill: int
    restored: int | None  # jobs in event=journal_restored
    lost: int
    duplicates: int  # job_status final calls beyond one per job
    discarded: int  # repeat results the client dropped (cluster.duplicates)


def log_after(sched: SchedulerProcess, offset: int) -> str:
    return sched.log()[offset:]


def restart_once(procs: Processes, node: NodeProcess, count: int, kill_after: int,
                 trial: int, delay: float) -> Restart:
    journal = procs.tmp / f"restart-{trial}.sqlite"
    sched = procs.scheduler(node, "--heartbeat", str(PULSE), journal=journal)
    finals: Counter[str] = Counter()
    lock = threading.Lock()

    def job_status(job):  # type: ignore[no-untyped-def]
        if job.status != JobStatus.ProvisionalResult:
            with lock:
                finals[job.uid] += 1

    try:
        with gridlib.SharedJobCluster(nap, scheduler=sched.address, job_status=job_status,
                                      pulse_interval=PULSE) as cluster:
            if not wait_for(lambda: bool(cluster.status().nodes), 60):
                raise RuntimeError("the node never joined the cluster")
            jobs = [cluster.submit(i) for i in range(count)]
            if not wait_for(lambda: sum(j.finished for j in jobs) >= kill_after, 120, interval=0.005):
                raise RuntimeError(f"{kill_after} jobs did not finish before the kill")
            sched.kill()  # SIGKILL by PID, reaped
            finished_at_kill = sum(j.finished for j in jobs)
            time.sleep(delay)
            offset = len(sched.log())
            popen = time.monotonic()
            sched.restart()  # the same arguments; returns once event=scheduler_started is logged
            started_wall, started = time.time(), time.monotonic() - popen
            popen_wall = started_wall - started
            node_seen: list[float] = []

            def watch_node() -> None:
                if wait_for(lambda: "event=node_ready" in log_after(sched, offset), 120,
                            interval=0.005):
                    node_seen.append(time.monotonic() - popen)

            seen_node = threading.Thread(target=watch_node, daemon=True)
            seen_node.start()
            done = cluster.wait(60 + 8 * PULSE + count * 0.02)
            to_done = time.monotonic() - popen if done else None
            seen_node.join(5)
            starts = [j.start_time for j in jobs if j.start_time and j.start_time >= started_wall]
            lost = sum(1 for i, j in enumerate(jobs)
                       if j.status != JobStatus.Finished or j.result != i)
            if not done:
                print(f"  trial {trial + 1}: STUCK, {sum(not j.finished for j in jobs)} jobs not "
                      f"final {time.monotonic() - popen:.0f} s after the restart; cancelling them",
                      flush=True)
                cluster.close(terminate=True, timeout=30)
            discarded = cluster.duplicates
        restored = re.search(r"event=journal_restored clusters=\d+ jobs=(\d+)", log_after(sched, offset))
        with lock:
            duplicates = sum(max(0, n - 1) for n in finals.values())
            never = sum(1 for j in jobs if finals[j.uid] == 0)
        if never:
            print(f"  trial {trial + 1}: {never} jobs never reached job_status", flush=True)
        return Restart(started, node_seen[0] if node_seen else None,
                       min(starts) - popen_wall if starts else None, to_done, finished_at_kill,
                       int(restored.group(1)) if restored else None, lost, duplicates, discarded)
    finally:
        procs.stop_scheduler(sched)


def restart(procs: Processes, node: NodeProcess, trials: int, count: int,
            kill_after: int, delay: float) -> list[Restart]:
    results = []
    for trial in range(trials):
        r = restart_once(procs, node, count, kill_after, trial, delay)
        results.append(r)

        def s(v: float | None) -> str:
            return "never" if v is None else f"{v:.2f} s"

        print(f"  trial {trial + 1}/{trials}: killed at {r.finished_at_kill} finished, "
              f"{r.restored} jobs restored; from Popen: started {s(r.to_started)}, node back "
              f"{s(r.to_node)}, first restored job running {s(r.to_first)}, all done "
              f"{s(r.to_done)}; lost {r.lost}, duplicates delivered {r.duplicates} "
              f"(repeats discarded by the client {r.discarded})", flush=True)
    return results


def print_restart(results: list[Restart], count: int) -> None:
    def col(get: Callable[[Restart], Any]) -> list[float]:
        return [v for v in map(get, results) if v is not None]

    print()
    for label, get, note in (
            ("scheduler_started", lambda r: r.to_started, ""),
            ("node registered again", lambda r: r.to_node, ""),
            ("first restored job running", lambda r: r.to_first,
             f"  (restored jobs wait (lost_after 5 + 3) x {PULSE} s = {8 * PULSE:g} s)"),
            (f"all {count} jobs final", lambda r: r.to_done, "")):
        values = col(get)
        shown = f"{spread(values)} s" if values else "never (every trial stuck)"
        print(f"  restart (Popen) -> {label:27} {shown}{note}")
    stuck = sum(1 for r in results if r.to_done is None)
    if stuck:
        print(f"  STUCK in {stuck} of {len(results)} trials (figures above are of the others)")
    print(f"  jobs lost {sum(r.lost for r in results)}, duplicates delivered "
          f"{sum(r.duplicates for r in results)} (over {len(results)} trials; both must be 0); "
          f"repeat results discarded by the client {sum(r.discarded for r in results)}")


# -- main ----------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="trials of each part (3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 200 no-op jobs, 20 round trips, 200 restart jobs")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--restart-delay", type=float, default=0.0,
                        help="seconds between the SIGKILL and the restart (0)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--verbose", action="store_true", help="show gridlib's own warnings")
    args = parser.parse_args(argv)
    args.trials = args.trials or (1 if args.quick else 3)
    args.jobs, args.round_trips = (200, 20) if args.quick else (2000, 200)
    args.restart_jobs, args.kill_after = (200, 20) if args.quick else (1000, 100)
    args.only = args.only or list(PARTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.verbose:  # a killed scheduler makes the client warn; that is the point here
        logging.getLogger("gridlib").setLevel(logging.ERROR)
    tmp = isolated_run("gridlib-shared-")
    procs = Processes(tmp)
    print(f"gridlib shared-scheduler figures, {time.strftime('%Y-%m-%d %H:%M')}; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; gridlib at {revision()}")
    print(f"command: python -m bench.shared {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    failed = False
    try:
        node = procs.node(cpus=2)
        if "overhead" in args.only:
            print(f"\na. overhead: {args.jobs} no-op jobs at once, {args.round_trips} sequential "
                  f"round trips; 1 node x 2 CPUs; {args.trials} trials")
            print_overhead(overhead(procs, node, args.trials, args.jobs, args.round_trips))
        if "restart" in args.only:
            print(f"\nb. restart: --journal --heartbeat {PULSE}, {args.restart_jobs} jobs of 20 ms, "
                  f"SIGKILL after {args.kill_after} finished, restart {args.restart_delay:g} s "
                  f"later; {args.trials} trials")
            results = restart(procs, node, args.trials, args.restart_jobs, args.kill_after,
                              args.restart_delay)
            print_restart(results, args.restart_jobs)
            failed = any(r.lost or r.duplicates or r.to_done is None for r in results)
    finally:
        orphans = procs.stop_all()
        wait_for(lambda: not procs.strays(), 10, interval=0.1)
        strays = procs.strays()
        print(f"\nprocesses: every scheduler and node stopped by PID; {len(orphans)} node processes "
              f"outlived their node's stop and were killed by PID ({orphans or 'none'}); "
              f"left over now: {strays or 'none'}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the daemons
    sys.exit(main())
