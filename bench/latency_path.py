"""Where one round trip's time goes, in the client process: the p50 benchmark's work, timed hop by hop.

Run from the repository root: ``.venv/bin/python bench/latency_path.py [--trips N]``.
It measures and prints; it asserts nothing.

One ``JobCluster(task, local_cpus=2)`` (the embedded scheduler and a private local
node, CURVE on, as ``bench/bench.py`` runs it); after 200 warm-up trips, ``--trips``
(1,000) sequential no-op jobs, each submitted and waited for before the next. Five
points inside this process are stamped (``time.perf_counter``, wrapped around the
methods named below), and the median of each interval is printed:

1. ``submit()`` called (the user's thread) -> the I/O thread takes the submission
   (``ClientConnection._flush_submits``): a hand-off between two threads;
2. -> the embedded scheduler writes the job to the node's socket (``SchedulerService._send``);
3. -> the node's answer is read (``SchedulerService._read`` on the node socket): both
   libzmq I/O threads, CURVE, TCP, the node's loop, its worker, and back;
4. -> the job is done in this process (``Job._set_done``): the scheduler and the client
   handle the result on the I/O thread;
5. -> ``job()`` returns in the user's thread: a hand-off back.

A trip whose stamps are out of order (the I/O thread wrote to the node's socket for the
previous trip -- an acknowledgement -- before it took the submission) is left out; the
count of trips kept is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gridlib  # noqa: E402
from bench import task  # noqa: E402
from gridlib import client_io  # noqa: E402
from gridlib import job as job_module  # noqa: E402
from gridlib.daemons.scheduler import service  # noqa: E402

STAMPS: dict[str, float] = {}
HOPS = ["user thread -> I/O thread", "scheduler: submission -> node socket",
        "node round trip (libzmq threads, CURVE, TCP, node, worker)",
        "scheduler + client: result -> job done", "I/O thread -> user thread"]


def _stamp(cls: Any, name: str, key: str, when: Any = None) -> None:
    """Record the first call of ``cls.name`` in a trip (that ``when`` accepts) as ``key``."""
    original = getattr(cls, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if when is None or when(self, *args):
            STAMPS.setdefault(key, time.perf_counter())
        return original(self, *args, **kwargs)
    setattr(cls, name, wrapper)


def measure(trips: int) -> dict[str, float]:
    _stamp(client_io.ClientConnection, "_flush_submits", "taken")
    _stamp(service.SchedulerService, "_send", "sent", lambda s, sock, *a: sock is s.node_socket)
    _stamp(service.SchedulerService, "_read", "answered", lambda s, sock, kind: sock is s.node_socket)
    _stamp(job_module.Job, "_set_done", "done")
    rows = []
    with gridlib.JobCluster(task, local_cpus=2) as cluster:
        for _ in range(200):
            cluster.submit("noop")()
        for _ in range(trips):
            STAMPS.clear()
            start = time.perf_counter()
            cluster.submit("noop")()
            end = time.perf_counter()
            points = [start, *(STAMPS.get(k, 0.0) for k in ("taken", "sent", "answered", "done")), end]
            if all(points) and points == sorted(points):
                rows.append([b - a for a, b in zip(points, points[1:], strict=False)] + [end - start])
    return {name: statistics.median(r[i] for r in rows) * 1e6
            for i, name in enumerate([*HOPS, "total"])} | {"trips": float(len(rows))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trips", type=int, default=1000)
    args = p.parse_args(argv)
    figures = measure(args.trips)
    print(f"{int(figures.pop('trips'))} sequential no-op round trips; median of each hop, microseconds")
    for name, value in figures.items():
        print(f"{name:60s} {value:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
