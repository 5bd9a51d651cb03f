"""``bench/scale.py --quick`` runs to the end, prints its three tables and writes positive figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import is_private_node_of, run_script

REPO = Path(__file__).resolve().parents[2]
SCALE = REPO / "bench" / "scale.py"
HEADERS = ("completions | ", "nodes x 2 CPUs | ", "stub nodes x 2 CPUs | ")


def _children_of(pid: int) -> list[psutil.Process]:
    """Processes the bench started: its private node (``--parent-pid PID``) and its stub process."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmd = proc.info["cmdline"] or []
        private_node = is_private_node_of(cmd, pid)
        stub = "--stub-nodes" in cmd and str(SCALE) in cmd and proc.info["ppid"] in (pid, 1)
        if private_node or stub:
            found.append(proc)
    return found


def _positive(figures: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, (key, figures)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_scale_quick_prints_positive_figures(tmp_path: Path) -> None:
    report = tmp_path / "scale.json"
    returncode, stdout, stderr, gone = run_script([str(SCALE), "--quick", "--json", str(report)],
                                                  90, _children_of)
    assert gone, "the bench left its private node or its stub nodes running"
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"
    for header in HEADERS:
        assert header in stdout, f"no table starting {header!r}:\n{stdout}"
    assert "processes left over: none" in stdout, stdout

    data = json.loads(report.read_text())
    depth = data["queue_depth"]
    assert depth["jobs"] == depth["finished"] == data["sizes"]["depth_jobs"] == 2000
    _positive(depth, "submit_s", "jobs_per_s", "warmup_jobs_per_s", "node_daemon_peak_rss_mb")
    _positive(depth["rss_mb"], "before", "after_submit", "peak", "after_done")
    # 10 windows of equal job counts, fewer when results came in batches that several shared
    windows = depth["windows"]
    assert 1 <= len(windows) <= 10 and windows[-1]["last"] == 2000
    assert [w["first"] for w in windows] == [1, *(w["last"] + 1 for w in windows[:-1])]
    for window in windows:
        _positive(window, "jobs_per_s")
        assert window["cpu_us_per_job"] >= 0, window
        assert window["gc_us_per_job"] >= 0 and window["other_processes_cores"] >= 0, window

    # the deep-queue targets: figure, bound and verdict, printed and in the JSON
    memory, drain = data["targets"]["memory"], data["targets"]["drain"]
    assert memory["bound_mb"] == 2000 and memory["how"] == "projected from 2000 jobs", memory
    _positive(memory, "at_1m_jobs_mb", "peak_rss_mb")
    assert memory["met"] == (memory["at_1m_jobs_mb"] <= 2000)
    _positive(drain, "first_cpu_us_per_job", "last_cpu_us_per_job", "cpu_ratio")
    assert drain["met"] == (drain["cpu_ratio"] <= drain["bound_ratio"])
    assert "target: 1,000,000 queued jobs, client + scheduler <= 2000 MB: " in stdout, stdout
    assert "target: no slowdown per job as the queue drains" in stdout, stdout

    core = data["core"]
    assert {(r["nodes"], r["batch"]) for r in core["sweep"]} == {
        (n, b) for n in (1, 10, 100, 1000) for b in (1, 2000)}
    for row in core["sweep"]:
        _positive(row, "submit_us_per_job", "run_us_per_job", "steady_us_per_job", "drain_us_per_job",
                  "steady_jobs", "drain_jobs")
    for row in core["depth"]:
        _positive(row, "submit_us_per_job", "run_us_per_job")
    assert {r["jobs"] for r in core["depth"]} == set(data["sizes"]["core_depths"])
    _positive(core, "bytes_per_queued_job")

    sockets = data["sockets"]
    assert [r["nodes"] for r in sockets] == [1, 10]
    for row in sockets:
        assert row["finished"] == row["jobs"] and row["nodes_used"] == row["nodes"], row
        _positive(row, "jobs_per_s", "client_cpu_us_per_job")
        # the stub's CPU for 500 jobs (batched to it) can be under one 10 ms clock tick: 0 is a reading
        assert row["stub_cpu_us_per_job"] >= 0, row
