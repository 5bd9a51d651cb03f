"""Node allocation in the scheduler core: offers, per-cluster CPUs, node operations, files."""

from __future__ import annotations

from gridlib.daemons.scheduler.core import Send
from gridlib.protocol.codec import new_message
from tests.unit.scheduler.test_core import ALICE, NODE_A, NODE_B, Grid, assigned, sent, the


def allocate(grid: Grid, node: str, cpus: int, **extra: object) -> list[Send]:
    return grid.send(ALICE, "NODE_ALLOCATE", {"cluster_id": "c1", "node_id": f"id-{node}",
                                              "cpus": cpus, **extra})


def control(grid: Grid, node: str, op: str, **extra: object) -> list[Send]:
    return grid.send(ALICE, "NODE_CONTROL", {"cluster_id": "c1", "node": node, "op": op, **extra})


def test_nodes_are_offered_and_set_up_only_when_the_client_allocates_them() -> None:
    grid = Grid(auto_allocate=False)
    grid.hello()
    grid.ready(NODE_A, cpus=4)
    out = grid.open()
    offer = the(sent(out, "NODE_EVENT", ALICE))
    assert offer.fields["event"] == "discovered" and offer.fields["node"]["cpus"] == 4
    assert not sent(out, "SETUP")
    request = new_message("NODE_ALLOCATE", {
        "cluster_id": "c1", "node_id": "id-node-a", "cpus": 2, "setup_args": [7],
        "files": [{"name": "per-node.dat", "mode": 0o600}]}, [b"data"], ["file"])
    setup = the(sent(grid.core.handle(ALICE, request, grid.now), "SETUP", NODE_A))
    assert setup.fields["cpus"] == 2 and setup.fields["setup_args"] == [7]
    assert setup.fields["files"][-1]["name"] == "per-node.dat" and setup.frames[-1] == b"data"


def test_a_refused_node_gets_nothing() -> None:
    grid = Grid(auto_allocate=False)
    grid.hello()
    grid.ready(NODE_A)
    grid.open()
    assert not allocate(grid, "node-a", 0)
    grid.submit("j1")
    assert not assigned(grid.tick())


def test_per_cluster_cpus_limit_dispatch() -> None:
    grid = Grid(auto_allocate=False)
    grid.hello()
    grid.ready(NODE_A, cpus=4)
    grid.open()
    allocate(grid, "node-a", 1)
    grid.setup_ok(NODE_A)
    out = grid.submit("j1", "j2", "j3", "j4", "j5")
    assert assigned(out, NODE_A) == ["j1"]  # part of a node: exactly its CPUs, no prefetch
    out = control(grid, "node-a", "cpus", cpus=3)
    assert the(sent(out, "OK", ALICE)).fields["cpus"] == 3
    assert assigned(out, NODE_A) == ["j2", "j3"]
    out = control(grid, "node-a", "cpus", cpus=0)
    grid.result(NODE_A, "j1")
    assert not assigned(grid.tick())  # 0 CPUs: nothing new


def test_deallocate_stops_new_jobs_and_allocate_resumes() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    control(grid, "node-a", "deallocate")
    assert not assigned(grid.submit("j1"))
    assert assigned(control(grid, "node-a", "allocate"), NODE_A) == ["j1"]


def test_close_waits_for_running_jobs_then_tears_down() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))
    grid.submit("j1")
    busy = NODE_A if grid.core.nodes["id-node-a"].inflight else NODE_B
    name = busy.route[-1].decode()
    assert the(sent(control(grid, name, "closing"), "OK", ALICE)).fields["state"] == "closing"
    assert not sent(grid.tick(), "TEARDOWN")  # j1 still runs there
    grid.result(busy, "j1")
    out = grid.tick()
    assert the(sent(out, "TEARDOWN", busy))
    closed = [m for m in sent(out, "NODE_EVENT", ALICE) if m.fields["event"] == "closed"]
    assert closed and closed[0].fields["node"]["name"] == name


def test_resetup_sets_the_node_up_again_once_idle() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    control(grid, "node-a", "resetup")
    out = grid.tick()
    teardown = the(sent(out, "TEARDOWN", NODE_A))
    assert teardown.fields["keep_files"] is True  # the node keeps the files for the new setup
    assert the(sent(out, "SETUP", NODE_A))
    grid.submit("j1")
    assert not assigned(grid.tick())  # not before SETUP_OK
    assert assigned(grid.setup_ok(NODE_A), NODE_A) == ["j1"]


def test_unknown_node_for_an_operation_is_a_404() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    error = the(sent(control(grid, "nowhere", "deallocate"), "ERROR", ALICE))
    assert error.fields["code"] == 404


def test_file_put_is_forwarded_and_the_nodes_answer_relayed() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    request = new_message("FILE_PUT", {"cluster_id": "c1", "node": "node-a", "name": "x.txt"},
                          [b"hello"], ["file"])
    forward = the(sent(grid.core.handle(ALICE, request, grid.now), "FILE_PUT", NODE_A))
    assert forward.frames == [b"hello"] and "node" not in forward.fields
    answer = new_message("ERROR", {"code": 413, "reason": "too large"}, ref=forward.mid)
    relayed = the(sent(grid.core.handle(NODE_A, answer, grid.now), "ERROR", ALICE))
    assert relayed.ref == request.mid and relayed.fields["code"] == 413


def test_heartbeat_availability_reaches_the_clusters_client() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    out = grid.send(NODE_A, "HEARTBEAT", {"avail": {"cpu": 50.0, "memory": 1e9, "disk": 2e9, "swap": 1.0}})
    event = the(sent(out, "NODE_EVENT", ALICE))
    assert event.fields["event"] == "avail" and event.fields["node"]["avail"]["cpu"] == 50.0


def test_node_control_reports_its_state_as_a_plain_string() -> None:
    """``NodeRecord.setup`` holds a SetupState (a str enum); what a client is told is the bare str."""
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    for op, state in (("deallocate", "deallocated"), ("allocate", "ready"), ("closing", "closing")):
        ok = the(sent(control(grid, "node-a", op), "OK", ALICE))
        assert ok.fields["state"] == state and type(ok.fields["state"]) is str
    assert grid.core.nodes["id-node-a"].setup["c1"] == "closing"
