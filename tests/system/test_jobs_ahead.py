"""Jobs ahead against a real node daemon (another directory, its own key): a worker of a
short-job cluster holds jobs behind the one it runs, and cancel, time limits, printed output
and a shared scheduler all behave as they do one job at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import NodeProcess, SchedulerProcess, far_node, wait_for


def quick(i, slow_one=-1):  # type: ignore[no-untyped-def]
    if i == slow_one:
        import time
        time.sleep(30)
    if i % 7 == 0:
        print(f"job {i} says hello")
    return i * i


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    with far_node(tmp_path, "--cpus", "2", "--name", "ahead") as daemon:
        yield daemon


def test_short_jobs_get_jobs_ahead_and_every_result_and_output_comes_back(node: NodeProcess) -> None:
    with gridlib.JobCluster(quick, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
        jobs = [cluster.submit(i) for i in range(3000)]
        assert [job(timeout=120) for job in jobs] == [i * i for i in range(3000)]
        assert all(job.status == JobStatus.Finished for job in jobs)
        assert all((job.stdout == f"job {i} says hello\n") == (i % 7 == 0) for i, job in enumerate(jobs))
    assert "event=jobs_ahead" in node.log()


def test_cancelling_everything_mid_stream_ends_every_job_once(node: NodeProcess) -> None:
    with gridlib.JobCluster(quick, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
        jobs = [cluster.submit(i) for i in range(4000)]
        assert wait_for(lambda: sum(j.finished for j in jobs) > 500, 120)
        assert wait_for(lambda: "event=jobs_ahead" in node.log(), 30)
        for job in jobs:
            cluster.cancel(job)
        for job in jobs:
            job(timeout=120)
        statuses = {job.status for job in jobs}
        assert statuses <= {JobStatus.Finished, JobStatus.Cancelled}, statuses
        assert JobStatus.Cancelled in statuses
        assert all(job.result == i * i for i, job in enumerate(jobs) if job.status == JobStatus.Finished)
        # the node is not stuck with taken-back jobs: new ones run
        assert cluster.submit(5)(timeout=60) == 25


def test_a_job_over_its_time_limit_among_short_ones_is_the_only_one_stopped(node: NodeProcess) -> None:
    with gridlib.JobCluster(quick, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
        warm = [cluster.submit(i) for i in range(500)]  # short: the node asks for jobs ahead
        assert [j(timeout=120) for j in warm] == [i * i for i in range(500)]
        assert wait_for(lambda: "event=jobs_ahead" in node.log(), 30)
        jobs = [cluster.submit_job(args=(i, 1500), timeout=2.0) for i in range(1000, 3000)]
        for job in jobs:
            job(timeout=120)
        slow = jobs[500]
        assert slow.status == JobStatus.Terminated and "TimeoutError" in (slow.exception or "")
        others = [j for j in jobs if j is not slow]
        assert all(j.status == JobStatus.Finished for j in others), \
            {j.status for j in others}
        assert [j.result for j in others] == [i * i for i in range(1000, 3000) if i != 1500]


def test_through_a_shared_scheduler_too(tmp_path: Path, node: NodeProcess) -> None:
    scheduler = SchedulerProcess(tmp_path, nodes=[f"127.0.0.1:{node.port}"])
    try:
        with gridlib.SharedJobCluster(quick, scheduler=scheduler.address) as cluster:
            jobs = [cluster.submit(i) for i in range(2000)]
            assert [job(timeout=120) for job in jobs] == [i * i for i in range(2000)]
        assert "event=jobs_ahead" in node.log()
    finally:
        scheduler.stop()
