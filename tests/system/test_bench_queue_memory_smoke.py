"""``bench/queue_memory.py`` runs, leaves nothing behind and charges a queued job's bytes to
the client and the scheduler."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from tests.helpers import run_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "queue_memory.py"


def _none(pid: int) -> list[psutil.Process]:
    return []  # no node: the script starts no process (its own leftovers check says so)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_queue_memory_charges_the_client_and_the_scheduler(tmp_path: Path) -> None:
    report = tmp_path / "queue_memory.json"
    returncode, stdout, stderr, _ = run_script([str(SCRIPT), "--jobs", "500", "--json", str(report)],
                                               90, _none)
    assert returncode == 0, f"exit {returncode}\n{stdout}\n{stderr}"
    assert "processes left over: none" in stdout, stdout
    data = json.loads(report.read_text())
    assert data["jobs"] == 500
    assert data["parts"]["client"] > 0 and data["parts"]["scheduler"] > 0, data["parts"]
    where = {row["where"].split(":")[0] for row in data["lines"]}
    assert "cluster.py" in where and any(w.startswith("daemons" + os.sep + "scheduler") for w in where), where
