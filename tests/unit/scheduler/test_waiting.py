"""Jobs no node can run end with the reason, or wait and say so (daemons/scheduler/waiting.py)."""

from __future__ import annotations

from gridlib.daemons.scheduler.waiting import WARN_AFTER, WARN_EVERY
from tests.unit.scheduler.test_core import ALICE, NODE_A, NODE_B, Grid, assigned, sent


def results(sends: list) -> dict[str, dict]:
    return {m.fields["job_id"]: m.fields for m in sent(sends, "JOB_RESULT", ALICE)}


def check(grid: Grid, seconds: float) -> list:
    grid.now += seconds
    out = grid.core.check(grid.now)
    grid.check_invariants()
    return out


def test_setup_failed_on_the_only_node_ends_its_jobs_at_once_naming_node_and_reason() -> None:
    grid = Grid()
    grid.hello()
    grid.ready(NODE_A)
    grid.open()
    grid.submit("j1", "j2")
    out = grid.send(NODE_A, "SETUP_FAIL", {"cluster_id": "c1", "reason": "setup raised ValueError: no db"})
    ended = results(out)
    assert set(ended) == {"j1", "j2"}
    for fields in ended.values():
        assert fields["status"] == "terminated"
        assert fields["exception"]["type"] == "SetupError"
        assert "node-a: setup raised ValueError: no db" in fields["exception"]["message"]
    later = grid.submit("j3")  # until a node can run the cluster, new jobs end at once too
    assert results(later)["j3"]["exception"]["type"] == "SetupError"


def test_setup_failed_on_one_node_of_two_keeps_the_jobs_for_the_other() -> None:
    grid = Grid()
    grid.hello()
    grid.ready(NODE_A)
    grid.ready(NODE_B)
    grid.open()
    grid.send(NODE_A, "SETUP_FAIL", {"cluster_id": "c1", "reason": "no GPU"})
    grid.setup_ok(NODE_B)
    out = grid.submit("j1")
    assert assigned(out, NODE_B) == ["j1"] and not results(out)


def test_without_any_node_jobs_wait_and_the_client_is_told_within_ten_seconds_and_again() -> None:
    grid = Grid()
    grid.hello()
    grid.open()
    grid.submit("j1")
    assert not sent(check(grid, 1.0), "CLUSTER_EVENT")
    first = sent(check(grid, WARN_AFTER), "CLUSTER_EVENT", ALICE)
    assert len(first) == 1 and first[0].fields["event"] == "waiting"
    assert first[0].fields["queued"] == 1 and first[0].fields["nodes"] == 0
    assert not sent(check(grid, 1.0), "CLUSTER_EVENT")
    again = sent(check(grid, WARN_EVERY), "CLUSTER_EVENT", ALICE)
    assert len(again) == 1
    assert grid.core.jobs["j1"].state.value == "queued"  # still waiting: no node_wait was set


def test_node_wait_abandons_queued_jobs_with_no_nodes_error() -> None:
    grid = Grid()
    grid.hello()
    grid.open(node_wait=5.0)
    grid.submit("j1", "j2")
    assert not results(check(grid, 2.0))
    out = check(grid, 4.0)
    ended = results(out)
    assert set(ended) == {"j1", "j2"}
    assert all(f["status"] == "abandoned" and f["exception"]["type"] == "NoNodesError" for f in ended.values())
    assert "node_wait=5" in ended["j1"]["exception"]["message"]
    assert sent(out, "CLUSTER_EVENT", ALICE)[0].fields["event"] == "no_nodes"


def test_a_node_that_arrives_in_time_runs_the_jobs() -> None:
    grid = Grid()
    grid.hello()
    grid.open(node_wait=5.0)
    grid.submit("j1")
    check(grid, 3.0)
    grid.ready(NODE_A)
    out = grid.setup_ok(NODE_A)
    assert assigned(out, NODE_A) == ["j1"]
    assert not results(check(grid, 3.0))  # past node_wait, and the job is not touched


def test_arguments_over_a_nodes_limit_end_the_job_not_the_link() -> None:
    grid = Grid()
    grid.hello()
    grid.send(NODE_A, "READY", {"node_id": "id-a", "name": "node-a", "cpus": 1,
                                "max_msg_size": 100_000})
    grid.open()
    grid.setup_ok(NODE_A)
    out = grid.submit("big", "small", frames={"big": b"x" * 200_000, "small": b"y"})
    fields = results(out)["big"]
    assert fields["exception"]["type"] == "PayloadTooLarge" and "200000 bytes" in fields["exception"]["message"]
    assert assigned(out, NODE_A) == ["small"]


# -- jobs that never started are safe to run elsewhere -------------------------------------------

def one_cpu_node_holding(*job_ids: str) -> tuple[Grid, list]:
    """A grid whose only node, node-a (1 CPU), holds ``job_ids`` (prefetched), not reentrant."""
    grid = Grid(prefetch=len(job_ids) - 1)
    grid.hello()
    grid.ready(NODE_A, 1)
    grid.open()
    grid.setup_ok(NODE_A)
    out = grid.submit(*job_ids)
    assert assigned(out, NODE_A) == list(job_ids)
    return grid, out


def test_a_lost_nodes_jobs_that_never_started_run_elsewhere_even_if_not_reentrant() -> None:
    from tests.unit.scheduler.test_core import silence_node_a
    grid, out = one_cpu_node_holding("j1", "j2", "j3", "j4")  # one runs, three wait there
    grid.ready(NODE_B, 1)
    grid.setup_ok(NODE_B)
    out = silence_node_a(grid)
    ended = results(out)
    assert set(ended) == {"j1"} and ended["j1"]["status"] == "abandoned"  # it may have started
    assert assigned(out, NODE_B) == ["j2", "j3", "j4"]  # behind j1 on a 1-CPU node: never started


def test_jobs_ahead_a_node_was_granted_count_as_maybe_started_when_it_is_lost() -> None:
    from tests.unit.scheduler.test_core import silence_node_a
    grid, out = one_cpu_node_holding("j1", "j2", "j3", "j4", "j5")
    granted = sent(grid.send(NODE_A, "LOOKAHEAD", {"cluster_id": "c1", "depth": 2}), "LOOKAHEAD_OK")
    assert [(m.fields["cluster_id"], m.fields["depth"]) for m in granted] == [("c1", 2)]
    assert sent(grid.send(NODE_A, "LOOKAHEAD", {"cluster_id": "nope", "depth": 2}), "ERROR")
    grid.ready(NODE_B, 1)
    grid.setup_ok(NODE_B)
    ended = results(out := silence_node_a(grid))
    # its worker held j2 and j3 behind j1: any of the three may have run (not reentrant:
    # abandoned); j4 and j5 were still waiting on the node: run elsewhere
    assert set(ended) == {"j1", "j2", "j3"} and {f["status"] for f in ended.values()} == {"abandoned"}
    assert assigned(out, NODE_B) == ["j4", "j5"]


def test_jobs_a_frozen_node_dropped_are_queued_again() -> None:
    grid = Grid(prefetch=3)
    grid.hello()
    grid.ready(NODE_A, 1)
    grid.open()
    grid.setup_ok(NODE_A)
    grid.submit("j1", "j2", "j3")
    grid.ready(NODE_A, 1)  # it registers again after a freeze: its jobs wait to be claimed
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["j1", 1]],
                                         "dropped": [["j2", 1], ["j3", 1]]})
    assert assigned(out, NODE_A) == ["j2", "j3"]  # run (again: never started) on the node
    assert grid.core.jobs["j1"].state.value == "running" and not results(out)


def test_a_ready_retried_over_a_slow_link_is_answered_again_not_taken_for_a_new_node() -> None:
    grid = Grid()
    grid.hello()
    grid.open()
    ready = {"node_id": "id-a", "name": "node-a", "cpus": 1, "session": "id-a.1"}
    grid.send(NODE_A, "READY", ready)
    grid.setup_ok(NODE_A)
    out = grid.send(NODE_A, "READY", ready)  # the same registration, retried
    assert len(sent(out, "WELCOME", NODE_A)) == 1 and not sent(out, "NODE_EVENT", ALICE)
    assert grid.core.nodes["id-a"].setup["c1"] == "ready"
    out = grid.send(NODE_A, "READY", {**ready, "session": "id-a.2"})  # a new registration
    assert [m.fields["event"] for m in sent(out, "NODE_EVENT", ALICE)][:1] == ["closed"]
