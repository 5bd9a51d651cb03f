"""Where a no-op job's cost goes: CPU time and wake-ups per job, per process and per thread.

Run from the repository root: ``.venv/bin/python bench/cost_per_job.py [--jobs N] [--json PATH]``
(``--echo 1048576 --jobs 400``: jobs that echo 1 MiB instead, the payload benchmark's work).
It measures and prints; it asserts nothing.

One ``JobCluster(task, local_cpus=2)`` (the embedded scheduler and a private
local node, CURVE on the node link, as ``bench/bench.py`` runs it).  After a
warm-up of 2,000 jobs, ``--jobs`` no-op jobs (30,000) are submitted at once and
waited for.  Before and after, it reads each process's CPU time and context
switches (``psutil``): this process per thread (the user's thread, the I/O
thread that runs the scheduler and the client's I/O, the delivery thread,
libzmq's own I/O thread), the node daemon, and each of its worker processes.
Figures are per job: CPU microseconds and wake-ups (voluntary context switches:
each time a process waits for a socket, a pipe or a timer and is woken).  The
sum of CPU per job against the cores this machine has gives the ceiling the
current design can reach here: ``cores / total CPU per job``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gridlib  # noqa: E402
from bench import task  # noqa: E402  (the same module-level function bench.py runs)


def _role(proc: psutil.Process, node_pid: int) -> str:
    if proc.pid == node_pid:
        return "node daemon"
    cmd = " ".join(proc.cmdline())
    if "resource_tracker" in cmd:
        return "resource tracker"
    if proc.ppid() != node_pid and "forkserver" in cmd:
        return "worker"
    return "forkserver" if "forkserver" in cmd else "other"


def _wakeups(pid: int, tid: int | None = None) -> float:
    """Voluntary context switches of one thread, or of every thread of ``pid`` (Linux /proc;
    psutil's figure is the main thread's alone)."""
    tids = [tid] if tid is not None else [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    total = 0
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            continue  # the thread ended meanwhile
    return float(total)


def _snapshot(me: psutil.Process) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    names = {t.native_id: t.name for t in threading.enumerate()}
    for t in me.threads():
        name = names.get(t.id, "libzmq I/O" if t.id not in names else str(t.id))
        key = f"client: {name}"
        entry = out.setdefault(key, {"cpu": 0.0, "wakeups": 0.0})
        entry["cpu"] += t.user_time + t.system_time
        entry["wakeups"] += _wakeups(me.pid, t.id)
    out["client process (all threads)"] = {"cpu": sum(e["cpu"] for e in out.values()),
                                           "wakeups": _wakeups(me.pid)}
    children = me.children(recursive=True)
    node_pid = next((p.pid for p in children if "gridlib.daemons.node" in " ".join(p.cmdline())), -1)
    workers = 0
    for proc in children:
        try:
            role = _role(proc, node_pid)
            if role == "worker":
                workers += 1
                role = f"worker {workers}"
            times = proc.cpu_times()
        except psutil.Error:
            continue
        out[role] = {"cpu": times.user + times.system, "wakeups": _wakeups(proc.pid)}
        if role == "node daemon":
            _node_threads(proc, out)
    return out


def _node_threads(proc: psutil.Process, out: dict[str, dict[str, float]]) -> None:
    """The node daemon per thread, named by the kernel (its main thread runs the reactor;
    libzmq's are ``ZMQbg/IO/0`` and ``ZMQbg/Reaper``)."""
    try:
        threads = proc.threads()
    except psutil.Error:
        return
    for t in threads:
        try:
            with open(f"/proc/{proc.pid}/task/{t.id}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        name = "main" if t.id == proc.pid else name
        entry = out.setdefault(f"node: {name}", {"cpu": 0.0, "wakeups": 0.0})
        entry["cpu"] += t.user_time + t.system_time
        entry["wakeups"] += _wakeups(proc.pid, t.id)


def measure(jobs: int, echo: int = 0, sequential: bool = False) -> dict[str, Any]:
    """``echo``: bytes each job echoes (0: no-op jobs); ``sequential``: one job at a time,
    each waited for before the next is submitted (the latency benchmark's work)."""
    me = psutil.Process()
    args = ("echo", b"x" * echo) if echo else ("noop",)
    with gridlib.JobCluster(task, local_cpus=2) as cluster:
        for job in [cluster.submit(*args) for _ in range(min(2000, jobs))]:  # warm-up: workers, caches
            job()
        before = _snapshot(me)
        start = time.perf_counter()
        if sequential:
            for _ in range(jobs):
                cluster.submit(*args)()
        else:
            handles = [cluster.submit(*args) for _ in range(jobs)]
            for job in handles:
                job()
        wall = time.perf_counter() - start
        after = _snapshot(me)
    rows = {}
    for key, end in after.items():
        begin = before.get(key, {"cpu": 0.0, "wakeups": 0.0})
        rows[key] = {"cpu_us_per_job": (end["cpu"] - begin["cpu"]) / jobs * 1e6,
                     "wakeups_per_job": (end["wakeups"] - begin["wakeups"]) / jobs}
    total = sum(r["cpu_us_per_job"] for k, r in rows.items()
                if not k.startswith(("client: ", "node: "))) or 1e-9
    cores = os.cpu_count() or 1
    return {"jobs": jobs, "wall_s": wall, "jobs_per_s": jobs / wall, "rows": rows,
            "total_cpu_us_per_job": total, "cores": cores,
            "ceiling_jobs_per_s": cores / (total / 1e6)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=30_000)
    p.add_argument("--echo", type=int, default=0, metavar="BYTES",
                   help="jobs echo a bytes argument this large (e.g. 1048576, with --jobs 400) "
                        "instead of doing nothing")
    p.add_argument("--sequential", action="store_true",
                   help="one job at a time, each waited for (the round trips of the p50 figure)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    result = measure(args.jobs, args.echo, args.sequential)
    kind = (f"{args.echo}-byte echo" if args.echo else "no-op") + (" sequential" if args.sequential else "")
    print(f"{result['jobs']} {kind} jobs in {result['wall_s']:.2f} s: {result['jobs_per_s']:.0f} jobs/s "
          f"| load {os.getloadavg()[0]:.2f} | {result['cores']} cores")
    width = max(len(k) for k in result["rows"])
    print(f"{'where'.ljust(width)} | CPU us/job | wake-ups/job")  # (us: microseconds)
    for key, row in sorted(result["rows"].items(), key=lambda kv: -kv[1]["cpu_us_per_job"]):
        if row["cpu_us_per_job"] < 0.05 and row["wakeups_per_job"] < 0.005:
            continue
        wake = f"{row['wakeups_per_job']:.2f}"
        print(f"{key.ljust(width)} | {row['cpu_us_per_job']:10.1f} | {wake:>12}")
    print(f"total CPU per job {result['total_cpu_us_per_job']:.0f} us: on {result['cores']} cores "
          f"the ceiling is {result['ceiling_jobs_per_s']:.0f} jobs/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
