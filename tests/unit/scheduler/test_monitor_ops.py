"""The operator's cancel in the scheduler core, and the monitor's view of the core (docs/monitor.md).

The core with a fake clock and no sockets (the ``Grid`` of test_core); the
monitor's source with a stand-in service whose "reactor" runs calls at once,
or never (a busy scheduler).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from gridlib.daemons.monitor.source import ActionError
from gridlib.daemons.scheduler.core import Send
from gridlib.daemons.scheduler.monitor import SchedulerSource
from gridlib.daemons.scheduler.records import JobState
from tests.helpers import wait_for
from tests.unit.scheduler.test_core import ALICE, BOB, NODE_A, Grid, assigned, sent, the


def test_operator_cancels_queued_and_running_jobs_of_any_user() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.hello(BOB)
    grid.open("c2", client=BOB)
    grid.setup_ok(NODE_A, "c2")
    assert assigned(grid.submit("a1", "a2", "a3")) == ["a1", "a2"]  # one CPU + prefetch: a3 waits
    grid.submit("b1", client=BOB, cluster_id="c2")

    acted, out = grid.core.operator_cancel(["a1", "a3", "b1", "no-such-job"], grid.now)
    grid.check_invariants()
    assert acted == ["a1", "a3", "b1"]
    # the dispatched one through its node; the queued ones at once, each to its own client
    assert the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["a1"]
    assert grid.core.jobs["a1"].state is JobState.CANCELLING
    assert grid.core.jobs["a2"].state is JobState.DISPATCHED  # not asked for: untouched
    results = {m.fields["job_id"]: m.fields["status"] for m in sent(out, "JOB_RESULT", ALICE)}
    assert results == {"a3": "cancelled"}
    assert the(sent(out, "JOB_RESULT", BOB)).fields == {"job_id": "b1", "status": "cancelled",
                                                          "attempts": 0}
    assert grid.core.clusters["c1"].queued == 0 and grid.core.clusters["c2"].queued == 0

    # the node reports the kill; ALICE gets a1 cancelled, as if she had cancelled it herself
    out = grid.result(NODE_A, "a1", status="cancelled")
    assert the(sent(out, "JOB_RESULT", ALICE)).fields["status"] == "cancelled"
    assert not assigned(out)  # nothing left to run


def test_operator_cancel_leaves_finished_jobs_and_repeats_nothing() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    grid.submit("j1", "j2")
    grid.result(NODE_A, "j1")
    acted, out = grid.core.operator_cancel(["j1", "j2"], grid.now)
    assert acted == ["j2"] and the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["j2"]
    # asked again while the node is killing it: still on its way, no second JOB_CANCEL
    acted, out = grid.core.operator_cancel(["j2"], grid.now)
    assert acted == ["j2"] and not sent(out, "JOB_CANCEL")
    assert grid.core.operator_cancel([], grid.now) == ([], [])


def test_a_clients_own_cancel_is_unchanged() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.submit("a1", "a2", "a3")
    out = grid.send(ALICE, "JOB_CANCEL", {"job_ids": ["a1", "a3"]})
    assert the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["a1"]
    assert the(sent(out, "JOB_RESULT", ALICE)).fields["job_id"] == "a3"
    out = grid.send(BOB, "JOB_CANCEL", {"job_ids": ["a2"]})  # not Bob's to cancel
    assert the(sent(out, "ERROR", BOB)).fields["code"] == 404
    assert grid.core.jobs["a2"].state is JobState.DISPATCHED


class FakeReactor:
    def __init__(self, runs: bool = True) -> None:
        self.runs = runs
        self.calls = 0

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        self.calls += 1
        if self.runs:
            fn()


class FakeService:
    """What SchedulerSource uses of a SchedulerService: its core, reactor and delivery."""

    def __init__(self, grid: Grid, runs: bool = True) -> None:
        self.core = grid.core
        self.reactor = FakeReactor(runs)
        self.closed = False
        self.delivered: list[Send] = []

    def _deliver(self, sends: list[Send]) -> None:
        self.delivered += sends


def test_scheduler_source_shows_nodes_jobs_and_clusters_and_cancels() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    grid.submit("j1", "j2", "j3")
    service = FakeService(grid)
    source = SchedulerSource(service)
    snap = source.snapshot()
    (node,) = snap.nodes
    assert node["name"] == "node-a" and node["cpus"] == 2 and node["busy"] == 3  # 2 + prefetch
    assert {j["job_id"] for j in node["running"]} == {"j1", "j2", "j3"}
    assert node["clusters"] == ["c1"] and node["state"] == "in use"
    assert {j["status"] for j in snap.jobs} == {"Dispatched"}
    (cluster,) = snap.clusters
    assert cluster["cluster_id"] == "c1" and cluster["queued"] == 0 and cluster["running"] == 3
    assert snap.done == 0

    grid.result(NODE_A, "j1")
    grid.result(NODE_A, "j2")
    assert source.cancel(["j3", "nope"]) == ["j3"]
    assert the(sent(service.delivered, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["j3"]
    grid.result(NODE_A, "j3", status="cancelled")
    snap = source.snapshot()
    ended = {j["job_id"]: j["status"] for j in snap.jobs if j["final"]}
    assert ended == {"j1": "Ended", "j2": "Ended", "j3": "Cancelled"}
    assert snap.done == 3 and source.done_count() == 3  # counted from the node's jobs done
    with pytest.raises(ActionError) as refused:
        source.node_op("node-a", "cpus", 1)
    assert refused.value.status == 501


def test_scheduler_source_gives_up_on_a_busy_scheduler_and_at_close() -> None:
    service = FakeService(Grid(), runs=False)  # the reactor never gets to the call
    source = SchedulerSource(service, timeout=0.2)
    with pytest.raises(ActionError) as busy:
        source.snapshot()
    assert busy.value.status == 503 and "did not answer" in busy.value.message

    source = SchedulerSource(service, timeout=60.0)
    failed: list[BaseException] = []
    started = threading.Event()

    def read() -> None:
        started.set()
        try:
            source.snapshot()
        except ActionError as exc:
            failed.append(exc)
    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(10)
    assert wait_for(lambda: source._pending, 10)  # the reader is waiting on the reactor
    source.close()  # a shutting-down monitor does not wait the minute out
    reader.join(10)
    assert not reader.is_alive() and failed and failed[0].status == 503  # type: ignore[attr-defined]
    with pytest.raises(ActionError):
        source.cancel(["j1"])

