"""``bench/bench.py --quick`` runs to the end and prints positive figures for both systems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import private_nodes_of, run_script

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench.py"
SYSTEMS = ("gridlib", "ProcessPool")
COLUMNS = 5  # startup, tasks/s, p50/p99, MB/s, CPU eff


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's cells, by system name (first cell)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == COLUMNS + 1 and cells[0] in SYSTEMS:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.timeout(240)
def test_bench_quick_prints_positive_figures(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    returncode, stdout, stderr, gone = run_script([str(BENCH), "--quick", "--json", str(report)],
                                                  180, private_nodes_of)
    assert gone, "the bench left its private gridlib node running"
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"

    rows = _table_rows(stdout)
    assert set(rows) == set(SYSTEMS), f"no table row for both systems:\n{stdout}"
    for system, cells in rows.items():
        figures = [float(x) for cell in cells for x in cell.split("/")]
        assert len(figures) == COLUMNS + 1, (system, cells)
        assert all(f > 0 for f in figures), (system, cells)

    data = json.loads(report.read_text())
    for system in SYSTEMS:
        median = data["median"][system]
        assert all(median[k] > 0 for k in data["columns"]), (system, median)
    assert data["sizes"]["noop_jobs"] == 100
    # the targets, each with gridlib's figure and a verdict, in the JSON and on screen
    targets = {t["column"]: t for t in data["targets"]}
    assert set(targets) == {"startup_s", "startup_node_running_s", "noop_tasks_per_s", "p50_ms",
                            "p99_ms", "payload_mb_per_s"}
    assert targets["startup_node_running_s"]["value"] == data["startup_node_running_s"] > 0
    ratio = data["ratio_gridlib_over_processpool"]
    assert targets["noop_tasks_per_s"]["value"] == ratio["noop_tasks_per_s"]
    assert targets["noop_tasks_per_s"]["met"] == (ratio["noop_tasks_per_s"] >= 1.0)
    assert targets["startup_s"]["value"] == data["median"]["gridlib"]["startup_s"]
    met = sum(t["met"] for t in data["targets"])
    assert f"{met} of 7 targets met" in stdout
    # the wire's floor (bare pyzmq, CURVE on) measured in the same run, and the payload's
    # second target checked against its echo
    floor = data["wire_floor"]["median"]
    assert all(floor[k] > 0 for k in ("p50_ms", "p99_ms", "messages_per_s", "echo_mb_per_s")), floor
    assert any(line.startswith("wire floor (bare pyzmq)") for line in stdout.splitlines()), stdout
    (against_floor,) = [t for t in data["targets"] if t["compared"] == "floor"]
    assert against_floor["value"] == pytest.approx(
        data["median"]["gridlib"]["payload_mb_per_s"] / floor["echo_mb_per_s"])


COST = REPO / "bench" / "cost_per_job.py"


@pytest.mark.timeout(120)
def test_cost_per_job_names_every_process_and_a_ceiling(tmp_path: Path) -> None:
    report = tmp_path / "cost.json"
    returncode, stdout, stderr, gone = run_script([str(COST), "--jobs", "300", "--json", str(report)],
                                                  90, private_nodes_of)
    assert gone, "the bench left its private gridlib node running"
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"
    data = json.loads(report.read_text())
    rows = data["rows"]
    assert {"node daemon", "node: main", "client process (all threads)", "client: gridlib-io"} <= set(rows), rows
    assert any(k.startswith("worker ") for k in rows), rows
    assert rows["node daemon"]["cpu_us_per_job"] > 0 and rows["client: gridlib-io"]["cpu_us_per_job"] > 0
    assert data["ceiling_jobs_per_s"] > 0 and "the ceiling is" in stdout
