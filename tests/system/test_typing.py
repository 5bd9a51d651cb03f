"""A user's type checker sees gridlib's real types (py.typed, names visible to mypy)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

USER_SCRIPT = '''
import gridlib

def square(x: int) -> int:
    return x * x

cluster = gridlib.JobCluster(square)
job = cluster.submit(3)
reveal_type(job)
reveal_type(cluster.wait)
cluster.sumbit(4)
gridlib.JobClustr
'''


@pytest.mark.slow  # builds a wheel, installs it in a fresh venv, runs mypy
def test_mypy_on_a_users_script_sees_real_types_and_typos(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w",
                    str(wheels)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("gridlib-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # the installed tree, as a user's site-packages has it
        archive.extractall(site)
    assert (site / "gridlib" / "py.typed").exists()
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                          str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "MYPYPATH": str(site)})
    text = out.stdout
    assert 'Revealed type is "gridlib.job.Job"' in text, text
    assert "(timeout: float | None =) -> bool" in text \
        or "(timeout: Union[builtins.float, None] =) -> builtins.bool" in text, text
    assert '"JobCluster" has no attribute "sumbit"' in text, text
    assert 'Module has no attribute "JobClustr"' in text or '"JobClustr"' in text, text
