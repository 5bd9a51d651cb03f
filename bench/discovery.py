"""Discovery figures: how long nodes take to join a cluster, measured with real node processes.

Run from the repository root: ``.venv/bin/python -m bench.discovery [--trials N]``
(``--only discovery|late|dialout``, ``--sizes 3,20``, ``--settle S``, ``--clients N``,
``--json PATH``, ``--keep``).

This measures; it asserts nothing. Every node is a real ``gridlib node``
process on 127.0.0.1 with ``--cpus 1`` and its own free beacon port
(``tests.helpers.NodeProcess``). Every cluster uses the default heartbeat
(``pulse_interval=2.0``). The run uses a throwaway key in its own temporary
directory (``GRIDLIB_CONFIG_DIR``), never the user's key.

a. Discovery: N nodes are started and left waiting. The figure is the time from
   constructing ``JobCluster(f, nodes=[all N "127.0.0.1:port"], cluster_status=...)``
   until the N-th ``NodeStatus.Initialized`` callback (every node heard the
   beacon, dialed, registered, set up its worker and reported SETUP_OK). The
   first trial of each size runs on fresh nodes: each starts its worker
   forkserver then (cold). Later trials reuse the nodes (warm).
b. Late node: a cluster announces to a free port where no node runs yet, and
   a job is pinned to that node's name (``cluster.submit_node(name, ...)``).
   After ``settle`` seconds (plus a random 0-4 s, so that the start falls
   anywhere in the 2 s beacon and reconnect cycles; ``--late-trials`` trials)
   a node process is started on that port (Popen).
   The figure is the time from Popen until the pinned job's result is back
   at the client, split into: Popen -> node daemon ready (``event=node_started``
   in its log), -> ``NodeStatus.Initialized``, -> result. Run for a cluster
   created just before the node (beacons every 0.1 s for 3 s) and for one
   that has announced for ``--settle`` + 0-4 s (beacons every heartbeat, 2 s, and
   the beacon socket's reconnect interval backed off to 2 s).
c. Dial-out node: ``gridlib node --port 0 --scheduler 127.0.0.1:P`` (no beacon
   port, as behind NAT) serves ``--clients`` clients one after another, each
   ``JobCluster(f, nodes=[], scheduler_port=P)``. The figure is the time from
   constructing each cluster to its first result. The node keeps dialing the
   port; a new scheduler there gets its READY once the node has given the old
   one up (heartbeat x 5 missed = 10 s).

Every process started here is stopped by PID at the end (``NodeProcess.stop``);
processes that outlived their node's stop are reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gridlib  # noqa: E402
from bench.harness import isolated_run
from gridlib import JobStatus, NodeStatus  # noqa: E402
from tests.helpers import NodeProcess, free_port  # noqa: E402

WAIT = 120.0  # seconds any one step may take before the trial counts as failed


def ping(tag):  # type: ignore[no-untyped-def]
    """The trivial job: where it ran."""
    from gridlib import job_context
    return tag, job_context().node_name


# -- processes ---------------------------------------------------------------------
class Nodes:
    """Every node process this run starts, stopped by PID at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.all: list[NodeProcess] = []
        self._ports: set[int] = set()
        self._lock = threading.Lock()

    def port(self) -> int:
        with self._lock:
            while True:
                port = free_port()
                if port not in self._ports:
                    self._ports.add(port)
                    return port

    def start(self, name: str, port: int | None = None) -> NodeProcess:
        node = NodeProcess(port or self.port(), self.tmp, "--cpus", "1", "--name", name)
        with self._lock:
            self.all.append(node)
        return node

    def stop(self, nodes: list[NodeProcess]) -> list[int]:
        orphans: list[int] = []
        for node in nodes:
            if node in self.all:
                node.stop()
                orphans += node.orphans
                self.all.remove(node)
        return orphans

    def stop_all(self) -> list[int]:
        return self.stop(list(self.all))


@contextmanager
def cluster_of(addresses: list[str], on_status: Any) -> Iterator[gridlib.JobCluster]:
    cluster = gridlib.JobCluster(ping, nodes=addresses, cluster_status=on_status)
    try:
        yield cluster
    finally:
        cluster.close(terminate=True)


# -- a. discovery of N nodes --------------------------------------------------------------
@dataclass
class Discovery:
    nodes: int
    seconds: list[float] = field(default_factory=list)  # per trial; trial 1 cold
    first: list[float] = field(default_factory=list)  # first Initialized, per trial
    node_start: float = 0.0  # median seconds from Popen to event=node_started
    failed: int = 0


def discover(nodes: list[NodeProcess]) -> tuple[float, float] | None:
    """Seconds from JobCluster() to the first and the N-th Initialized; None on timeout."""
    seen: dict[str, float] = {}
    done = threading.Event()
    lock = threading.Lock()

    def status(st, node, job):  # type: ignore[no-untyped-def]
        if st == NodeStatus.Initialized and node is not None:
            with lock:
                seen.setdefault(node.name, time.monotonic())
                if len(seen) == len(nodes):
                    done.set()

    addresses = [f"127.0.0.1:{n.port}" for n in nodes]
    t0 = time.monotonic()
    with cluster_of(addresses, status) as cluster:
        ok = done.wait(WAIT)
        if ok:  # prove the cluster works: one job
            cluster.submit("check")(timeout=WAIT)
    if not ok:
        return None
    return min(seen.values()) - t0, max(seen.values()) - t0


def run_discovery(procs: Nodes, size: int, trials: int) -> Discovery:
    out = Discovery(size)
    starts: list[float] = []

    def timed_start(name: str) -> NodeProcess:
        wall0 = time.time()
        node = procs.start(name)
        starts.append(_started_after(node, wall0))
        return node

    nodes = [timed_start(f"d{size}-{i}") for i in range(size)]  # one after another
    out.node_start = statistics.median(starts)
    try:
        for _ in range(trials):
            got = discover(nodes)
            if got is None:
                out.failed += 1
                continue
            out.first.append(got[0])
            out.seconds.append(got[1])
    finally:
        orphans = procs.stop(nodes)
        if orphans:
            print(f"  ({size} nodes: {len(orphans)} processes outlived their node: {orphans})")
    return out


# -- b. a node started while a cluster announces to its address ------------------------------
@dataclass
class LateNode:
    settle: float  # seconds the cluster announced before the node was started
    total: list[float] = field(default_factory=list)  # Popen -> result
    started: list[float] = field(default_factory=list)  # Popen -> node_started
    initialized: list[float] = field(default_factory=list)  # Popen -> Initialized
    failed: int = 0


def late_trial(procs: Nodes, settle: float, index: int) -> tuple[float, float, float] | None:
    port = procs.port()
    name = f"late-{index}"
    initialized: dict[str, float] = {}

    def status(st, node, job):  # type: ignore[no-untyped-def]
        if st == NodeStatus.Initialized and node is not None:
            initialized.setdefault(node.name, time.monotonic())

    node = None
    try:
        with cluster_of([f"127.0.0.1:{port}"], status) as cluster:
            job = cluster.submit_node(name, "late")  # waits in the queue for that node
            time.sleep(settle + (random.uniform(0.0, 4.0) if settle else 0.0))
            t0, wall0 = time.monotonic(), time.time()
            node = procs.start(name, port)  # Popen, then waits for event=node_started
            ready = _started_after(node, wall0)
            job(timeout=WAIT)
            t_result = time.monotonic()
            if job.status != JobStatus.Finished or job.node != name:
                return None
            return ready, initialized.get(name, t_result) - t0, t_result - t0
    finally:
        if node is not None:
            procs.stop([node])


def _started_after(node: NodeProcess, wall0: float) -> float:
    """Seconds from ``wall0`` (wall clock) to the time stamp of the node's event=node_started."""
    for line in node.log().splitlines():
        if "event=node_started" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp() - wall0
    return float("nan")


def run_late(procs: Nodes, settle: float, trials: int, first_index: int) -> LateNode:
    out = LateNode(settle)
    for i in range(trials):
        got = late_trial(procs, settle, first_index + i)
        if got is None:
            out.failed += 1
            continue
        out.started.append(got[0])
        out.initialized.append(got[1])
        out.total.append(got[2])
    return out


# -- c. a dial-out node (--scheduler HOST:PORT) and successive clients on that port -----------
@dataclass
class DialOut:
    clients: int  # clients that used the node one after another, per trial
    seconds: list[list[float]] = field(default_factory=list)  # per trial: per client, to result
    failed: int = 0


def run_dialout(procs: Nodes, trials: int, clients: int) -> DialOut:
    """JobCluster(nodes=[], scheduler_port=P) -> first result, for successive clients."""
    out = DialOut(clients)
    for trial in range(trials):
        port = procs.port()
        node = NodeProcess(0, procs.tmp, "--cpus", "1", "--name", f"out-{trial}",
                           "--scheduler", f"127.0.0.1:{port}",
                           "--dest-path-prefix", str(procs.tmp / f"out-{trial}"))
        procs.all.append(node)
        times: list[float] = []
        try:
            for _ in range(clients):
                t0 = time.monotonic()
                cluster = gridlib.JobCluster(ping, nodes=[], scheduler_port=port)
                try:
                    job = cluster.submit("dial-out")
                    job(timeout=WAIT)
                    ok = job.status == JobStatus.Finished
                finally:
                    cluster.close(terminate=True)
                if not ok:
                    break
                times.append(time.monotonic() - t0)
        finally:
            procs.stop([node])
        if len(times) < clients:
            out.failed += 1
        else:
            out.seconds.append(times)
    return out


# -- report ----------------------------------------------------------------------------------
def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f}"


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def print_discovery(rows: list[Discovery]) -> None:
    print("\na. discovery: JobCluster(nodes=[N addresses]) -> N x NodeStatus.Initialized")
    print(f"{'nodes':>5}  {'median s':>8}  {'min-max s':>11}  {'trial 1 (cold) s':>16}  "
          f"{'first node s':>12}  {'node start s':>12}  failed")
    for r in rows:
        cold = f"{r.seconds[0]:.2f}" if r.seconds else "-"
        print(f"{r.nodes:>5}  {_fmt(r.seconds):>8}  {_span(r.seconds):>11}  {cold:>16}  "
              f"{_fmt(r.first):>12}  {r.node_start:>12.2f}  {r.failed}")


def print_late(rows: list[LateNode]) -> None:
    print("\nb. late node: Popen of a node the cluster already announces to -> its first job result")
    print(f"{'cluster age s':>13}  {'node ready s':>12}  {'Initialized s':>13}  "
          f"{'result s (median)':>17}  {'min-max s':>11}  failed")
    for r in rows:
        age = f"{r.settle:.0f}-{r.settle + 4:.0f}" if r.settle else "0"
        print(f"{age:>13}  {_fmt(r.started):>12}  {_fmt(r.initialized):>13}  "
              f"{_fmt(r.total):>17}  {_span(r.total):>11}  {r.failed}")


def print_dialout(row: DialOut) -> None:
    print("\nc. dial-out node (gridlib node --port 0 --scheduler 127.0.0.1:P), clients one after "
          "another\n   on JobCluster(nodes=[], scheduler_port=P): JobCluster() -> first result")
    print(f"{'client':>6}  {'median s':>8}  {'min-max s':>11}")
    for i in range(row.clients):
        values = [t[i] for t in row.seconds]
        print(f"{i + 1:>6}  {_fmt(values):>8}  {_span(values):>11}")
    if row.failed:
        print(f"failed trials: {row.failed}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--trials", type=int, default=3, help="trials per figure (median reported)")
    p.add_argument("--sizes", default="3,20", help="node counts for part a (comma separated)")
    p.add_argument("--late-trials", type=int, default=5, help="trials of part b, per row")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds an established cluster announced before the late node starts")
    p.add_argument("--only", choices=("discovery", "late", "dialout"), help="run one part only")
    p.add_argument("--clients", type=int, default=2, help="successive clients of the dial-out node")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (node logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("gridlib").setLevel(logging.ERROR)
    tmp = isolated_run("gridlib-discovery-")
    procs = Nodes(tmp)
    print(f"gridlib discovery figures, {time.strftime('%Y-%m-%d %H:%M')}; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; nodes on 127.0.0.1 with --cpus 1; heartbeat 2 s")
    print(f"command: python -m bench.discovery {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    discovery: list[Discovery] = []
    late: list[LateNode] = []
    dialout: DialOut | None = None
    try:
        if args.only in (None, "discovery"):
            for size in (int(s) for s in args.sizes.split(",") if s.strip()):
                discovery.append(run_discovery(procs, size, args.trials))
            print_discovery(discovery)
        if args.only in (None, "late"):
            random.seed(1)
            late.append(run_late(procs, 0.0, args.late_trials, 0))
            late.append(run_late(procs, args.settle, args.late_trials, 100))
            print_late(late)
        if args.only in (None, "dialout"):
            dialout = run_dialout(procs, args.trials, args.clients)
            print_dialout(dialout)
    finally:
        orphans = procs.stop_all()
        print(f"\nprocesses: every node stopped by PID; outlived their node's stop and killed: "
              f"{orphans or 'none'}")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "discovery": [asdict(r) for r in discovery], "late": [asdict(r) for r in late],
                "dialout": asdict(dialout) if dialout else None,
                "cpus": os.cpu_count(), "python": platform.python_version()}, indent=1))
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
