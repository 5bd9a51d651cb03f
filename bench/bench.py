"""gridlib against ``concurrent.futures.ProcessPoolExecutor``, both in the same run.

Run: ``make bench`` (or ``.venv/bin/python bench/bench.py [--quick] [--repeat N] [--json PATH]``);
``make bench-peers`` adds ``--peers``: dask, Ray, ipyparallel and dispy (``bench/peers.py``).

Both systems get 2 worker processes on this machine and run the same
module-level function, ``task``.  gridlib is a ``JobCluster`` with its
embedded scheduler and a private local node (``local_cpus=2``), CurveZMQ on
the node link as always; the pool is ``ProcessPoolExecutor(2)`` with the
platform's default start method.  For each system and each run:

1. startup: seconds from constructing the cluster/executor to the first
   result of a no-op job;
2. throughput: no-op jobs per second, all submitted at once, then all waited;
3. latency: median and p99 of sequential round trips (submit, wait, next);
4. payload: MB/s (1 MB = 10**6 bytes) for jobs echoing a 1 MiB ``bytes``
   argument back, counting the bytes sent AND received (2 MiB per job);
5. CPU efficiency: jobs of ~50 ms pure-Python CPU work (a busy loop calibrated
   once in this process); sum of each job's own CPU time (measured in the
   job) divided by (wall time x 2 workers).

Each run also measures the wire's floor (``bench/wire_floor.py``: bare pyzmq
between two processes, CURVE on, the same workloads without any job system)
and prints it as a reference row; the payload target is also checked against
its echo.

With ``--repeat N`` every figure is the median of N runs; the order of the two
systems alternates from run to run.  A table and the gridlib/ProcessPool ratio
of every column are printed; ``--json PATH`` also writes every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass
from typing import Any

import wire_floor  # bench/wire_floor.py, beside this script
from wire_floor import percentile

import gridlib
from gridlib.cluster import DEFAULT_NODE_PORT
from gridlib.local_node import node_listening

WORKERS = 2
MIB = 1 << 20
JOB_TIMEOUT = 120.0  # seconds one job may take before the bench gives up
WAIT_TIMEOUT = 600.0  # seconds a whole batch may take
CPU_JOB_SECONDS = 0.05


# -- the work: one module-level function for both systems ------------------------
def task(op: str, arg: Any = None) -> Any:
    """``noop`` -> None; ``echo`` -> ``arg``; ``spin`` -> CPU seconds of ``arg`` loop turns."""
    if op == "noop":
        return None
    if op == "echo":
        return arg
    if op == "spin":
        import time

        start = time.thread_time()
        x = 0
        for i in range(arg):
            x += i
        return time.thread_time() - start
    raise ValueError(f"unknown op {op!r}")


def calibrate(seconds: float = CPU_JOB_SECONDS) -> tuple[int, float]:
    """Loop turns for ``seconds`` of CPU in ``task('spin')`` here; (turns, turns per second)."""
    turns = 10_000
    while task("spin", turns) < 0.02:
        turns *= 2
    rate = max(turns / task("spin", turns) for _ in range(5))
    return max(1, round(rate * seconds)), rate


# -- sizes and figures ------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    noop_jobs: int
    round_trips: int
    payload_jobs: int
    payload_bytes: int
    cpu_jobs: int
    cpu_job_seconds: float


FULL = Sizes(noop_jobs=2000, round_trips=200, payload_jobs=100, payload_bytes=MIB,
             cpu_jobs=40, cpu_job_seconds=CPU_JOB_SECONDS)
QUICK = Sizes(noop_jobs=100, round_trips=20, payload_jobs=5, payload_bytes=MIB,
              cpu_jobs=4, cpu_job_seconds=CPU_JOB_SECONDS)


@dataclass
class Figures:
    startup_s: float
    noop_tasks_per_s: float
    p50_ms: float
    p99_ms: float
    payload_mb_per_s: float
    cpu_efficiency: float
    close_s: float  # not in the table: time to close the cluster/executor
    cpu_job_seconds_mean: float  # not in the table: mean CPU time of one spin job


COLUMNS = ("startup_s", "noop_tasks_per_s", "p50_ms", "p99_ms", "payload_mb_per_s",
           "cpu_efficiency")


class BenchError(RuntimeError):
    pass


# -- the two systems behind one small interface -------------------------------------
class GridlibSystem:
    name = "gridlib"

    def __init__(self) -> None:
        self.cluster: Any = None

    def start(self) -> None:
        self.cluster = gridlib.JobCluster(task, local_cpus=WORKERS)

    def submit(self, op: str, arg: Any = None) -> Any:
        return self.cluster.submit(op, arg)

    def result(self, job: Any) -> Any:
        value = job(timeout=JOB_TIMEOUT)
        if job.status != gridlib.JobStatus.Finished:
            raise BenchError(f"gridlib job {job.id} ended {job.status.name}: {job.exception}")
        return value

    def wait_all(self, jobs: Sequence[Any]) -> None:
        if not self.cluster.wait(WAIT_TIMEOUT):
            raise BenchError(f"gridlib: jobs not done after {WAIT_TIMEOUT} s")

    def close(self, failed: bool) -> None:
        if self.cluster is not None:
            self.cluster.close(timeout=60.0, terminate=failed)
            self.cluster = None


def startup_with_a_running_node(samples: int) -> float:
    """Median seconds from ``JobCluster(task, nodes=[<a running node>])`` to the first result:
    one ``gridlib node --cpus 2`` started once (port 0, read from its port file), a fresh
    cluster per sample.  The node is stopped by PID."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gridlib-bench-") as tmp:
        port_file = os.path.join(tmp, "ports.json")
        node = subprocess.Popen(
            [sys.executable, "-m", "gridlib.daemons.node", "--host", "127.0.0.1", "--port", "0",
             "--port-file", port_file, "--cpus", str(WORKERS), "--dest-path-prefix", tmp,
             "--log-level", "warning"])
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(port_file):
                if node.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the node for the startup figure did not start")
                time.sleep(0.02)
            with open(port_file) as f:
                port = json.load(f)["ports"]["beacon"]
            times = []
            for _ in range(samples):
                start = time.perf_counter()
                with gridlib.JobCluster(task, nodes=[f"127.0.0.1:{port}"]) as cluster:
                    job = cluster.submit("noop")
                    job(timeout=JOB_TIMEOUT)
                    if job.status != gridlib.JobStatus.Finished:
                        raise BenchError(f"startup job ended {job.status.name}: {job.exception}")
                    times.append(time.perf_counter() - start)
            return statistics.median(times)
        finally:
            node.terminate()
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()


class ProcessPoolSystem:
    name = "ProcessPool"

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        self.pool = ProcessPoolExecutor(WORKERS)

    def submit(self, op: str, arg: Any = None) -> Future[Any]:
        assert self.pool is not None
        return self.pool.submit(task, op, arg)

    def result(self, future: Future[Any]) -> Any:
        return future.result(JOB_TIMEOUT)

    def wait_all(self, futures: Sequence[Future[Any]]) -> None:
        _, not_done = futures_wait(futures, WAIT_TIMEOUT)
        if not_done:
            raise BenchError(f"ProcessPool: {len(not_done)} jobs not done after {WAIT_TIMEOUT} s")

    def close(self, failed: bool) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=failed)
            self.pool = None


System = GridlibSystem | ProcessPoolSystem


# -- one run of one system -----------------------------------------------------------
def run_system(system: System, sizes: Sizes, spin_turns: int, payload: bytes) -> Figures:
    clock = time.perf_counter
    failed = True
    t0 = clock()
    system.start()
    try:
        # 1. startup: construction to the first result of a no-op job
        system.result(system.submit("noop"))
        startup = clock() - t0

        # 2. throughput: every no-op job submitted at once, then all waited
        t0 = clock()
        handles = [system.submit("noop") for _ in range(sizes.noop_jobs)]
        system.wait_all(handles)
        noop_rate = sizes.noop_jobs / (clock() - t0)
        for h in handles:
            system.result(h)

        # 3. latency: sequential round trips
        samples = []
        for _ in range(sizes.round_trips):
            t0 = clock()
            system.result(system.submit("noop"))
            samples.append(clock() - t0)

        # 4. payload: 1 MiB out and the same 1 MiB back, per job
        t0 = clock()
        handles = [system.submit("echo", payload) for _ in range(sizes.payload_jobs)]
        system.wait_all(handles)
        payload_time = clock() - t0
        for h in handles:
            if system.result(h) != payload:
                raise BenchError(f"{system.name}: an echoed payload came back different")
        moved = 2 * sizes.payload_jobs * len(payload)

        # 5. CPU efficiency: ~50 ms busy loops on 2 workers
        t0 = clock()
        handles = [system.submit("spin", spin_turns) for _ in range(sizes.cpu_jobs)]
        system.wait_all(handles)
        cpu_wall = clock() - t0
        cpu_times = [float(system.result(h)) for h in handles]
        failed = False
    finally:
        t_close = clock()
        system.close(failed)
        close_s = clock() - t_close
    return Figures(
        startup_s=startup,
        noop_tasks_per_s=noop_rate,
        p50_ms=statistics.median(samples) * 1e3,
        p99_ms=percentile(samples, 99) * 1e3,
        payload_mb_per_s=moved / payload_time / 1e6,
        cpu_efficiency=sum(cpu_times) / (cpu_wall * WORKERS),
        close_s=close_s,
        cpu_job_seconds_mean=statistics.fmean(cpu_times),
    )


# -- output --------------------------------------------------------------------------
def fmt(x: float) -> str:
    """About three significant digits, never in exponent notation."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


HEADER = ("system", "startup s", "no-op tasks/s", "p50/p99 ms", "MB/s", "CPU eff")


def row(label: str, f: dict[str, float]) -> list[str]:
    return [label, fmt(f["startup_s"]), fmt(f["noop_tasks_per_s"]),
            f"{fmt(f['p50_ms'])}/{fmt(f['p99_ms'])}", fmt(f["payload_mb_per_s"]),
            fmt(f["cpu_efficiency"])]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(HEADER), *rows]) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(HEADER), sep, *(line(r) for r in rows)])


# The performance targets (docs/benchmarks.md): each a ratio of gridlib's figure to the pool's
# in the same run, except startup: seconds to the first result with the private local node, and
# with a node already running (``startup_with_a_running_node``).
# (column, what is compared, bound, "max" or "min")
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("startup_s", "seconds", 0.6, "max"),
    ("startup_node_running_s", "seconds", 0.35, "max"),
    ("noop_tasks_per_s", "ratio", 1.0, "min"),
    ("p50_ms", "ratio", 2.0, "max"),
    ("p99_ms", "ratio", 3.0, "max"),
    ("payload_mb_per_s", "ratio", 1.0, "min"),
    ("payload_mb_per_s", "floor", 0.6, "min"),
)
BOUND_UNIT = {"seconds": " s", "ratio": " x pool", "floor": " x wire floor"}


def target_rows(gridlib_figures: dict[str, float], ratio: dict[str, float],
                floor: dict[str, float]) -> list[dict[str, Any]]:
    """Each target with gridlib's figure, the ratio to the pool (or to the wire's floor,
    ``floor``: ``wire_floor.measure``'s figures), and whether it is met."""
    rows = []
    for column, kind, bound, sense in TARGETS:
        if column not in gridlib_figures:
            continue
        if kind == "seconds":
            value = gridlib_figures[column]
        elif kind == "floor":
            value = gridlib_figures[column] / floor[FLOOR_COLUMN[column]]
        else:
            value = ratio[column]
        met = value <= bound if sense == "max" else value >= bound
        rows.append({"column": column, "compared": kind, "value": value,
                     "target": f"{'<=' if sense == 'max' else '>='} {bound:g}{BOUND_UNIT[kind]}",
                     "met": met})
    return rows


def target_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The targets as two last rows of the main table: each column's bound, and whether it is met."""
    by_column = {r["column"]: r for r in rows if r["compared"] != "floor"}

    def cell(*columns: str, bound: bool) -> str:
        found = [by_column[c] for c in columns if c in by_column]  # (the pool's, not the floor's)
        if bound:
            return "/".join(r["target"].replace(" x pool", "").replace(" ", "") for r in found)
        return "/".join("yes" if r["met"] else "NO" for r in found)

    return [[label, cell("startup_s", bound=b), cell("noop_tasks_per_s", bound=b),
             cell("p50_ms", "p99_ms", bound=b), cell("payload_mb_per_s", bound=b), ""]
            for label, b in (("target (gridlib/pool)", True), ("target met", False))]


def targets_table(rows: list[dict[str, Any]]) -> str:
    header = ("target", "gridlib", "bound", "met")
    label = {"ratio": " (gridlib/pool)", "floor": " (gridlib/wire floor)", "seconds": " (s)"}
    cells = [[r["column"] + label[r["compared"]],
              fmt(r["value"]), r["target"], "yes" if r["met"] else "NO"] for r in rows]
    widths = [max(len(c[i]) for c in [list(header), *cells]) for i in range(len(header))]

    def line(c: Sequence[str]) -> str:
        return " | ".join(x.ljust(w) if i == 0 else x.rjust(w)
                          for i, (x, w) in enumerate(zip(c, widths, strict=True)))

    met = sum(r["met"] for r in rows)
    return "\n".join([line(header), "-+-".join("-" * w for w in widths),
                      *(line(c) for c in cells), f"{met} of {len(rows)} targets met"])


LOWER_IS_BETTER = ("startup_s", "p50_ms", "p99_ms")


def ahead_of_peers(ours: dict[str, float], peers: dict[str, dict[str, float]]) -> list[str]:
    """One line per column: is gridlib ahead of every peer measured (the best one named)?"""
    lines = []
    for column in COLUMNS:
        figures = {name: f[column] for name, f in peers.items() if column in f}
        if not figures:
            continue
        low = column in LOWER_IS_BETTER
        best = min(figures, key=figures.__getitem__) if low else max(figures, key=figures.__getitem__)
        ahead = ours[column] < figures[best] if low else ours[column] > figures[best]
        lines.append(f"ahead of every peer on {column}: {'yes' if ahead else 'NO'} "
                     f"(gridlib {fmt(ours[column])}, best peer {best} {fmt(figures[best])})")
    return lines


def median_figures(runs: list[Figures]) -> dict[str, float]:
    return {k: statistics.median(getattr(r, k) for r in runs) for k in asdict(runs[0])}


# The wire floor's figure each column is compared with (no-op tasks: 1-byte messages).
FLOOR_COLUMN = {"noop_tasks_per_s": "messages_per_s", "p50_ms": "p50_ms", "p99_ms": "p99_ms",
                "payload_mb_per_s": "echo_mb_per_s"}


def floor_row(f: dict[str, float]) -> list[str]:
    return ["wire floor (bare pyzmq)", "-", fmt(f["messages_per_s"]),
            f"{fmt(f['p50_ms'])}/{fmt(f['p99_ms'])}", fmt(f["echo_mb_per_s"]), "-"]


def measure_floor(sizes: Sizes) -> dict[str, float]:
    return wire_floor.measure(round_trips=sizes.round_trips, messages=sizes.noop_jobs,
                              echoes=sizes.payload_jobs, size=sizes.payload_bytes)


# -- main ------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (CI smoke): 100 no-op jobs, 20 round trips, 5 payloads, 4 CPU jobs")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="runs per system; every figure is the median of the N runs (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    p.add_argument("--peers", action="store_true",
                   help="also measure dask, Ray, ipyparallel and dispy (bench/peers.py), each in "
                        "a subprocess; `make bench-peers` installs them into .venv-peers")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if node_listening("127.0.0.1", DEFAULT_NODE_PORT):
        print(f"a gridlib node already listens on 127.0.0.1:{DEFAULT_NODE_PORT}: JobCluster would "
              "use it instead of a private 2-CPU node; stop it and run the bench again",
              file=sys.stderr)
        return 2
    start_method = multiprocessing.get_start_method()
    spin_turns, spin_rate = calibrate(sizes.cpu_job_seconds)
    payload = os.urandom(sizes.payload_bytes)
    when = dt.datetime.now(dt.timezone.utc)
    load = os.getloadavg()[0]  # other work on the machine skews every figure
    print(f"gridlib {gridlib.__version__} vs ProcessPoolExecutor({WORKERS}, {start_method}) | "
          f"Python {platform.python_version()} | {platform.system()} {platform.machine()} | "
          f"{os.cpu_count()} CPUs | load {load:.2f} | {when:%Y-%m-%d %H:%M} UTC")
    print(f"sizes: {sizes.noop_jobs} no-op jobs, {sizes.round_trips} round trips, "
          f"{sizes.payload_jobs} x {sizes.payload_bytes} B echoes, {sizes.cpu_jobs} CPU jobs of "
          f"{spin_turns} loop turns (~{sizes.cpu_job_seconds * 1e3:.0f} ms); {args.repeat} run(s)")

    peer_runs = None
    if args.peers:
        from peers import PeerRuns  # bench/peers.py, beside this script

        peer_runs = PeerRuns(sizes, spin_turns)
        print(peer_runs.describe())

    makers: list[Callable[[], System]] = [GridlibSystem, ProcessPoolSystem]
    runs: dict[str, list[Figures]] = {"gridlib": [], "ProcessPool": []}
    floor_runs: list[dict[str, float]] = []
    for r in range(args.repeat):
        order = makers if r % 2 == 0 else makers[::-1]
        for make in order:
            system = make()
            figures = run_system(system, sizes, spin_turns, payload)
            runs[system.name].append(figures)
            print(f"run {r + 1}/{args.repeat} {system.name}: " + ", ".join(
                f"{k}={fmt(v)}" for k, v in asdict(figures).items()), flush=True)
        floor_runs.append(measure_floor(sizes))
        print(f"run {r + 1}/{args.repeat} wire floor: " + ", ".join(
            f"{k}={fmt(v)}" for k, v in floor_runs[-1].items()), flush=True)
        if peer_runs:
            peer_runs.run_round(r, args.repeat)

    med = {name: median_figures(figs) for name, figs in runs.items()}
    floor = {k: statistics.median(f[k] for f in floor_runs) for k in floor_runs[0]}
    ratio = {k: med["gridlib"][k] / med["ProcessPool"][k] for k in med["gridlib"]}
    node_running = startup_with_a_running_node(3 if args.quick else 7)
    targets = target_rows({**med["gridlib"], "startup_node_running_s": node_running}, ratio, floor)
    rows = [row("gridlib", med["gridlib"]), row("ProcessPool", med["ProcessPool"]),
            *(peer_runs.rows() if peer_runs else []), floor_row(floor),
            row("gridlib/ProcessPool", ratio), *target_cells(targets)]
    what = f"median of {args.repeat} runs" if args.repeat > 1 else "1 run"
    print(f"\n{what}; MB/s counts bytes sent and received (1 MB = 10^6 B); "
          "ratio > 1: gridlib is larger (worse for startup and ms, better for the rest); "
          "wire floor: bare pyzmq between two processes, CURVE on, 1-byte messages for tasks")
    print(table(rows))
    for line in peer_runs.not_measured_lines(len("gridlib/ProcessPool")) if peer_runs else []:
        print(line)
    print(f"\nstartup with a node already running (median): {fmt(node_running)} s")
    print("\ntargets (docs/benchmarks.md):")
    print(targets_table(targets))
    if peer_runs:
        for line in ahead_of_peers(med["gridlib"], peer_runs.medians()):
            print(line)

    if args.json:
        report = {
            "date": when.isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(), "gridlib": gridlib.__version__,
                        "pool_start_method": start_method, "workers": WORKERS,
                        "load_average_1min_at_start": load},
            "sizes": asdict(sizes),
            "calibration": {"spin_turns": spin_turns, "turns_per_cpu_second": spin_rate},
            "columns": list(COLUMNS),
            "runs": {name: [asdict(f) for f in figs] for name, figs in runs.items()},
            "median": med,
            "ratio_gridlib_over_processpool": ratio,
            "wire_floor": {"runs": floor_runs, "median": floor},
            "startup_node_running_s": node_running,
            "targets": targets,
        }
        if peer_runs:
            report["peers"] = peer_runs.report(med["ProcessPool"])
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
