"""Reconciliation (docs/reliability.md §4, §5): nodes that come back, and clients that recover, lose no job
and see no duplicate."""

from __future__ import annotations

from tests.unit.scheduler.test_core import ALICE, NODE_A, NODE_B, Grid, assigned, sent, the


def test_a_node_that_re_registers_keeps_the_jobs_it_still_runs() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    grid.submit("j1", "j2")
    grid.ready(NODE_A, cpus=2)  # e.g. a dial-out link that re-sent READY
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["j1", 1]],
                                         "results": [["j2", 1]]})
    assert not sent(out, "JOB_CANCEL") and not sent(out, "JOB_RESULT", ALICE)
    delivered = grid.result(NODE_A, "j2", attempt=1)  # the spooled result, sent again
    assert the(sent(delivered, "JOB_RESULT", ALICE)).fields["status"] == "finished"
    grid.now += 7  # past the adoption grace
    settled = [m for m in sent(grid.tick(), "JOB_RESULT", ALICE) if m.fields["job_id"] == "j1"]
    assert not settled  # j1 is still running there, claimed
    assert the(sent(grid.result(NODE_A, "j1", attempt=1), "JOB_RESULT", ALICE))


def test_a_job_nobody_reports_after_a_re_registration_is_settled() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")
    grid.ready(NODE_A)  # restarted: the job died with the old process
    grid.setup_ok(NODE_A)
    grid.now += 7
    result = the(sent(grid.tick(), "JOB_RESULT", ALICE))
    assert result.fields["status"] == "abandoned"


def test_a_reentrant_job_nobody_reports_runs_again() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), reentrant=True)
    grid.submit("j1")
    grid.ready(NODE_A)
    grid.setup_ok(NODE_A)
    grid.now += 7
    grid.send(NODE_A, "HEARTBEAT")
    out = grid.tick()
    assert assigned(out, NODE_A) == ["j1"]
    assert the(sent(out, "JOB_ASSIGN", NODE_A)).fields["attempt"] == 2


def test_a_node_back_after_being_declared_lost_drops_its_stale_copy() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1), reentrant=True)
    grid.submit("j1", "j2")
    grid.now += 10
    grid.send(NODE_B, "HEARTBEAT")
    out = grid.tick()  # node-a lost: its job goes to node-b as attempt 2
    moved = [m for m in sent(out, "JOB_ASSIGN", NODE_B)]
    assert moved and moved[0].fields["attempt"] == 2
    job_id = moved[0].fields["job_id"]
    # node-a was only frozen (SIGSTOP); it comes back and reports the old attempt
    grid.ready(NODE_A)
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [[job_id, 1]]})
    assert the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == [job_id]
    stale = grid.result(NODE_A, job_id, attempt=1)
    assert not sent(stale, "JOB_RESULT", ALICE)
    assert the(sent(grid.result(NODE_B, job_id, attempt=2), "JOB_RESULT", ALICE))


def test_a_requeued_job_not_yet_redispatched_is_claimed_back() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), reentrant=True)
    grid.submit("j1")
    grid.now += 10
    grid.tick()  # node-a lost; j1 queued again, no node to run it
    grid.ready(NODE_A)
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["j1", 1]]})
    assert not sent(out, "JOB_CANCEL") and not assigned(out)
    assert the(sent(grid.result(NODE_A, "j1", attempt=1), "JOB_RESULT", ALICE))


def test_a_recovering_client_adopts_running_jobs_and_runs_the_rest() -> None:
    grid = Grid()
    grid.hello()
    grid.ready(NODE_A, cpus=1)
    grid.open(recover=True)
    # the node still runs j1 for the crashed client and spooled j2's result
    grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["j1", 3]],
                                   "results": [["j2", 1]]})
    out = grid.submit("j1", "j2", "j3", recover=True)
    assert not assigned(out)  # j3 waits: maybe another node still has it
    assert the(sent(grid.result(NODE_A, "j2", attempt=1), "JOB_RESULT", ALICE))
    assert the(sent(grid.result(NODE_A, "j1", attempt=3), "JOB_RESULT", ALICE))
    grid.now += 7
    grid.send(NODE_A, "HEARTBEAT")
    out = grid.tick()
    assert assigned(out, NODE_A) == ["j3"]


def test_jobs_reported_for_a_recovering_cluster_but_never_claimed_are_cancelled() -> None:
    grid = Grid()
    grid.hello()
    grid.ready(NODE_A)
    grid.open(recover=True)
    grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["gone", 1]]})
    grid.now += 7
    out = grid.tick()
    assert the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["gone"]


def test_unknown_spooled_results_are_released_on_a_normal_cluster() -> None:
    grid = Grid()
    grid.hello()
    grid.ready(NODE_A)
    grid.open()
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "results": [["old", 1]],
                                         "running": [["bogus", "x"]]})
    assert the(sent(out, "RESULT_ACK", NODE_A)).fields["job_ids"] == ["old"]


def test_cancel_of_a_job_waiting_for_adoption_sticks() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")
    grid.ready(NODE_A)  # re-registers: j1 waits to be reported
    out = grid.send(ALICE, "JOB_CANCEL", {"job_ids": ["j1"]})
    assert the(sent(out, "JOB_RESULT", ALICE)).fields["status"] == "cancelled"
    out = grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1", "running": [["j1", 1]]})
    assert the(sent(out, "JOB_CANCEL", NODE_A)).fields["job_ids"] == ["j1"]
    grid.now += 7
    grid.send(NODE_A, "HEARTBEAT")
    assert not assigned(grid.tick())
