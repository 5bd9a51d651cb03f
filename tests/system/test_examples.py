"""Every example runs, as a user would run it, and leaves no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name, expect", [
    ("sample.py", "speedup"),
    ("recover.py", "Finished"),
    ("node_setup.py", "(ok)"),
    ("shared_cluster.py", "urgent ran"),
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
