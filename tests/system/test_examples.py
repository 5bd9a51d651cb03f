"""Every example runs, as a user would run it, and leaves no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.slow  # every example, each a program of its own


@pytest.mark.parametrize("name, expect", [
    ("sample.py", "speedup"),
    ("recover.py", "Finished"),
    ("node_setup.py", "(ok)"),
    ("shared_cluster.py", "urgent ran"),
    # ports of the other examples of the dispy distribution (docs/porting-from-dispy.md)
    ("obj_instances.py", "8 of 8 objects came back centred"),
    ("bounded_submit.py", "60 jobs done (0 failed), at most 6 in flight"),
    ("delegate.py", "6 of 6 delegated functions returned the expected value"),
    ("job_scheduler.py", "8 checksums match"),
    ("longrun.py", "jobs cancelled (ok)"),
    ("node_shvars.py", "20 of 20 jobs updated a node's shared counter (ok)"),
    ("node_update.py", "updated 1 of 1 nodes"),
    ("provisional_results.py", "cancelled (ok)"),
    ("replace_inmem.py", "after it ['dataset-1.bin'] (ok)"),
    ("web_monitor.py", "8 listed as finished, stray job Cancelled"),
    ("command_line.py", "2 jobs as JSON, all exit code 0"),
    ("send_files.py", "(ok)"),
    ("cloud_node.py", "6 jobs ran on a node that dialed in"),
])
def test_example_runs(name: str, expect: str, tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert expect in result.stdout
    assert "Traceback" not in result.stderr
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before
