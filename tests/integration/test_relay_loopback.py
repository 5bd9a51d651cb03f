"""A relay and a dial-out node on loopback (the multi-host versions are in tests/system)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import gridlib
from tests.helpers import NodeProcess, free_port, wait_for


def test_jobs_reach_a_node_only_through_the_relay(tmp_path: Path) -> None:
    node = NodeProcess(free_port(), tmp_path, "--cpus", "2", "--name", "behind-relay")
    relay_port = free_port()
    log = tmp_path / "relay.log"
    with open(log, "wb") as out:
        relay = subprocess.Popen([sys.executable, "-m", "gridlib.daemons.relay", "--host", "127.0.0.1",
                                  "--port", str(relay_port), "--node", f"127.0.0.1:{node.port}"],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "event=relay_started" in log.read_text(), 30), log.read_text()
        # the client names only the relay, as it would a node
        with gridlib.JobCluster(lambda x: x * 3, nodes=[f"127.0.0.1:{relay_port}"]) as cluster:
            jobs = [cluster.submit(i) for i in range(6)]
            assert [j(timeout=60) for j in jobs] == [i * 3 for i in range(6)]
            assert {j.node for j in jobs} == {"behind-relay"}
        assert "event=bridge_opened" in log.read_text()
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(15) == 0
        node.stop()
    assert not node.orphans


def test_dial_out_node_with_a_fixed_scheduler_port(tmp_path: Path) -> None:
    port = free_port()
    with gridlib.JobCluster(lambda: "dialed", nodes=[], scheduler_port=port) as cluster:
        node = NodeProcess(0, tmp_path, "--scheduler", f"127.0.0.1:{port}", "--cpus", "1")
        try:
            assert cluster.submit()(timeout=60) == "dialed"
        finally:
            node.stop()
    assert not node.orphans
