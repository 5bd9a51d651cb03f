"""Peer systems for ``bench/bench.py --peers``: dask.distributed, Ray, ipyparallel and dispy.

Role: the peers half of the benchmark of the Performance issue (``docs/benchmarks.md``,
"Peers on this machine").  Each peer gets an adapter with the small interface that
``bench.run_system`` drives (start/submit/result/wait_all/close, like ``GridlibSystem``
and ``ProcessPoolSystem``), runs bench.py's module-level ``task`` on 2 worker
processes, and talks only on 127.0.0.1.

Every run of a peer happens in a subprocess of its own (``--child``), in a new
session, a throwaway directory (also its ``TMPDIR``) and, as root, a network
namespace with only lo, so that a crash, a hang, the leftover threads or the
listening sockets of one peer never reach another peer, the bench or the network.  The
subprocess and everything it starts carry the run's directory in the environment
variable ``BENCH_PEER_RUN``; after the run, whatever still carries it (or is still
in the subprocess's process group) is ended by PID.  A peer that is not installed,
fails or times out yields "not measured: <reason>" instead of figures.

The peers live in ``.venv-peers`` (``bench/peers_env.sh``), never in gridlib's
dependencies.  Run alone: ``.venv-peers/bin/python bench/peers.py [--quick] [--peer NAME]``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

import bench  # bench/bench.py: this file's directory is first on sys.path
from bench import JOB_TIMEOUT, WAIT_TIMEOUT, WORKERS, BenchError, Sizes, task

__all__ = ["PEERS", "PeerSpec", "PeerOutcome", "PeerRuns", "measure_peer", "missing_reason",
           "outcome_from_child", "main"]

BENCH_DIR = Path(__file__).resolve().parent
RUN_MARKER = "BENCH_PEER_RUN"  # environment variable naming the run's directory
FIGURES_TAG = "PEER-FIGURES "  # the child's stdout line carrying its figures as JSON
NOT_MEASURED_TAG = "PEER-NOT-MEASURED "  # the child's stdout line carrying a reason
CLEANUP_GRACE = 5.0  # seconds a run's processes get to leave by themselves


# -- the adapters: imports in __init__, so that startup_s does not count them -----------
class DaskSystem:
    name = "dask"

    def __init__(self, run_dir: Path) -> None:
        import distributed

        self.distributed = distributed
        self.cluster: Any = None
        self.client: Any = None

    def start(self) -> None:
        self.cluster = self.distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None)
        self.client = self.distributed.Client(self.cluster)

    def submit(self, op: str, arg: Any = None) -> Any:
        # pure=False: identical calls must run as jobs of their own, not share one key
        return self.client.submit(task, op, arg, pure=False)

    def result(self, future: Any) -> Any:
        return future.result(timeout=JOB_TIMEOUT)

    def wait_all(self, futures: Sequence[Any]) -> None:
        self.distributed.wait(list(futures), timeout=WAIT_TIMEOUT)  # raises on timeout

    def close(self, failed: bool) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


class RaySystem:
    name = "ray"

    def __init__(self, run_dir: Path) -> None:
        import ray

        self.ray = ray
        self.run_dir = run_dir
        self.remote_task: Any = None

    def start(self) -> None:
        # Ray's servers listen on every interface whatever _node_ip_address says:
        # child_command gives the run a network namespace with only lo (no dashboard;
        # RAY_USAGE_STATS_ENABLED=0 in child_env)
        self.ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False,
                      _node_ip_address="127.0.0.1", _temp_dir=str(self.run_dir / "ray"),
                      object_store_memory=512 * 2**20)
        self.remote_task = self.ray.remote(num_cpus=1)(task)

    def submit(self, op: str, arg: Any = None) -> Any:
        return self.remote_task.remote(op, arg)

    def result(self, ref: Any) -> Any:
        return self.ray.get(ref, timeout=JOB_TIMEOUT)

    def wait_all(self, refs: Sequence[Any]) -> None:
        _, pending = self.ray.wait(list(refs), num_returns=len(refs), timeout=WAIT_TIMEOUT)
        if pending:
            raise BenchError(f"ray: {len(pending)} jobs not done after {WAIT_TIMEOUT} s")

    def close(self, failed: bool) -> None:
        if self.remote_task is not None:
            self.ray.shutdown()
            self.remote_task = None


class IpyparallelSystem:
    name = "ipyparallel"

    def __init__(self, run_dir: Path) -> None:
        import ipyparallel

        self.ipp = ipyparallel
        self.cluster: Any = None
        self.client: Any = None
        self.view: Any = None

    def start(self) -> None:
        # the profile goes to $IPYTHONDIR, which child_env points into the run's directory
        self.cluster = self.ipp.Cluster(n=WORKERS, controller_ip="127.0.0.1", log_level=30)
        self.client = self.cluster.start_and_connect_sync()
        self.view = self.client.load_balanced_view()

    def submit(self, op: str, arg: Any = None) -> Any:
        return self.view.apply_async(task, op, arg)

    def result(self, ar: Any) -> Any:
        return ar.get(timeout=JOB_TIMEOUT)

    def wait_all(self, ars: Sequence[Any]) -> None:
        if not self.client.wait(list(ars), timeout=WAIT_TIMEOUT):
            raise BenchError(f"ipyparallel: jobs not done after {WAIT_TIMEOUT} s")

    def close(self, failed: bool) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.stop_cluster_sync()
            self.cluster = None


class DispySystem:
    name = "dispy"

    def __init__(self, run_dir: Path) -> None:
        import dispy

        self.dispy = dispy
        self.run_dir = run_dir
        self.node: subprocess.Popen[bytes] | None = None
        self.cluster: Any = None

    def start(self) -> None:
        # a private dispynode, bound to loopback; its UDP "broadcast" pings leave from
        # 127.0.0.1, which Linux routes over lo only
        node_dir = self.run_dir / "dispynode"
        node_dir.mkdir(exist_ok=True)
        with open(self.run_dir / "dispynode.log", "wb") as log:
            self.node = subprocess.Popen(
                [sys.executable, "-m", "dispy.dispynode", "--cpus", str(WORKERS),
                 "--host", "127.0.0.1", "--daemon", "--clean", "--dest_path_prefix",
                 str(node_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        # a client started before the node never finds it (it pings the node only once)
        wait_listening(self.node, self.dispy.config.DispyPort + 1)  # config.NodePort
        self.cluster = self.dispy.JobCluster(
            task, nodes=["127.0.0.1"], host="127.0.0.1", depends=[init_depends],
            setup=dispy_setup, loglevel=self.dispy.logger.WARNING)

    def submit(self, op: str, arg: Any = None) -> Any:
        job = self.cluster.submit(op, arg)
        if job is None:
            raise BenchError("dispy: submit returned no job")
        return job

    def result(self, job: Any) -> Any:
        if not job.finish.wait(JOB_TIMEOUT):
            raise BenchError(f"dispy: job {job.id} not done after {JOB_TIMEOUT} s")
        if job.status != self.dispy.DispyJob.Finished:
            raise BenchError(f"dispy: job {job.id} ended with status {job.status}: "
                             f"{job.exception}")
        return job.result

    def wait_all(self, jobs: Sequence[Any]) -> None:
        if not self.cluster.wait(timeout=WAIT_TIMEOUT):
            raise BenchError(f"dispy: jobs not done after {WAIT_TIMEOUT} s")

    def close(self, failed: bool) -> None:
        try:
            if self.cluster is not None:
                self.cluster.close(timeout=30.0, terminate=failed)
                self.cluster.shutdown()
                self.cluster = None
        finally:
            if self.node is not None:
                stop_process_group(self.node)
                self.node = None


def init_depends() -> None:
    """Run by dispy on the node before ``task``'s source, which needs the name ``Any``.

    dispy ships a function as its source text and runs it without bench.py's
    ``from __future__ import annotations``, so the annotations are evaluated there;
    a dependency named ``init_depends`` is the hook dispy runs first.
    """
    global Any
    from typing import Any


def dispy_setup() -> int:
    """Run by dispy once on the node; a new global makes it fork every job from this process.

    Without one, dispynode forks jobs itself, and dispy 4.15.2 then races with short
    jobs: one that ends before dispynode records its PID fails with "AttributeError:
    'NoneType' object has no attribute 'pid'" (here in 2 of 4 runs of 125 short jobs).
    """
    global dispy_jobs_fork_from_setup
    dispy_jobs_fork_from_setup = True
    return 0


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    """Return once ``proc`` listens on TCP ``port``; BenchError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while not any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                  for c in psutil.Process(proc.pid).net_connections("tcp")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"dispynode did not listen on 127.0.0.1:{port} (exit {proc.poll()})")
        time.sleep(0.02)  # nothing to wait on but the port itself


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to ``proc``'s group (dispynode then ends its jobs and quits), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


Adapter = DaskSystem | RaySystem | IpyparallelSystem | DispySystem


@dataclass(frozen=True)
class PeerSpec:
    module: str  # what must be importable for the peer to be measured
    distributions: tuple[str, ...]  # whose versions the report names
    adapter: Callable[[Path], Adapter]
    setup: str  # one line for the report: how the peer is set up


PEERS: dict[str, PeerSpec] = {
    "dask": PeerSpec("distributed", ("dask", "distributed"), DaskSystem,
                     "LocalCluster(n_workers=2, threads_per_worker=1, processes=True) + Client"),
    "ray": PeerSpec("ray", ("ray",), RaySystem, "ray.init(num_cpus=2), a @ray.remote task"),
    "ipyparallel": PeerSpec("ipyparallel", ("ipyparallel",), IpyparallelSystem,
                            "ipp.Cluster(n=2), a load-balanced view"),
    "dispy": PeerSpec("dispy", ("dispy", "pycos"), DispySystem,
                      "JobCluster on a private dispynode --cpus 2 on 127.0.0.1"),
}


def missing_reason(name: str) -> str | None:
    """Why peer ``name`` cannot be measured with this interpreter, or None if it can."""
    spec = PEERS[name]
    try:
        found = importlib.util.find_spec(spec.module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return (f"{spec.module} is not installed in {sys.prefix} "
            "(`make bench-peers` installs the peers into .venv-peers)")


def peer_version(name: str) -> str:
    found = []
    for dist in PEERS[name].distributions:
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist} (not installed)")
    return ", ".join(found)


# -- the child: one run of one peer ---------------------------------------------------
def run_child(name: str, sizes: Sizes, spin_turns: int) -> int:
    reason = missing_reason(name)
    if reason:
        print(NOT_MEASURED_TAG + reason, flush=True)
        return 3
    system = PEERS[name].adapter(Path.cwd())
    payload = os.urandom(sizes.payload_bytes)
    figures = bench.run_system(system, sizes, spin_turns, payload)  # type: ignore[arg-type]
    print(FIGURES_TAG + json.dumps(asdict(figures)), flush=True)
    return 0


# -- the parent: a subprocess per run, and its clean-up ---------------------------------
@dataclass
class PeerOutcome:
    name: str
    figures: dict[str, float] | None  # None: not measured
    reason: str | None = None  # why not measured
    leftovers: list[str] = field(default_factory=list)  # processes the bench had to end


def child_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # the peers' workers import bench.py's task by reference, as module "bench"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH")) if p)
    env[RUN_MARKER] = str(run_dir)
    env["TMPDIR"] = str(run_dir / "tmp")
    env["IPYTHONDIR"] = str(run_dir / "ipython")
    env["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report to the internet
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_processes(run_dir: Path, pgid: int) -> list[psutil.Process]:
    """Live processes of a run: the marker in their environment, or in its process group."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == os.getpid() or proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        try:
            mine = (proc.environ().get(RUN_MARKER) == str(run_dir)
                    or os.getpgid(proc.pid) == pgid)
        except (psutil.Error, OSError):
            continue
        if mine:
            found.append(proc)
    return found


def end_run_processes(run_dir: Path, pgid: int) -> list[str]:
    """End what a run left behind (SIGTERM, then SIGKILL), by PID; what was ended."""
    deadline = time.monotonic() + CLEANUP_GRACE
    while (procs := run_processes(run_dir, pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling other processes' exit: there is nothing to wait on
    ended = []
    for proc in procs:
        try:
            ended.append(f"{proc.pid} {' '.join(proc.cmdline())[:100]}")
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5.0)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5.0)
    return ended


def outcome_from_child(name: str, returncode: int | None, stdout: str, stderr: str,
                       timeout: float | None = None) -> PeerOutcome:
    """What a child's exit and output say; ``timeout`` set if it had to be stopped."""
    for line in stdout.splitlines():
        if line.startswith(FIGURES_TAG) and returncode == 0:
            return PeerOutcome(name, json.loads(line[len(FIGURES_TAG):]))
        if line.startswith(NOT_MEASURED_TAG):
            return PeerOutcome(name, None, line[len(NOT_MEASURED_TAG):].strip())
    if timeout is not None:
        return PeerOutcome(name, None, f"did not finish within {timeout:.0f} s")
    last = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    detail = last[-1][:200] if last else "no output"
    return PeerOutcome(name, None, f"failed (exit {returncode}): {detail}")


@functools.cache
def netns_problem() -> str:
    """Why a run cannot have a network namespace of its own ("" when it can)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return "it needs root, unshare and ip"
    probe = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=30)
    return (probe.stderr.strip() or f"exit {probe.returncode}") if probe.returncode else ""


def child_command(name: str, sizes: Sizes, spin_turns: int) -> list[str]:
    """The child's command line, in a network namespace of its own with only lo, if possible.

    Ray's services listen on all interfaces, whatever its node address; in the namespace
    "all" is loopback, and fixed ports (dispy's 9700-9701) cannot meet other programs.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--sizes", json.dumps(asdict(sizes)), "--spin-turns", str(spin_turns)]
    if netns_problem():
        return cmd
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *cmd]


def measure_peer(name: str, sizes: Sizes, spin_turns: int) -> PeerOutcome:
    """One run of peer ``name`` in a subprocess of its own; never raises for the peer's faults."""
    reason = missing_reason(name)
    if reason:
        return PeerOutcome(name, None, reason)
    run_dir = Path(tempfile.mkdtemp(prefix="bp-"))  # short: Ray's socket paths live under it
    (run_dir / "tmp").mkdir()
    cmd = child_command(name, sizes, spin_turns)
    limit = 300.0 if sizes.noop_jobs <= 100 else 1200.0  # seconds for the whole child
    try:
        with open(run_dir / "child.out", "w+") as out, open(run_dir / "child.err", "w+") as err:
            proc = subprocess.Popen(cmd, cwd=run_dir, env=child_env(run_dir), stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
            timed_out = None
            try:
                proc.wait(limit)
            except subprocess.TimeoutExpired:
                timed_out = limit
            ended = end_run_processes(run_dir, proc.pid)  # the child too, if it timed out
            proc.wait()
            out.seek(0)
            err.seek(0)
            stderr = err.read()
            outcome = outcome_from_child(name, proc.returncode, out.read(), stderr, timed_out)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if outcome.figures is None and stderr.strip():
        print(f"{name}: the last lines of its stderr:", *stderr.splitlines()[-15:],
              sep="\n  ", file=sys.stderr)
    outcome.leftovers = [p for p in ended if not p.startswith(f"{proc.pid} ")]
    return outcome


# -- every peer over the bench's rounds ---------------------------------------------------
class PeerRuns:
    """The peers' runs over ``bench.py --peers``'s rounds, and their rows and report."""

    def __init__(self, sizes: Sizes, spin_turns: int, names: Sequence[str] = tuple(PEERS)):
        self.sizes = sizes
        self.spin_turns = spin_turns
        self.names = list(names)
        self.runs: dict[str, list[bench.Figures]] = {n: [] for n in self.names}
        self.reasons: dict[str, str] = {}
        self.leftovers: dict[str, list[str]] = {n: [] for n in self.names}

    def describe(self) -> str:
        isolation = ("each run in a network namespace with only lo" if not netns_problem()
                     else f"no network namespace ({netns_problem()})")
        return ("peers: " + "; ".join(f"{n}: {peer_version(n)}" for n in self.names)
                + f" | {isolation}")

    def run_round(self, r: int, repeat: int) -> None:
        """One run of every peer still measurable (order reversed every other round)."""
        order = self.names if r % 2 == 0 else self.names[::-1]
        for name in order:
            if name in self.reasons:
                continue
            outcome = measure_peer(name, self.sizes, self.spin_turns)
            self.leftovers[name] += outcome.leftovers
            if outcome.figures is None:
                self.reasons[name] = (f"run {r + 1}: " if r else "") + str(outcome.reason)
                print(f"run {r + 1}/{repeat} {name}: not measured: {self.reasons[name]}",
                      flush=True)
                continue
            self.runs[name].append(bench.Figures(**outcome.figures))
            extra = f" (ended {len(outcome.leftovers)} leftover processes)" \
                if outcome.leftovers else ""
            print(f"run {r + 1}/{repeat} {name}: " + ", ".join(
                f"{k}={bench.fmt(v)}" for k, v in outcome.figures.items()) + extra, flush=True)

    def medians(self) -> dict[str, dict[str, float]]:
        return {n: bench.median_figures(self.runs[n]) for n in self.names
                if n not in self.reasons and self.runs[n]}

    def rows(self) -> list[list[str]]:
        return [bench.row(name, figures) for name, figures in self.medians().items()]

    def not_measured_lines(self, label_width: int) -> list[str]:
        return [f"{name.ljust(label_width)} | not measured: {reason}"
                for name, reason in self.reasons.items()]

    def report(self, reference: dict[str, float]) -> dict[str, Any]:
        """The ``peers`` section of the JSON report; ratios are over ``reference`` (the pool)."""
        med = self.medians()
        section: dict[str, Any] = {}
        for name in self.names:
            entry: dict[str, Any] = {
                "measured": name in med, "version": peer_version(name),
                "setup": PEERS[name].setup, "runs": [asdict(f) for f in self.runs[name]],
                "network_namespace": netns_problem() or True,
                "leftover_processes_ended": self.leftovers[name]}
            if name in med:
                entry["median"] = med[name]
                entry["ratio_over_processpool"] = {
                    k: v / reference[k] if reference.get(k) else None for k, v in med[name].items()}
            else:
                entry["reason"] = self.reasons.get(name, "no run")
            section[name] = entry
        return section


# -- command line -------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Measure the peer systems alone, one run each "
                                            "(bench/bench.py --peers measures them with gridlib).")
    p.add_argument("--quick", action="store_true", help="bench.py's --quick sizes")
    p.add_argument("--peer", action="append", choices=sorted(PEERS), metavar="NAME",
                   help=f"a peer to measure (repeatable; default all: {', '.join(PEERS)})")
    p.add_argument("--child", choices=sorted(PEERS), help=argparse.SUPPRESS)
    p.add_argument("--sizes", help=argparse.SUPPRESS)
    p.add_argument("--spin-turns", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child, Sizes(**json.loads(args.sizes)), args.spin_turns)
    sizes = bench.QUICK if args.quick else bench.FULL
    names = args.peer or list(PEERS)
    # calibration only matters when some peer will run
    spin_turns = bench.calibrate(sizes.cpu_job_seconds)[0] \
        if any(missing_reason(n) is None for n in names) else 1
    peers = PeerRuns(sizes, spin_turns, names)
    print(peers.describe())
    peers.run_round(0, 1)
    rows = peers.rows()
    label_width = max([len("system"), *(len(n) for n in names)])
    if rows:
        print(bench.table(rows))
    for line in peers.not_measured_lines(label_width):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
