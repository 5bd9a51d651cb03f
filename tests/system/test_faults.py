"""Faults as tests (docs/reliability.md): nodes killed, frozen and restarted, poison jobs, churn.

Heartbeats run at 0.5 s here, so a silent node is lost after 2.5 s.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus, NodeStatus
from gridlib.daemons.node.jobs import LOOKAHEAD
from tests.helpers import NodeProcess, wait_for

PULSE = 0.5
# a lost node must be detected within 6.5 heartbeat intervals: run alone (make test), and slow
pytestmark = pytest.mark.serial


def sleeper(seconds):  # type: ignore[no-untyped-def]
    import time
    time.sleep(seconds)
    return seconds


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a = NodeProcess(tmp_path, "--cpus", "2", "--name", "node-a")
    b = NodeProcess(tmp_path, "--cpus", "2", "--name", "node-b")
    yield a, b
    for node in (a, b):
        node.stop()
    assert not a.orphans and not b.orphans


def addresses(*nodes: NodeProcess) -> list[str]:
    return [f"127.0.0.1:{n.port}" for n in nodes]


class Events:
    """cluster_status and job_status calls, recorded with their times."""

    def __init__(self) -> None:
        self.closed: dict[str, float] = {}
        self.finals: Counter[str] = Counter()
        self.lock = threading.Lock()

    def cluster_status(self, status, node, job) -> None:  # type: ignore[no-untyped-def]
        if status == NodeStatus.Closed and node is not None:
            self.closed.setdefault(node.name, time.monotonic())

    def job_status(self, job) -> None:  # type: ignore[no-untyped-def]
        if job.status != JobStatus.ProvisionalResult:
            with self.lock:
                self.finals[job.uid] += 1


def running_on(jobs: list[gridlib.Job], name: str) -> bool:
    return any(j.status == JobStatus.Running and j.node == name for j in jobs)


def test_killed_node_jobs_run_again_elsewhere_when_reentrant(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    events = Events()
    with gridlib.JobCluster(sleeper, nodes=addresses(a, b), reentrant=True, pulse_interval=PULSE,
                            cluster_status=events.cluster_status, job_status=events.job_status) as c:
        jobs = [c.submit(1.0) for _ in range(8)]
        assert wait_for(lambda: running_on(jobs, "node-a"), 60)
        a.kill()
        killed = time.monotonic()
        assert [j(timeout=120) for j in jobs] == [1.0] * 8
        assert all(j.status == JobStatus.Finished for j in jobs)
        moved = [j for j in jobs if j.attempts == 2]
        assert moved and all(j.node == "node-b" for j in moved)
        assert wait_for(lambda: "node-a" in events.closed, 30)
        detection = (events.closed["node-a"] - killed) / PULSE
        assert detection <= 6.5, f"lost after {detection:.1f} intervals"
    assert set(events.finals.values()) == {1} and len(events.finals) == 8
    assert wait_for(lambda: not a.leftovers(), 15), "workers outlived their killed node"


def test_killed_node_jobs_are_abandoned_when_not_reentrant(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    with gridlib.JobCluster(sleeper, nodes=addresses(a, b), pulse_interval=PULSE) as c:
        jobs = [c.submit(1.5) for _ in range(6)]
        assert wait_for(lambda: running_on(jobs, "node-a"), 60)
        a.kill()
        for job in jobs:
            job(timeout=120)  # never blocks for ever
        assert c.wait(60)
        abandoned = [j for j in jobs if j.status == JobStatus.Abandoned]
        assert abandoned and all(j.result is None and "node-a" in (j.exception or "") for j in abandoned)
        assert all(j.status == JobStatus.Finished for j in jobs if j not in abandoned)


def logged_run(i, path):  # type: ignore[no-untyped-def]
    import os

    import gridlib
    with open(path, "a") as f:  # one line per start, written before the job's result
        f.write(f"{i} {gridlib.job_context().node_name}\n")
        f.flush()
        os.fsync(f.fileno())
    return i


def test_a_killed_node_holding_short_jobs_ahead_runs_none_twice(two_nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    runs = tmp_path / "runs.log"
    with gridlib.JobCluster(logged_run, nodes=addresses(a, b), pulse_interval=PULSE) as c:
        jobs = [c.submit(i, str(runs)) for i in range(3000)]
        assert wait_for(lambda: sum(j.node == "node-a" for j in jobs if j.finished) > 300, 60)
        assert "event=jobs_ahead" in a.log()  # its workers held jobs ahead when it died
        a.kill()
        for job in jobs:
            job(timeout=120)  # never blocks for ever
        assert c.wait(60)
    started = Counter(int(line.split()[0]) for line in runs.read_text().splitlines())
    twice = [i for i, n in started.items() if n > 1]
    assert not twice, f"not reentrant, yet run twice: {twice[:10]}"
    for i, job in enumerate(jobs):
        assert job.status in (JobStatus.Finished, JobStatus.Abandoned), (i, job.status, job.exception)
        if job.status == JobStatus.Finished:
            assert job.result == i and started[i] == 1
    abandoned = [j for j in jobs if j.status == JobStatus.Abandoned]
    # what node-a's two workers ran or held ahead when it died: may have started
    assert len(abandoned) <= 2 * (1 + LOOKAHEAD), len(abandoned)


def test_frozen_node_is_lost_then_comes_back_without_duplicates(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    events = Events()
    with gridlib.JobCluster(sleeper, nodes=addresses(a, b), reentrant=True, pulse_interval=PULSE,
                            cluster_status=events.cluster_status, job_status=events.job_status) as c:
        jobs = [c.submit(1.0) for _ in range(8)]
        assert wait_for(lambda: running_on(jobs, "node-a"), 60)
        a.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            assert wait_for(lambda: "node-a" in events.closed, 30)
            detection = (events.closed["node-a"] - frozen) / PULSE
            assert detection <= 6.5, f"lost after {detection:.1f} intervals"
        finally:
            a.signal(signal.SIGCONT)
        assert [j(timeout=120) for j in jobs] == [1.0] * 8
        # node-a rejoins and can work again
        assert wait_for(lambda: any(e in a.log() for e in ("event=reregister", "event=dialing",
                                                         "event=fenced")), 30)
        more = [c.submit(0.01) for _ in range(6)]
        assert [j(timeout=120) for j in more] == [0.01] * 6
        assert c.duplicates == 0
    assert set(events.finals.values()) == {1} and len(events.finals) == 14


def test_poison_job_is_terminated_and_named_and_the_grid_goes_on(tmp_path: Path) -> None:
    nodes = [NodeProcess(tmp_path, "--cpus", "1", "--name", f"n{i}") for i in range(3)]

    def poison():  # type: ignore[no-untyped-def]
        import os
        import signal
        import time

        import psutil
        node = psutil.Process(os.getppid()).ppid()  # worker -> forkserver -> node daemon
        os.kill(node, signal.SIGKILL)
        time.sleep(60)

    try:
        with gridlib.JobCluster(poison, nodes=addresses(*nodes), reentrant=True, max_attempts=2,
                                pulse_interval=PULSE) as c:
            job = c.submit()
            job(timeout=120)
            assert job.status == JobStatus.Terminated
            assert "JobLostNodes" in (job.exception or "") and "all 2 attempts" in (job.exception or "")
            alive = [n for n in nodes if n.proc.poll() is None]
            assert len(alive) == 1
        with gridlib.JobCluster(lambda x: x, nodes=addresses(*alive), pulse_interval=PULSE) as c:
            assert [c.submit(i)(timeout=60) for i in range(3)] == [0, 1, 2]
    finally:
        for node in nodes:
            node.stop()
    assert not any(node.orphans for node in nodes)


def test_churn_loses_no_job_and_delivers_no_duplicate(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    events = Events()

    def work(i):  # type: ignore[no-untyped-def]
        import random
        import time
        time.sleep(random.uniform(0.02, 0.12))
        return i * i

    stop = threading.Event()
    restarts = 0

    def churn() -> None:
        nonlocal restarts
        while not stop.wait(2.0):
            a.restart()  # SIGKILL, then the same port and directory: same node id
            restarts += 1

    with gridlib.JobCluster(work, nodes=addresses(a, b), reentrant=True, max_attempts=50,
                            pulse_interval=PULSE, job_status=events.job_status) as c:
        jobs = [c.submit(i) for i in range(200)]
        killer = threading.Thread(target=churn)
        killer.start()
        try:
            assert c.wait(240)
        finally:
            stop.set()
            killer.join()
        assert [j.result for j in jobs] == [i * i for i in range(200)]
        assert all(j.status == JobStatus.Finished for j in jobs)
        assert c.duplicates == 0
    assert restarts >= 1
    assert len(events.finals) == 200 and set(events.finals.values()) == {1}


def test_a_killed_nodes_long_job_dies_with_it(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1")
    try:
        with gridlib.JobCluster(sleeper, nodes=addresses(node), pulse_interval=PULSE) as c:
            job = c.submit(300)
            assert wait_for(lambda: job.status == JobStatus.Running, 60)
            node.kill()
            # the worker, the forkserver and the resource tracker go too, well before the job's end
            assert wait_for(lambda: not node.leftovers(), 15), node.leftovers()
            job(timeout=60)
            assert job.status == JobStatus.Abandoned
    finally:
        node.stop()
