"""The ``print_status`` table: per-node jobs and time, and the cluster's speedup."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gridlib.nodes import Node

__all__ = ["format_status"]


def format_status(nodes: Sequence[Node], start_time: float) -> str:
    """dispy's status table: one row a node, then totals and the speedup."""
    lines = [
        "",
        f" {'Node':<28} |  CPUs |  Jobs |  Sec/Job | Node Time Sec",
        "-" * 74,
    ]
    total_time = 0.0
    total_jobs = 0
    for node in sorted(nodes, key=lambda n: n.name):
        per_job = node.cpu_time / node.jobs_done if node.jobs_done else 0.0
        label = f"{node.name} ({node.ip_addr})"
        lines.append(f" {label:<28} | {node.cpus:>5} | {node.jobs_done:>5} | {per_job:>8.3f} | {node.cpu_time:>13.3f}")
        total_time += node.cpu_time
        total_jobs += node.jobs_done
    wall = max(time.time() - start_time, 1e-9)
    lines += [
        "",
        f"Total job time: {total_time:.3f} sec, wall time: {wall:.3f} sec, "
        f"speedup: {total_time / wall:.3f}, jobs: {total_jobs}",
        "",
    ]
    return "\n".join(lines)
