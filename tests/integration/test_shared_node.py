"""One node serving several clusters at once, from one and from several processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gridlib
from tests.helpers import NodeProcess

OTHER_PROCESS = """
import sys, gridlib
with gridlib.JobCluster(lambda s: s.upper(), nodes=[sys.argv[1]]) as cluster:
    jobs = [cluster.submit(w) for w in ("other", "process")]
    print(" ".join(j(timeout=60) for j in jobs))
"""


def test_several_clusters_share_one_node(node_daemon: NodeProcess, tmp_path: Path) -> None:
    address = f"127.0.0.1:{node_daemon.port}"
    script = tmp_path / "other.py"
    script.write_text(OTHER_PROCESS)
    other = subprocess.Popen([sys.executable, str(script), address], stdout=subprocess.PIPE, text=True)
    try:
        with gridlib.JobCluster(lambda x: x + 1, nodes=[address]) as first, \
                gridlib.JobCluster(lambda x: x * 10, nodes=[address]) as second:
            a = [first.submit(i) for i in range(5)]
            b = [second.submit(i) for i in range(5)]
            assert [j(timeout=60) for j in a] == [1, 2, 3, 4, 5]
            assert [j(timeout=60) for j in b] == [0, 10, 20, 30, 40]
        out, _ = other.communicate(timeout=90)
        assert out.strip() == "OTHER PROCESS"
        assert other.returncode == 0
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_a_node_pattern_wider_than_a_slash_22_is_refused_at_once() -> None:
    with pytest.raises(gridlib.GridError, match="/22"):
        gridlib.JobCluster(lambda: 1, nodes=["198.51.96.0/20"])
    with pytest.raises(gridlib.GridError, match="wildcard"):
        gridlib.JobCluster(lambda: 1, nodes=["198.*.100.1"])
