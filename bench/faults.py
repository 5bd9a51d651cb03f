"""Fault figures: how fast a dead node is noticed, what churn costs, what recovery yields.

Run from the repository root: ``.venv/bin/python -m bench.faults [--trials N] [--quick]``
(``--only detect|churn|recover`` runs one part; ``--churn-jobs N``, ``--max-attempts N``).

This measures; it asserts nothing (the fault tests in ``tests/system`` do that).
Every node is a real ``gridlib node`` process on 127.0.0.1 (``tests.helpers.
NodeProcess``) and every cluster runs with ``pulse_interval=0.5``, so a silent
node is lost after 5 x 0.5 = 2.5 s. The run uses a throwaway key under its own
temporary directory (``GRIDLIB_CONFIG_DIR``), never the user's key.

a. Detection: one node runs a 30 s job; 0-0.5 s after the job is reported
   running, the node daemon gets SIGKILL (or SIGSTOP). The figure is (time of
   the ``cluster_status(NodeStatus.Closed)`` callback - time of the signal) /
   heartbeat interval; min/median/max over ``--trials`` trials of each signal.
   After a SIGKILL it also counts the node's processes (forkserver, resource
   tracker, the busy worker) still alive 5 s after the kill.
b. Churn: 200 jobs of 20-120 ms, ``reentrant=True``, two nodes; one node is
   SIGKILLed and restarted (same port and directory, so same node id and
   spool) every 2 s until every job is final. Reports jobs lost (not
   Finished), duplicate results delivered (``job_status`` calls per job beyond
   one plus ``cluster.duplicates``), restarts and wall time.
c. Recovery yield: a client process with ``recover_file=`` submits 40 jobs
   (300 ms each) to a 2-CPU node and is SIGKILLed once 10 results have
   arrived; then ``gridlib.recover_jobs(path, pulse_interval=0.5)`` runs here.
   Each job appends its index to a marker file, so a job that ran twice is
   counted as re-executed.

Every process started here is stopped by PID at the end (nodes by
``NodeProcess.stop``, the client by ``Popen.kill``); leftovers are reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
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
from bench.harness import isolated_run, revision, strays
from bench.harness import node_address as address
from gridlib import JobStatus, NodeStatus  # noqa: E402
from gridlib.journal import Journal  # noqa: E402
from tests.helpers import NodeProcess, free_port, wait_for  # noqa: E402

PULSE = 0.5  # heartbeat interval of every cluster here (s)
PARTS = ("detect", "churn", "recover")


# -- the jobs (module level; run as __main__ they travel by value) -----------------
def sleeper(seconds):  # type: ignore[no-untyped-def]
    import time
    time.sleep(seconds)
    return seconds


def short_work(i):  # type: ignore[no-untyped-def]
    import random
    import time
    time.sleep(random.uniform(0.02, 0.12))
    return i * i


CLIENT = '''
import json, sys, time
import gridlib

port, journal, count, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

def work(i, seconds):
    import time
    time.sleep(seconds)
    with open(MARKER, "a") as f:  # the side effect that shows how often a job ran
        f.write(f"{i}\\n")
    return i * 10

cluster = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{port}"], reentrant=True,
                             pulse_interval=0.5, recover_file=journal)
jobs = [cluster.submit_job_id(f"job-{i}", i, seconds) for i in range(count)]
while True:
    finished = sum(j.finished for j in jobs)
    running = [j.id for j in jobs if j.status == gridlib.JobStatus.Running]
    print(json.dumps({"finished": finished, "running": running}), flush=True)
    if finished == count:
        break
    time.sleep(0.05)
cluster.close()
'''


# -- processes we start ----------------------------------------------------------
@dataclass
class Processes:
    """Every process this run starts, so that all of them are stopped by PID."""

    tmp: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    clients: list[subprocess.Popen[str]] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)  # outlived their node; killed at stop

    def node(self, name: str, cpus: int) -> NodeProcess:
        node = NodeProcess(free_port(), self.tmp, "--cpus", str(cpus), "--name", name)
        self.nodes.append(node)
        return node

    def stop_node(self, node: NodeProcess) -> None:
        """``NodeProcess.stop``: SIGTERM, 10 s grace, then SIGKILL by PID for any survivor."""
        if node in self.nodes:
            self.nodes.remove(node)
            node.stop()
            self.orphans += node.orphans

    def stop_all(self) -> list[int]:
        for client in self.clients:
            if client.poll() is None:
                client.send_signal(signal.SIGCONT)
                client.kill()
            client.wait()
        for node in list(self.nodes):
            self.stop_node(node)
        return self.orphans

    def strays(self) -> list[str]:
        return strays(self.tmp)


def spread(values: list[float]) -> str:
    if not values:
        return "no figures"
    return (f"min {min(values):.2f}  median {statistics.median(values):.2f}  "
            f"max {max(values):.2f}  (n={len(values)})")


# -- a. detection ----------------------------------------------------------------
@dataclass
class Trial:
    intervals: float | None  # signal -> Closed callback, in heartbeat intervals
    had: int = 0  # processes the node had (forkserver, resource tracker, workers)
    outlived: int = 0  # of those, still alive OUTLIVE_WAIT s after a SIGKILL


OUTLIVE_WAIT = 5.0  # seconds after a SIGKILL at which the node's processes are counted


def detect_once(procs: Processes, sig: signal.Signals, trial: int) -> Trial:
    """Time from ``sig`` to the node's Closed callback (None if not seen in 30 s)."""
    name = f"det-{sig.name.lower()}-{trial}"
    node = procs.node(name, cpus=1)
    closed: dict[str, float] = {}

    def cluster_status(status, info, job):  # type: ignore[no-untyped-def]
        if status == NodeStatus.Closed and info is not None:
            closed.setdefault(info.name, time.monotonic())

    cluster = gridlib.JobCluster(sleeper, nodes=[address(node)], pulse_interval=PULSE,
                                 cluster_status=cluster_status)
    try:
        job = cluster.submit(30.0)
        if not wait_for(lambda: job.status == JobStatus.Running, 60):
            print(f"  trial {trial}: the job never ran", flush=True)
            return Trial(None)
        time.sleep(random.uniform(0.0, PULSE))  # any phase of the heartbeat cycle
        node.track()
        had = len(node.leftovers()) - 1  # the node's processes, the node itself excluded
        signalled = time.monotonic()
        os.kill(node.pid, sig)
        seen = wait_for(lambda: name in closed, 30, interval=0.005)
        result = Trial((closed[name] - signalled) / PULSE if seen else None, had)
        if sig == signal.SIGSTOP:
            os.kill(node.pid, signal.SIGCONT)
        else:
            node.proc.wait(15)  # reap it: only its descendants can still be alive
            time.sleep(max(0.0, signalled + OUTLIVE_WAIT - time.monotonic()))
            result.outlived = len(node.leftovers())  # the node itself is reaped by now
        return result
    finally:
        cluster.close(terminate=True, timeout=30)
        procs.stop_node(node)


def detection(procs: Processes, trials: int) -> dict[str, list[Trial]]:
    figures: dict[str, list[Trial]] = {}
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        results = []
        for trial in range(trials):
            result = detect_once(procs, sig, trial)
            shown = "not detected within 30 s" if result.intervals is None \
                else f"{result.intervals:.2f} intervals"
            if sig == signal.SIGKILL:
                shown += (f"; {result.outlived} of the node's {result.had} processes still alive "
                          f"{OUTLIVE_WAIT:g} s after the kill")
            print(f"  {sig.name} trial {trial + 1}/{trials}: {shown}", flush=True)
            results.append(result)
        figures[sig.name] = results
    return figures


def print_detection(figures: dict[str, list[Trial]]) -> None:
    for name, results in figures.items():
        print(f"  {name:8} {spread([r.intervals for r in results if r.intervals is not None])}")
    kills = figures.get("SIGKILL", [])
    if kills:
        outlived = sum(1 for r in kills if r.outlived)
        print(f"  SIGKILL: the node's worker/forkserver processes outlived it by {OUTLIVE_WAIT:g} s "
              f"in {outlived} of {len(kills)} trials (a 30 s job was running)")


# -- b. churn --------------------------------------------------------------------
def wait_initialized(cluster: gridlib.JobCluster, count: int, timeout: float = 60) -> bool:
    return wait_for(lambda: sum(n.status == NodeStatus.Initialized
                                for n in cluster.status().nodes) >= count, timeout)


def churn(procs: Processes, count: int, period: float, max_attempts: int) -> dict[str, Any]:
    a, b = procs.node("churn-a", cpus=2), procs.node("churn-b", cpus=2)
    finals: Counter[str] = Counter()
    lock = threading.Lock()

    def job_status(job):  # type: ignore[no-untyped-def]
        if job.status != JobStatus.ProvisionalResult:
            with lock:
                finals[job.uid] += 1

    stop, restarts = threading.Event(), [0]

    def killer() -> None:
        while not stop.wait(period):
            a.restart()  # SIGKILL, then the same port and directory: the same node id
            restarts[0] += 1

    cluster = gridlib.JobCluster(short_work, nodes=[address(a), address(b)], reentrant=True,
                                 max_attempts=max_attempts, pulse_interval=PULSE,
                                 job_status=job_status)
    thread = threading.Thread(target=killer, name="churn-killer")
    try:
        wait_initialized(cluster, 2)
        started = time.monotonic()
        jobs = [cluster.submit(i) for i in range(count)]
        thread.start()
        done = cluster.wait(600)
        wall = time.monotonic() - started
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
    time.sleep(1.0)  # let late duplicates, if any, reach the callbacks
    figures = churn_figures(jobs, finals, cluster, count)
    figures.update(all_final=done, restarts=restarts[0], wall=wall, max_attempts=max_attempts,
                   dropped_by_scheduler=scheduler_duplicates(cluster))
    cluster.close(terminate=True, timeout=30)
    procs.stop_node(a)
    procs.stop_node(b)
    return figures


def churn_figures(jobs: list[gridlib.Job], finals: Counter[str], cluster: gridlib.JobCluster,
                  count: int) -> dict[str, Any]:
    statuses = Counter(JobStatus(j.status).name for j in jobs)
    finished = [j for j in jobs if j.status == JobStatus.Finished]
    wrong = sum(1 for i, j in enumerate(jobs) if j.status == JobStatus.Finished and j.result != i * i)
    extra_callbacks = sum(max(0, n - 1) for n in finals.values())
    why = Counter(f"{JobStatus(j.status).name}: {j.exception_type or (j.exception or '')[:80]}"
                  for j in jobs if j.status != JobStatus.Finished)
    return {"submitted": count, "finished": len(finished), "lost": count - len(finished),
            "statuses": dict(statuses), "wrong_results": wrong, "why": dict(why),
            "duplicates": extra_callbacks + cluster.duplicates,
            "extra_callbacks": extra_callbacks, "client_duplicates": cluster.duplicates,
            "no_callback": sum(1 for j in jobs if finals[j.uid] == 0),
            "moved": sum(1 for j in finished if j.attempts > 1),
            "max_attempt": max((j.attempts for j in finished), default=0)}


def scheduler_duplicates(cluster: gridlib.JobCluster) -> int | None:
    """Stale results the embedded scheduler dropped (never delivered); private, for the record."""
    service = getattr(getattr(cluster, "_conn", None), "scheduler", None)
    return getattr(getattr(service, "core", None), "duplicates", None)


# -- c. recovery -----------------------------------------------------------------
def start_client(procs: Processes, node: NodeProcess, journal: Path, marker: Path,
                 count: int, seconds: float) -> subprocess.Popen[str]:
    script = procs.tmp / "client.py"
    script.write_text(CLIENT.replace("MARKER", repr(str(marker))))
    client = subprocess.Popen([sys.executable, str(script), str(node.port), str(journal),
                               str(count), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    procs.clients.append(client)
    return client


def read_until(client: subprocess.Popen[str], done: Callable[[dict[str, Any]], bool],
               timeout: float = 120) -> dict[str, Any]:
    """Follow the client's progress lines until ``done`` (or it exits, or ``timeout``)."""
    state: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    assert client.stdout is not None
    while time.monotonic() < deadline:
        line = client.stdout.readline()
        if not line:
            break  # it exited
        state.update(json.loads(line))
        if done(state):
            break
    return state


def journal_counts(path: Path) -> tuple[int, int]:
    """(jobs journaled, jobs journaled with a result) over the clusters left open."""
    journal = Journal(path)
    try:
        entries = [e for c in journal.open_clusters() for e in journal.jobs_of(c.cluster_id)]
    finally:
        journal.close()
    return len(entries), sum(1 for e in entries if e.result is not None)


def ran(marker: Path) -> Counter[str]:
    return Counter(marker.read_text().split()) if marker.exists() else Counter()


def recovery(procs: Processes, count: int, kill_after: int, seconds: float) -> dict[str, Any]:
    node = procs.node("recover-node", cpus=2)
    journal, marker = procs.tmp / "journal.sqlite", procs.tmp / "ran.txt"
    client = start_client(procs, node, journal, marker, count, seconds)
    state = read_until(client, lambda s: s.get("finished", 0) >= kill_after)
    client.kill()  # SIGKILL, by PID
    client.wait()
    journaled, with_result = journal_counts(journal)
    ran_before = ran(marker)
    started = time.monotonic()
    jobs = gridlib.recover_jobs(journal, timeout=300, pulse_interval=PULSE)
    wall = time.monotonic() - started
    runs = ran(marker)
    good = [j for j in jobs if j.status == JobStatus.Finished and j.result == j.args[0] * 10]
    procs.stop_node(node)
    return {"submitted": count, "finished_at_kill": state.get("finished", 0),
            "running_at_kill": len(state.get("running", [])), "journaled": journaled,
            "journaled_with_result": with_result, "ran_before_recovery": sum(ran_before.values()),
            "returned": len(jobs), "recovered": len(good),
            "yield": 100.0 * len(good) / journaled if journaled else 0.0,
            "statuses": dict(Counter(JobStatus(j.status).name for j in jobs)),
            "reexecuted": sum(1 for n in runs.values() if n > 1),
            "never_ran": sum(1 for i in range(count) if runs[str(i)] == 0),
            "executions": sum(runs.values()), "wall": wall}


# -- report ----------------------------------------------------------------------
def print_churn(c: dict[str, Any], period: float) -> None:
    print(f"  jobs submitted        {c['submitted']}")
    print(f"  jobs finished         {c['finished']}  (correct results: {c['finished'] - c['wrong_results']})")
    print(f"  jobs lost             {c['lost']}  (statuses: {c['statuses']})")
    for reason, n in c["why"].items():
        print(f"    {n} x {reason}")
    print(f"  duplicates delivered  {c['duplicates']}  (extra job_status calls {c['extra_callbacks']}, "
          f"cluster.duplicates {c['client_duplicates']}; jobs without a callback {c['no_callback']})")
    print(f"  stale copies dropped by the scheduler, not delivered: {c['dropped_by_scheduler']}")
    print(f"  jobs that ran again after losing their node: {c['moved']} "
          f"(highest attempt {c['max_attempt']} of max_attempts={c['max_attempts']})")
    print(f"  restarts done         {c['restarts']}  (one node SIGKILLed and restarted every {period:g} s)")
    print(f"  wall time             {c['wall']:.2f} s  (all final: {c['all_final']})")


def print_recovery(r: dict[str, Any]) -> None:
    print(f"  client killed (SIGKILL) with {r['finished_at_kill']} results in and "
          f"{r['running_at_kill']} jobs running; {r['ran_before_recovery']} jobs had run")
    print(f"  jobs journaled        {r['journaled']}  (with their result: {r['journaled_with_result']})")
    print(f"  jobs recovered with a result  {r['recovered']} of {r['returned']} returned "
          f"(statuses: {r['statuses']})")
    print(f"  yield                 {r['yield']:.1f} %")
    print(f"  jobs re-executed      {r['reexecuted']}  (executions {r['executions']} for "
          f"{r['submitted']} jobs; never ran {r['never_ran']})")
    print(f"  recovery wall time    {r['wall']:.2f} s  (recover_jobs call)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="detection trials per signal (5)")
    parser.add_argument("--quick", action="store_true",
                        help="2 trials, 80 churn jobs, 20 recovery jobs (killed after 5 results)")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="max_attempts of the churn cluster (gridlib's default: 3)")
    parser.add_argument("--churn-jobs", type=int, default=None, help="jobs of the churn run (200)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--verbose", action="store_true", help="show gridlib's own warnings")
    parser.add_argument("--only", action="append", choices=PARTS,
                        help="run only this part (repeatable; default: all)")
    args = parser.parse_args(argv)
    args.only = args.only or list(PARTS)
    args.trials = args.trials or (2 if args.quick else 5)
    churn_jobs, args.recover_jobs, args.kill_after = (80, 20, 5) if args.quick else (200, 40, 10)
    args.churn_jobs = args.churn_jobs or churn_jobs
    return args


def run_parts(args: argparse.Namespace, procs: Processes) -> None:
    if "detect" in args.only:
        print(f"\na. detection of a lost node, in heartbeat intervals ({args.trials} trials each)")
        print_detection(detection(procs, args.trials))
    if "churn" in args.only:
        print(f"\nb. churn: {args.churn_jobs} jobs of 20-120 ms, reentrant, 2 nodes x 2 CPUs")
        print_churn(churn(procs, args.churn_jobs, 2.0, args.max_attempts), 2.0)
    if "recover" in args.only:
        print(f"\nc. recovery: client with recover_file=, {args.recover_jobs} jobs of 0.3 s, "
              f"1 node x 2 CPUs, SIGKILL after {args.kill_after} results")
        print_recovery(recovery(procs, args.recover_jobs, args.kill_after, 0.3))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.verbose:  # node_lost warnings are the expected outcome here
        logging.getLogger("gridlib").setLevel(logging.ERROR)
    tmp = isolated_run("gridlib-faults-")
    procs = Processes(tmp)
    print(f"gridlib fault figures, {time.strftime('%Y-%m-%d %H:%M')}; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; heartbeat {PULSE} s; "
          f"gridlib at {revision()}")
    print(f"command: python -m bench.faults {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    try:
        run_parts(args, procs)
    finally:
        orphans = procs.stop_all()
        strays = procs.strays()
        print(f"\nprocesses: every node and client stopped by PID; {len(orphans)} node processes "
              f"outlived their node's stop and were killed by PID ({orphans or 'none'}); "
              f"left over now: {strays or 'none'}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
