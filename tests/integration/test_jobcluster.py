"""JobCluster against a real node daemon process on loopback, CURVE on.

Computations are defined inside the tests so that they ship by value,
as it does for functions of a user's ``__main__``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import NodeProcess, wait_for


def cluster_for(node: NodeProcess, computation, **kw) -> gridlib.JobCluster:  # type: ignore[no-untyped-def]
    return gridlib.JobCluster(computation, nodes=[f"127.0.0.1:{node.port}"], **kw)


def test_results_output_and_timings(node_daemon: NodeProcess) -> None:
    def square(x):  # type: ignore[no-untyped-def]
        print("squaring", x)
        print("warning", x, file=__import__("sys").stderr)
        return x * x

    with cluster_for(node_daemon, square) as cluster:
        jobs = [cluster.submit(i) for i in range(8)]
        assert [job(timeout=60) for job in jobs] == [i * i for i in range(8)]
        for i, job in enumerate(jobs):
            assert job.status == JobStatus.Finished
            assert job.stdout == f"squaring {i}\n"
            assert job.stderr == f"warning {i}\n"
            assert job.exception is None
            assert job.start_time is not None and job.end_time is not None
            assert job.submit_time <= job.start_time <= job.end_time
            assert job.node and job.ip_addr == "127.0.0.1"
            assert job.id == i  # sequential default ids
        assert cluster.wait(5)
        status = cluster.status()
        assert status.jobs_pending == 0
        assert sum(n.jobs_done for n in status.nodes) == 8


def test_lambdas_closures_kwargs_and_own_ids(node_daemon: NodeProcess) -> None:
    offset = 100
    with cluster_for(node_daemon, lambda x, y=0: x + y + offset) as cluster:
        job = cluster.submit_job_id("mine", 1, y=2)
        assert job(timeout=60) == 103
        assert job.id == "mine"


def test_exception_is_terminated_with_remote_traceback(node_daemon: NodeProcess) -> None:
    def fails(x):  # type: ignore[no-untyped-def]
        raise ValueError(f"bad input {x}")

    with cluster_for(node_daemon, fails) as cluster:
        job = cluster.submit(7)
        assert job(timeout=60) is None
        assert job.status == JobStatus.Terminated
        assert job.exception is not None
        assert "ValueError: bad input 7" in job.exception
        assert "Traceback" in job.exception


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_dying_worker_terminates_the_job_and_the_node_lives_on(node_daemon: NodeProcess, how: str) -> None:
    def crash(how):  # type: ignore[no-untyped-def]
        import ctypes
        import os
        if how == "exit":
            os._exit(3)
        if how == "segfault":
            ctypes.string_at(0)
        return "survived"

    with cluster_for(node_daemon, crash) as cluster:
        job = cluster.submit(how)
        job(timeout=60)
        assert job.status == JobStatus.Terminated
        assert "died" in (job.exception or "")
        after = [cluster.submit("fine") for _ in range(3)]
        assert [j(timeout=60) for j in after] == ["survived"] * 3


def test_unpicklable_argument_fails_at_submit(node_daemon: NodeProcess) -> None:
    with cluster_for(node_daemon, lambda x: x) as cluster:
        with pytest.raises(gridlib.SerializationError):
            cluster.submit(x for x in range(3))
        assert cluster.submit(1)(timeout=60) == 1


def test_cancel_running_and_queued_jobs(node_daemon: NodeProcess) -> None:
    def sleeper(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    with cluster_for(node_daemon, sleeper) as cluster:
        jobs = [cluster.submit(60) for _ in range(5)]  # 2 CPUs: 2 run, 3 wait
        assert wait_for(lambda: sum(j.status == JobStatus.Running for j in jobs) == 2, 60)
        for job in jobs:
            assert cluster.cancel(job)
        for job in jobs:
            job(timeout=30)
            assert job.status == JobStatus.Cancelled
        assert cluster.submit(0.01)(timeout=60) == 0.01  # fresh workers replaced the killed ones


def test_timeout_kills_the_job(node_daemon: NodeProcess) -> None:
    def sleeper(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)

    with cluster_for(node_daemon, sleeper, timeout=0.5) as cluster:
        job = cluster.submit(60)
        job(timeout=60)
        assert job.status == JobStatus.Terminated
        assert "TimeoutError" in (job.exception or "")
        quick = cluster.submit_job((0.01,), timeout=30)
        quick(timeout=60)
        assert quick.status == JobStatus.Finished


def test_provisional_results_and_callbacks_on_their_own_thread(node_daemon: NodeProcess) -> None:
    def progress(n):  # type: ignore[no-untyped-def]
        from gridlib import provisional_result
        for i in range(n):
            provisional_result(i)
        return "done"

    seen: list[tuple[JobStatus, object, str]] = []
    events: list[object] = []
    done = threading.Event()

    def job_status(job):  # type: ignore[no-untyped-def]
        seen.append((job.status, job.result, threading.current_thread().name))
        if job.status == JobStatus.Finished:
            done.set()

    def cluster_status(status, node, job):  # type: ignore[no-untyped-def]
        events.append(status)

    with cluster_for(node_daemon, progress, job_status=job_status,
                     cluster_status=cluster_status) as cluster:
        job = cluster.submit(3)
        assert job(timeout=60) == "done"
        assert done.wait(30)
    provisional = [r for s, r, _ in seen if s == JobStatus.ProvisionalResult]
    assert provisional == [0, 1, 2]
    assert seen[-1][:2] == (JobStatus.Finished, "done")
    assert all(name != "gridlib-io" and name != "MainThread" for _, _, name in seen)
    assert events.index(gridlib.NodeStatus.Initialized) < events.index(JobStatus.Running)
    assert events[-1] == JobStatus.Finished


def test_a_job_status_callback_that_raises_on_a_provisional_result_spares_cluster_status(
        node_daemon: NodeProcess) -> None:
    def progress():  # type: ignore[no-untyped-def]
        from gridlib import provisional_result
        provisional_result("halfway")
        return "done"

    def job_status(job):  # type: ignore[no-untyped-def]
        if job.status == JobStatus.ProvisionalResult:
            raise RuntimeError("a buggy callback")

    events: list[tuple[object, object]] = []

    def cluster_status(status, node, job):  # type: ignore[no-untyped-def]
        if job is not None:
            events.append((status, job.result))

    with cluster_for(node_daemon, progress, job_status=job_status,
                     cluster_status=cluster_status) as cluster:
        assert cluster.submit()(timeout=60) == "done"
        assert cluster.wait(30)
    assert (JobStatus.ProvisionalResult, "halfway") in events
    assert events[-1] == (JobStatus.Finished, "done")


def test_send_file_lands_in_the_client_directory(node_daemon: NodeProcess, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def make_report(name):  # type: ignore[no-untyped-def]
        import os

        from gridlib import job_context, send_file
        os.makedirs("out", exist_ok=True)
        path = os.path.join("out", name)
        with open(path, "w") as f:
            f.write(f"report from {job_context().node_name}")
        send_file(path)
        return path

    monkeypatch.chdir(tmp_path)
    with cluster_for(node_daemon, make_report) as cluster:
        job = cluster.submit("r1.txt")
        assert job(timeout=60) == "out/r1.txt"
        cluster.wait(30)
    assert wait_for(lambda: (tmp_path / "out" / "r1.txt").exists(), 30)
    assert (tmp_path / "out" / "r1.txt").read_text().startswith("report from ")


def test_send_file_refuses_paths_outside_the_job(node_daemon: NodeProcess) -> None:
    def escape():  # type: ignore[no-untyped-def]
        from gridlib import send_file
        send_file("../../../../etc/passwd")

    with cluster_for(node_daemon, escape) as cluster:
        job = cluster.submit()
        job(timeout=60)
        assert job.status == JobStatus.Terminated
        assert "not a file inside the job directory" in (job.exception or "")


def test_program_computation(node_daemon: NodeProcess, tmp_path: Path) -> None:
    script = tmp_path / "greet.py"
    script.write_text(
        "import os, sys\n"
        "print('hello', *sys.argv[1:], os.environ['GRID_JOB_ID'])\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    with cluster_for(node_daemon, str(script)) as cluster:
        jobs = [cluster.submit(code, "world") for code in (0, 3)]
        named = cluster.submit_job_id("greeting-7", 0, "you")
        assert [j(timeout=60) for j in [*jobs, named]] == [0, 3, 0]
        # GRID_JOB_ID is the job's id as the user knows it (job.id), not an internal one
        assert jobs[0].stdout == b"hello 0 world 0\n" and jobs[1].stdout == b"hello 3 world 1\n"
        assert named.stdout == b"hello 0 you greeting-7\n"
        assert jobs[1].stderr == b"to stderr\n"


def test_depends_files_modules_and_setup(node_daemon: NodeProcess, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "table.txt"
    data.write_text("41")
    module = tmp_path / "gridhelper_mod.py"
    module.write_text("def bump(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gridhelper_mod  # type: ignore[import-not-found]

    def setup(scale):  # type: ignore[no-untyped-def]
        global base
        with open("table.txt") as f:
            base = int(f.read()) * scale
        return 0

    def compute(x):  # type: ignore[no-untyped-def]
        import gridhelper_mod
        return gridhelper_mod.bump(base + x)  # noqa: F821 (set by setup on the node)

    with cluster_for(node_daemon, compute, depends=[str(data), gridhelper_mod], setup=setup,
                     setup_args=(1,)) as cluster:
        assert cluster.submit(0)(timeout=60) == 42
    sys.modules.pop("gridhelper_mod", None)


def test_setup_failure_on_every_node_ends_the_jobs_with_the_reason(node_daemon: NodeProcess) -> None:
    closed = threading.Event()

    def cluster_status(status, node, job):  # type: ignore[no-untyped-def]
        if status == gridlib.NodeStatus.Closed:
            closed.set()

    def bad_setup():  # type: ignore[no-untyped-def]
        return 1

    with cluster_for(node_daemon, lambda: 1, setup=bad_setup, cluster_status=cluster_status) as cluster:
        job = cluster.submit()
        assert job(timeout=60) is None
        assert closed.wait(60)  # the node is reported unusable too
        assert job.status == JobStatus.Terminated and job.exception_type == "SetupError"
        assert "setup returned 1" in (job.exception or "")
        later = cluster.submit()  # no node can run it: it ends at once, too
        assert later(timeout=30) is None and "setup returned 1" in (later.exception or "")


def test_pinned_jobs_and_node_jobs(node_daemon: NodeProcess) -> None:
    import socket
    with cluster_for(node_daemon, lambda: __import__("os").getpid()) as cluster:
        assert cluster.submit()(timeout=60)
        node = cluster.status().nodes[0]
        job = cluster.submit_node(node)
        assert job(timeout=60) and job.node == node.name
        job2 = cluster.submit_node(socket.gethostname())
        assert job2(timeout=60)


def test_print_status_table(node_daemon: NodeProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with cluster_for(node_daemon, lambda x: x) as cluster:
        for j in [cluster.submit(i) for i in range(4)]:
            j(timeout=60)
        cluster.print_status()
    out = capsys.readouterr().out
    assert "Total job time" in out and "speedup" in out and "jobs: 4" in out


def test_private_local_node_is_started_and_stopped(tmp_path: Path) -> None:
    from gridlib.local_node import node_listening
    if node_listening():
        pytest.skip("a node already listens on 127.0.0.1:51352, so no private node is started")
    cluster = gridlib.JobCluster(lambda: os.getpid(), local_cpus=1)
    try:
        assert cluster._local_node is not None
        pid = cluster._local_node.pid
        job = cluster.submit()
        assert job(timeout=60) and job.status == JobStatus.Finished
    finally:
        cluster.close()
    assert cluster._local_node.process.poll() is not None  # stopped, by PID
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_function_of_the_users_own_module_is_shipped(node_daemon: NodeProcess, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gridtriple_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gridtriple_mod  # type: ignore[import-not-found]

    with cluster_for(node_daemon, gridtriple_mod.triple) as cluster:
        assert cluster.submit(5)(timeout=60) == 15
    sys.modules.pop("gridtriple_mod", None)


def test_await_job_wait_timeout_and_close_terminate(node_daemon: NodeProcess) -> None:
    import asyncio

    def sleeper(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    cluster = cluster_for(node_daemon, sleeper)
    try:
        async def both() -> list[float]:
            return list(await asyncio.gather(cluster.submit(0.01), cluster.submit(0.02)))

        assert asyncio.run(both()) == [0.01, 0.02]
        slow = cluster.submit(60)
        with pytest.raises(TimeoutError):
            slow(timeout=0.2)
        assert cluster.wait(timeout=0.2) is False
        with pytest.raises(TimeoutError):
            cluster.close(timeout=0.2)
    finally:
        cluster.close(terminate=True)
    assert slow.status == JobStatus.Cancelled
    with pytest.raises(gridlib.GridError):
        cluster.submit(1)


def test_large_arguments_and_results_arrive_whole(node_daemon: NodeProcess) -> None:
    """Frames past the node's shared-memory threshold (and empty ones) keep every byte."""
    def echo(data, extra=b""):  # type: ignore[no-untyped-def]
        import hashlib
        print("x" * 300_000)  # large output too
        return data + extra, hashlib.sha256(data).hexdigest()

    import hashlib

    blobs = [os.urandom(3 << 20), os.urandom(300_000), b""]
    with cluster_for(node_daemon, echo) as cluster:
        jobs = [cluster.submit(blob, extra=b"!") for blob in blobs]
        for blob, job in zip(blobs, jobs, strict=True):
            value, digest = job(timeout=120)
            assert job.status == JobStatus.Finished, job.exception
            assert value == blob + b"!" and digest == hashlib.sha256(blob).hexdigest()
            assert job.stdout == "x" * 300_000 + "\n"


def test_a_job_running_longer_than_the_started_delay_is_seen_running(
        node_daemon: NodeProcess) -> None:
    # (a job done within STARTED_DELAY goes straight to Finished, but on a loaded machine
    # even sleep(0) may outlast it, so only the long job's events are certain)
    events: list[tuple[object, object]] = []

    def cluster_status(status, node, job):  # type: ignore[no-untyped-def]
        if job is not None:
            events.append((job.id, status))

    def nap(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    with cluster_for(node_daemon, nap, cluster_status=cluster_status) as cluster:
        assert cluster.submit_job_id("short", 0)(timeout=60) == 0
        assert cluster.submit_job_id("long", 0.5)(timeout=60) == 0.5
        assert wait_for(lambda: ("long", JobStatus.Finished) in events, 30)
    assert [s for j, s in events if j == "short"][-1:] == [JobStatus.Finished]
    assert [s for j, s in events if j == "long"] == [JobStatus.Running, JobStatus.Finished]


def test_dispy_wildcard_nodes_mean_this_hosts_node() -> None:
    """dispy programs write nodes='*' and nodes=['*']: this host's (here: private) node."""
    from tests.helpers import free_port
    for nodes in ("*", ["*"]):
        # node_port: where no node answers, so that the cluster starts its private node
        with gridlib.JobCluster(abs, nodes=nodes, node_port=free_port()) as cluster:
            assert cluster.submit(-7)(timeout=60) == 7
