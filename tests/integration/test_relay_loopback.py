"""A relay and a dial-out node on loopback (the multi-host versions are in tests/system)."""

from __future__ import annotations

from pathlib import Path

import gridlib
from tests.helpers import NodeProcess, RelayProcess, free_port


def test_jobs_reach_a_node_only_through_the_relay(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "2", "--name", "behind-relay")
    relay = RelayProcess(tmp_path, nodes=[node.address])  # --port 0: its port file says which
    try:
        assert f"event=relay_started hosts=127.0.0.1 port={relay.port} " in relay.log()
        # the client names only the relay, as it would a node
        with gridlib.JobCluster(lambda x: x * 3, nodes=[relay.address]) as cluster:
            jobs = [cluster.submit(i) for i in range(6)]
            assert [j(timeout=60) for j in jobs] == [i * 3 for i in range(6)]
            assert {j.node for j in jobs} == {"behind-relay"}
        assert "event=bridge_opened" in relay.log()
    finally:
        relay.stop()
        node.stop()
    assert relay.proc.returncode == 0
    assert not node.orphans


def test_dial_out_node_with_a_fixed_scheduler_port(tmp_path: Path) -> None:
    port = free_port()  # the point: a client's scheduler_port fixed in advance, as across NAT
    with gridlib.JobCluster(lambda: "dialed", nodes=[], scheduler_port=port) as cluster:
        node = NodeProcess(tmp_path, "--scheduler", f"127.0.0.1:{port}", "--cpus", "1")
        try:
            assert cluster.submit()(timeout=60) == "dialed"
        finally:
            node.stop()
    assert not node.orphans
