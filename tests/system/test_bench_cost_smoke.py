"""``bench/cost_per_job.py`` (every mode) and ``bench/latency_path.py`` run to the end, print
positive figures for the processes and hops they name, and leave no node behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import private_nodes_of, run_script

REPO = Path(__file__).resolve().parents[2]
COST = REPO / "bench" / "cost_per_job.py"
PATH = REPO / "bench" / "latency_path.py"


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", [["--jobs", "5000"], ["--jobs", "300", "--sequential"],
                                  ["--jobs", "100", "--echo", "1048576"]])
def test_cost_per_job_charges_the_node_its_workers_and_the_client(tmp_path: Path, mode: list[str]) -> None:
    report = tmp_path / "cost.json"
    returncode, stdout, stderr, gone = run_script([str(COST), *mode, "--json", str(report)], 180,
                                                  private_nodes_of)
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"
    assert gone, "the private node outlived the script"
    rows = json.loads(report.read_text())["rows"]
    # CPU time comes in 10 ms ticks: asked of the two busiest processes only; every thread
    # named must have been woken
    for where in ("node daemon", "client process (all threads)"):
        assert rows[where]["cpu_us_per_job"] > 0, (where, rows)
    for where in ("node daemon", "client: gridlib-io", "client process (all threads)"):
        assert rows[where]["wakeups_per_job"] > 0, (where, rows)
    assert sum(r["wakeups_per_job"] for k, r in rows.items() if k.startswith("worker")) > 0, rows


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_latency_path_times_every_hop_of_a_round_trip() -> None:
    returncode, stdout, stderr, gone = run_script([str(PATH), "--trips", "100"], 180, private_nodes_of)
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"
    assert gone, "the private node outlived the script"
    figures = {m[1].strip(): float(m[2]) for m in re.finditer(r"^(.{60}) +([0-9.]+)$", stdout, re.M)}
    assert len(figures) == 6 and all(v > 0 for v in figures.values()), stdout
    assert abs(sum(v for k, v in figures.items() if k != "total") - figures["total"]) < figures["total"]
