"""Where a queued job's bytes go, line by line, in the client and its embedded scheduler.

Run from the repository root: ``.venv/bin/python bench/queue_memory.py [--jobs N] [--json PATH]``
(about 30 s for the default 20,000 jobs: tracemalloc slows Python several times over).

A ``JobCluster(task, nodes=[<a port nobody listens on>])`` has no node, so every job it
submits stays queued in its embedded scheduler.  With ``tracemalloc`` on (30 frames), ``--jobs``
no-op jobs are submitted; once the scheduler holds them all, every allocation made since
and still alive is charged to the newest gridlib frame that made it, and summed per line
and per part: the client (``gridlib/*.py``), the scheduler (``gridlib/daemons/scheduler``)
and the rest (``gridlib/daemons/runtime``: the pickled arguments, which the scheduler keeps
until it sends them).  ``bench/scale.py --million`` measures the same thing as RSS with a
node running; this says which line holds the bytes.  It asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import linecache
import logging
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import gridlib  # noqa: E402
from bench.harness import end_run, isolated_run, revision, write_json  # noqa: E402
from tests.helpers import free_port, wait_for  # noqa: E402

GRIDLIB = str(Path(gridlib.__file__).resolve().parent) + os.sep


def task(op: str = "noop") -> None:
    """The no-op job."""
    return None


def part_of(path: str) -> str:
    rel = path[len(GRIDLIB):]
    if rel.startswith("daemons/scheduler/"):
        return "scheduler"
    return "client" if os.sep not in rel else "other"


def measure(jobs: int) -> dict[str, Any]:
    cluster = gridlib.JobCluster(task, nodes=[f"127.0.0.1:{free_port()}"])
    try:
        core = cluster._conn.scheduler.core
        gc.collect()
        tracemalloc.start(30)
        before = tracemalloc.take_snapshot()
        handles = [cluster.submit() for _ in range(jobs)]
        if not wait_for(lambda: len(core.jobs) >= jobs, 120, interval=0.05):
            raise RuntimeError(f"the scheduler holds {len(core.jobs)} of {jobs} jobs after 120 s")
        time.sleep(0.2)  # the I/O thread's turn that stored the last batch is over
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        lines: Counter[tuple[str, int]] = Counter()
        for stat in after.compare_to(before, "traceback"):
            if stat.size_diff <= 0:
                continue
            frame = next((f for f in reversed(stat.traceback) if f.filename.startswith(GRIDLIB)), None)
            if frame is not None:  # not gridlib's (the handles list above, tracemalloc itself)
                lines[frame.filename, frame.lineno] += stat.size_diff
        del handles
    finally:
        cluster.close(timeout=10.0, terminate=True)
    rows = [{"part": part_of(path), "where": f"{path[len(GRIDLIB):]}:{line}",
             "code": linecache.getline(path, line).strip(), "bytes_per_job": size / jobs}
            for (path, line), size in lines.most_common()]
    parts = Counter[str]()
    for row in rows:
        parts[row["part"]] += row["bytes_per_job"]
    return {"jobs": jobs, "bytes_per_job": sum(parts.values()), "parts": dict(parts), "lines": rows}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=20_000, help="jobs queued (default 20000)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.jobs < 100:
        p.error("--jobs must be at least 100")
    logging.getLogger("gridlib").setLevel(logging.ERROR)  # "no node can run them": on purpose
    tmp = isolated_run("gridlib-queue-memory-")
    try:
        report = measure(args.jobs) | {"revision": revision()}
    finally:
        left = end_run(tmp)
    print(f"gridlib at {report['revision']}: {args.jobs} jobs queued, no node; bytes per queued job "
          f"still held, by the gridlib line that allocated them (tracemalloc)")
    for row in report["lines"]:
        if row["bytes_per_job"] >= 1.0:
            print(f"{row['bytes_per_job']:8.1f}  {row['part']:<9}  {row['where']:<42}  {row['code'][:70]}")
    print("  per part: " + ", ".join(f"{part} {size:.0f}" for part, size in sorted(report["parts"].items()))
          + f"; total {report['bytes_per_job']:.0f} B per queued job")
    print(f"processes left over: {left or 'none'}")
    write_json(args.json, report)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
