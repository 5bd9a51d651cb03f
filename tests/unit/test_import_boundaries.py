"""What each process imports: the scheduler and the node's message loop never load cloudpickle."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", [
    "gridlib.protocol.codec",
    "gridlib.daemons.scheduler.service",
    "gridlib.daemons.node.shell",
    "gridlib.daemons.scheduler.main",
    "gridlib.daemons.relay.main",
    "gridlib.daemons.cli",
    "gridlib",
])
def test_module_does_not_import_cloudpickle(module: str) -> None:
    code = f"import sys, {module}; print('cloudpickle' in sys.modules, 'pickle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", f"{module} imports cloudpickle"
