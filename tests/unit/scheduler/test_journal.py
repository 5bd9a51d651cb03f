"""The core's durable changes (typed records in ``SchedulerCore.persist``) and the journal that writes them."""

from __future__ import annotations

from pathlib import Path

from gridlib.daemons.scheduler.journal import SchedulerJournal
from gridlib.daemons.scheduler.records import DropCluster, DropJob, JobState, SaveCluster, SaveJob
from tests.unit.scheduler.test_core import ALICE, NODE_A, Grid, assigned


def test_the_core_lists_its_durable_changes_as_typed_records() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1", "j2", frames={"j1": b"args-1"})
    cluster = grid.core.clusters["c1"]
    j1, j2 = grid.core.jobs["j1"], grid.core.jobs["j2"]
    assert grid.core.persist == [SaveCluster(cluster), SaveJob(j1), SaveJob(j2)]
    grid.core.persist.clear()

    grid.result(NODE_A, "j1")
    grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1"]})
    grid.send(ALICE, "CLUSTER_CLOSE", {"cluster_id": "c1"})

    assert grid.core.persist == [DropJob("j1"), DropCluster("c1")]


def test_the_journal_writes_them_and_a_restarted_core_restores_them(tmp_path: Path) -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.open("c2", frames=[b"computation"])
    grid.submit("j1", "j2", frames={"j1": b"args-1", "j2": bytearray(b"args-2")})
    grid.submit("k1", cluster_id="c2")
    journal = SchedulerJournal(tmp_path / "journal.db")
    journal.apply(grid.core.persist)
    grid.core.persist.clear()
    grid.result(NODE_A, "j1")
    grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1"]})
    grid.send(ALICE, "CLUSTER_CLOSE", {"cluster_id": "c2"})
    journal.apply(grid.core.persist)
    journal.apply([])  # nothing to write: no transaction

    clusters, jobs = journal.load()
    journal.close()

    assert [(c.cluster_id, c.client, c.user, c.kind, c.frames) for c in clusters] == [
        ("c1", ALICE.route, ALICE.user, "function", [])]
    assert [(j.job_id, j.cluster_id, j.spec, j.frames) for j in jobs] == [
        ("j2", "c1", {"id": "j2", "n": 1}, [b"args-2"])]
    restarted = Grid()
    restarted.core.restore(clusters, jobs, restarted.now)
    assert restarted.core.jobs["j2"].state is JobState.ADOPTING
    restarted.hello()
    restarted.ready(NODE_A)
    restarted.setup_ok(NODE_A)
    ran = []
    for _ in range(30):  # the adoption grace ends: nobody reported it, so it runs again
        restarted.now += 1.0
        ran += assigned(restarted.send(NODE_A, "HEARTBEAT") + restarted.tick(), NODE_A)
    assert ran == ["j2"]


def test_a_jobs_spec_survives_the_journal_as_fields() -> None:
    """A queued job keeps its spec as fields, not a map; the journal still stores the map."""
    from gridlib.daemons.scheduler.records import JobRecord

    spec = {"id": "j9", "n": 1, "priority": 3, "timeout": 2.5, "node": "node-a", "label": "7"}
    job = JobRecord.from_spec("j9", "c1", spec, ["args"], [b"x"], 1)
    assert (job.priority, job.timeout, job.pin, job.label) == (3, 2.5, "node-a", "7")
    assert job.spec == spec and not hasattr(job, "__dict__")
    again = JobRecord.from_spec("j9", "c1", job.spec, job.labels, job.frames, job.seq)
    assert (again.priority, again.timeout, again.pin, again.label) == (3, 2.5, "node-a", "7")
    plain = JobRecord.from_spec("j1", "c1", {"id": "j1", "n": 0}, [], [], 2)
    assert (plain.priority, plain.timeout, plain.pin, plain.label) == (0, None, None, None)
