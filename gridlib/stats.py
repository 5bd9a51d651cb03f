"""``cluster.report()`` and ``print_status()``: per-node jobs and time, and the speedup.

``report()`` returns the figures as data (a :class:`ClusterReport`, with
``as_dict()`` for JSON and an HTML table for notebooks); ``print_status()``
prints them -- a ``rich`` table on a terminal, dispy's plain-text table
otherwise (logs, pipes, tests).
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from gridlib.nodes import Node

__all__ = ["NodeReport", "ClusterReport", "cluster_report", "print_report"]


@dataclass(frozen=True)
class NodeReport:
    name: str
    ip_addr: str
    cpus: int
    jobs_done: int
    sec_per_job: float
    node_time: float  #: seconds the node's CPUs spent in this cluster's jobs


@dataclass(frozen=True)
class ClusterReport:
    nodes: list[NodeReport] = field(default_factory=list)
    jobs_done: int = 0
    jobs_pending: int = 0  #: submitted, not yet final
    total_job_time: float = 0.0
    wall_time: float = 0.0  #: since the cluster was created
    speedup: float = 0.0  #: total job time / wall time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = ["", f" {'Node':<28} |  CPUs |  Jobs |  Sec/Job | Node Time Sec", "-" * 74]
        for n in self.nodes:
            label = f"{n.name} ({n.ip_addr})"
            lines.append(f" {label:<28} | {n.cpus:>5} | {n.jobs_done:>5} | {n.sec_per_job:>8.3f} "
                         f"| {n.node_time:>13.3f}")
        lines += ["", f"Total job time: {self.total_job_time:.3f} sec, wall time: "
                      f"{self.wall_time:.3f} sec, speedup: {self.speedup:.3f}, jobs: {self.jobs_done}"
                      + (f", pending: {self.jobs_pending}" if self.jobs_pending else ""), ""]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(n.name)} ({html.escape(n.ip_addr)})</td><td>{n.cpus}</td>"
                       f"<td>{n.jobs_done}</td><td>{n.sec_per_job:.3f}</td><td>{n.node_time:.3f}</td></tr>"
                       for n in self.nodes)
        return ("<table><tr><th>Node</th><th>CPUs</th><th>Jobs</th><th>Sec/Job</th>"
                f"<th>Node time (s)</th></tr>{rows}</table><p>Total job time {self.total_job_time:.3f} s, "
                f"wall time {self.wall_time:.3f} s, speedup {self.speedup:.3f}, jobs "
                f"{self.jobs_done}, pending {self.jobs_pending}</p>")


def cluster_report(nodes: Sequence[Node], start_time: float, pending: int = 0) -> ClusterReport:
    rows = [NodeReport(n.name, n.ip_addr, n.cpus, n.jobs_done,
                       n.cpu_time / n.jobs_done if n.jobs_done else 0.0, n.cpu_time)
            for n in sorted(nodes, key=lambda n: n.name)]
    total = sum(r.node_time for r in rows)
    wall = max(time.time() - start_time, 1e-9)
    return ClusterReport(rows, sum(r.jobs_done for r in rows), pending, total, wall, total / wall)


def print_report(report: ClusterReport, out: TextIO | None = None) -> None:
    """A ``rich`` table on a terminal, the plain-text table elsewhere."""
    out = out or sys.stdout
    if not out.isatty():
        print(report, file=out)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gridlib cluster")
    for name, justify in (("Node", "left"), ("CPUs", "right"), ("Jobs", "right"),
                          ("Sec/Job", "right"), ("Node time s", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for n in report.nodes:
        table.add_row(f"{n.name} ({n.ip_addr})", str(n.cpus), str(n.jobs_done),
                      f"{n.sec_per_job:.3f}", f"{n.node_time:.3f}")
    console = Console(file=out)
    console.print(table)
    console.print(f"Total job time {report.total_job_time:.3f} s, wall time {report.wall_time:.3f} s, "
                  f"speedup {report.speedup:.3f}, jobs {report.jobs_done}, pending {report.jobs_pending}")
