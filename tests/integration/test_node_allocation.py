"""NodeAllocate and the node operations against a real node daemon (docs/api.md §1.4, §3)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus, NodeAllocate, NodeStatus
from tests.helpers import NodeProcess, wait_for


def state_on(cluster: gridlib.JobCluster) -> dict[str, str]:
    """The cluster's state on each node, as the embedded scheduler sees it."""
    core = cluster._conn.scheduler.core
    return {n.name: n.setup.get(cluster.cluster_id, "") for n in list(core.nodes.values())}


def test_node_allocate_subclass_gives_per_node_cpus_files_and_setup_args(
        node_daemon: NodeProcess, tmp_path: Path) -> None:
    data = tmp_path / "per-node.txt"
    data.write_text("from the allocator")
    seen: list[tuple[str, int]] = []

    class PerNode(NodeAllocate):
        def allocate(self, cluster, ip_addr, name, cpus, avail_info=None, platform=""):  # type: ignore[no-untyped-def]
            seen.append((ip_addr, cpus))
            self.depends = [str(data)]
            self.setup_args = (name,)
            return 1

    def setup(name):  # type: ignore[no-untyped-def]
        global greeting
        with open("per-node.txt") as f:
            greeting = f"{f.read()} for {name}"
        return 0

    def compute():  # type: ignore[no-untyped-def]
        return greeting  # noqa: F821 (set by setup)

    with gridlib.JobCluster(compute, nodes=[PerNode("127.0.0.1", port=node_daemon.port)],
                            setup=setup) as cluster:
        job = cluster.submit()
        assert job(timeout=60) == f"from the allocator for {job.node}"
        assert seen and seen[0][1] == 2  # offered both CPUs, took one
        node = cluster.status().nodes[0]
        core = cluster._conn.scheduler.core
        assert core.nodes[node.node_id].cluster_cpus[cluster.cluster_id] == 1


def test_a_node_the_allocator_refuses_is_never_used(node_daemon: NodeProcess) -> None:
    class NotThisOne(NodeAllocate):
        def allocate(self, cluster, ip_addr, name, cpus, avail_info=None, platform=""):  # type: ignore[no-untyped-def]
            return 0 if "Linux" in platform else cpus

    with gridlib.JobCluster(lambda: 1, nodes=[NotThisOne("127.0.0.1", port=node_daemon.port)]) as c:
        job = c.submit()
        assert wait_for(lambda: "rejected" in state_on(c).values(), 30)
        assert job.status == JobStatus.Created
        c.cancel(job)
        job(timeout=30)


def test_deallocate_allocate_set_cpus_close_and_resetup(node_daemon: NodeProcess, tmp_path: Path) -> None:
    log = tmp_path / "setups.txt"
    events: list[NodeStatus] = []
    initialized = threading.Event()

    def setup(path):  # type: ignore[no-untyped-def]
        with open(path, "a") as f:
            f.write("setup\n")
        return 0

    def status(st, node, job):  # type: ignore[no-untyped-def]
        if isinstance(st, NodeStatus):
            events.append(st)
            if st == NodeStatus.Initialized:
                initialized.set()

    with gridlib.JobCluster(lambda x: x, nodes=[f"127.0.0.1:{node_daemon.port}"], setup=setup,
                            setup_args=(str(log),), cluster_status=status) as cluster:
        assert cluster.submit(1)(timeout=60) == 1
        node = cluster.status().nodes[0]
        assert cluster.set_node_cpus(node, 1) == 1
        cluster.deallocate_node(node)
        job = cluster.submit(2)
        assert wait_for(lambda: cluster._conn.scheduler.core.clusters[cluster.cluster_id].queued == 1, 30)
        assert job.status == JobStatus.Created
        assert cluster.allocate_node(node) == 1
        assert job(timeout=60) == 2
        before = log.read_text().count("setup")
        initialized.clear()
        cluster.resetup_node(node)
        assert initialized.wait(60)
        assert wait_for(lambda: log.read_text().count("setup") > before, 30)
        assert cluster.submit(3)(timeout=60) == 3
        cluster.close_node(node)
        assert wait_for(lambda: NodeStatus.Closed in events, 30)
        assert state_on(cluster)[node.name] == "closed"
        with pytest.raises(gridlib.GridError):
            cluster.set_node_cpus("no-such-node", 1)


def test_send_file_and_discover_nodes(node_daemon: NodeProcess, tmp_path: Path) -> None:
    source = tmp_path / "lookup.txt"
    source.write_text("42")

    def read(name):  # type: ignore[no-untyped-def]
        with open(name) as f:
            return f.read()

    with gridlib.JobCluster(read, nodes=[]) as cluster:  # no node yet
        cluster.discover_nodes([f"127.0.0.1:{node_daemon.port}"])
        assert wait_for(lambda: bool(cluster.status().nodes), 30)
        node = cluster.status().nodes[0]
        assert cluster.send_file(source, node) == 0
        assert cluster.submit("lookup.txt")(timeout=60) == "42"


def test_send_file_over_the_nodes_limit_is_refused(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1", "--max-file-size", "1k")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 4096)
    try:
        with gridlib.JobCluster(lambda: 1, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
            assert cluster.submit()(timeout=60) == 1
            with pytest.raises(gridlib.GridError, match="413"):
                cluster.send_file(big, cluster.status().nodes[0])
            assert cluster.submit()(timeout=60) == 1  # the node carries on
    finally:
        node.stop()


def test_avail_info_events(node_daemon: NodeProcess) -> None:
    got = threading.Event()
    infos = []

    def status(st, node, job):  # type: ignore[no-untyped-def]
        if st == NodeStatus.AvailInfo:
            infos.append(node.avail_info)
            got.set()

    with gridlib.JobCluster(lambda: 1, nodes=[f"127.0.0.1:{node_daemon.port}"], pulse_interval=0.5,
                            cluster_status=status) as cluster:
        assert cluster.submit()(timeout=60) == 1
        assert got.wait(30)
    info = infos[-1]
    assert info is not None and 0 <= info.cpu <= 100 and info.memory > 0 and info.disk > 0
