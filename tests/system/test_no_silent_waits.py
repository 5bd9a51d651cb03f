"""Nothing waits silently: every way a job can fail to run ends it, naming the cause.

Against real daemons: a ``gridlib node`` started in another directory (its
cwd and sys.path share nothing with the test's), a node with a small
message limit, the private local node killed with SIGKILL or unable to
start.  Each case ends every job within seconds (the timeouts below are
generous deadlines, not expectations) and ``close()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import NodeProcess, free_port, wait_for


@pytest.fixture(scope="module")
def far_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node daemon whose working directory is an empty directory of its own."""
    home = tmp_path_factory.mktemp("far-node")
    node = NodeProcess(home, "--cpus", "2", cwd=home)
    yield node
    node.stop()


def at(node: NodeProcess) -> list[str]:
    return [f"127.0.0.1:{node.port}"]


def slow(seconds: float) -> float:
    import time
    time.sleep(seconds)
    return seconds


# -- 2. setup that fails on every node --------------------------------------------------------

def test_a_setup_that_raises_ends_every_job_with_its_reason(far_node: NodeProcess) -> None:
    def setup() -> None:
        raise RuntimeError("the database is unreachable")

    with gridlib.JobCluster(slow, nodes=at(far_node), setup=setup) as cluster:
        jobs = [cluster.submit(0) for _ in range(3)]
        for job in jobs:
            assert job(timeout=60) is None
            assert job.status == JobStatus.Terminated and job.exception_type == "SetupError"
            assert "the database is unreachable" in (job.exception or "")


def test_a_refused_dest_path_ends_the_jobs_naming_the_path(far_node: NodeProcess) -> None:
    with gridlib.JobCluster(slow, nodes=at(far_node), dest_path="../../escape") as cluster:
        job = cluster.submit(0)
        assert job(timeout=60) is None
        assert job.status == JobStatus.Terminated
        assert "../../escape" in (job.exception or "") and "refused" in (job.exception or "")


# -- 3. no node reachable -----------------------------------------------------------------

def test_a_wrong_port_ends_with_no_nodes_error_naming_the_address() -> None:
    port = free_port()  # where nothing listens
    with gridlib.JobCluster(slow, nodes=[f"127.0.0.1:{port}"], node_wait=2) as cluster:
        job = cluster.submit(0)
        assert job(timeout=60) is None
        assert job.status == JobStatus.Abandoned and job.exception_type == "NoNodesError"
        message = job.exception or ""
        assert f"127.0.0.1:{port}" in message and "nothing listens there" in message
        assert "node_wait=2" in message

        async def wait_for_it() -> None:
            await cluster.submit(0)
        with pytest.raises(gridlib.NoNodesError, match=f"127.0.0.1:{port}"):
            asyncio.run(wait_for_it())


def test_a_wrong_secret_ends_with_no_nodes_error_and_the_allow_line(far_node: NodeProcess) -> None:
    with gridlib.JobCluster(slow, nodes=at(far_node), secret="not the node's secret",
                            node_wait=3) as cluster:
        job = cluster.submit(0)
        assert job(timeout=60) is None
        message = job.exception or ""
        assert job.exception_type == "NoNodesError"
        assert "a node listens there but did not register" in message
        assert "gridlib keys allow" in message and "secret" in message


def test_without_node_wait_the_wait_is_announced_as_a_warning(caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from gridlib.daemons.scheduler import waiting
    assert waiting.WARN_AFTER == 10.0  # what the README promises: a WARNING within 10 s
    # the embedded scheduler runs in this process: here it warns after 1 s, not 10
    monkeypatch.setattr(waiting, "WARN_AFTER", 1.0)
    port = free_port()  # where nothing listens
    caplog.set_level(logging.WARNING, logger="gridlib.client")
    cluster = gridlib.JobCluster(slow, nodes=[f"127.0.0.1:{port}"])
    try:
        job = cluster.submit(0)
        assert wait_for(lambda: any("no_node_can_run" in r.getMessage() for r in caplog.records), 40)
        warning = next(r.getMessage() for r in caplog.records if "no_node_can_run" in r.getMessage())
        assert f"127.0.0.1:{port}" in warning and "node_wait" in warning
        assert not job.finished  # waiting is legitimate: nodes may join later
    finally:
        cluster.close(terminate=True, timeout=30)
    assert job.status == JobStatus.Cancelled


def test_gridlib_run_with_a_wrong_port_says_why(tmp_path: Path) -> None:
    program = tmp_path / "hello.py"
    program.write_text("print('hello')\n")
    port = free_port()  # where nothing listens
    gridlib_script = Path(sys.executable).with_name("gridlib")
    proc = subprocess.run([str(gridlib_script), "run", str(program), "-a", "",
                           "-n", f"127.0.0.1:{port}", "--node-wait", "2"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "NoNodesError" in proc.stdout and f"127.0.0.1:{port}" in proc.stdout


# -- 4. size limits ---------------------------------------------------------------------------

def test_a_result_over_the_clients_limit_ends_the_job_and_the_link_stays_up(far_node: NodeProcess) -> None:
    def make(n: int) -> bytes:
        return b"x" * n

    with gridlib.JobCluster(make, nodes=at(far_node), max_msg_size=1_000_000) as cluster:
        big = cluster.submit(3_000_000)
        assert big(timeout=60) is None
        assert big.exception_type == "PayloadTooLarge" and "max_msg_size" in (big.exception or "")
        assert cluster.submit(10)(timeout=60) == b"x" * 10  # the node is still linked


def test_an_argument_over_the_nodes_limit_is_refused_not_a_lost_node(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1", "--max-msg-size", "1m", cwd=tmp_path)
    try:
        with gridlib.JobCluster(len, nodes=at(node)) as cluster:
            assert cluster.submit(b"small")(timeout=60) == 5  # now the node's limit is known
            with pytest.raises(gridlib.PayloadTooLarge, match="message limit"):
                cluster.submit(b"y" * 3_000_000)
            assert cluster.submit(b"again")(timeout=60) == 5
        assert "node_lost" not in node.log()
    finally:
        node.stop()


# -- 5. the private local node dies, or cannot start --------------------------------------------

def test_a_private_node_killed_ends_its_jobs_with_its_reason_and_close_returns() -> None:
    # node_port: where no node answers, so that the cluster starts its private node
    cluster = gridlib.JobCluster(slow, node_port=free_port(), local_cpus=1)
    try:
        jobs = [cluster.submit(30) for _ in range(3)]
        assert wait_for(lambda: jobs[0].status == JobStatus.Running, 60)
        assert cluster._local_node is not None
        os.kill(cluster._local_node.pid, signal.SIGKILL)
        for job in jobs:
            assert job(timeout=60) is None
            assert "private local node" in (job.exception or "")
            assert "signal 9" in (job.exception or "")
    finally:
        cluster.close(timeout=60)


def test_a_private_node_that_cannot_start_ends_the_jobs_with_its_log(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "shadow"
    broken.mkdir()
    (broken / "msgpack.py").write_text("raise ImportError('this msgpack is broken on purpose')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken))  # only the node's interpreter sees it
    with gridlib.JobCluster(slow, node_port=free_port()) as cluster:  # (a private node)
        job = cluster.submit(0)
        assert job(timeout=60) is None
        assert "private local node" in (job.exception or "")
        assert "broken on purpose" in (job.exception or "")


# -- 6. versions ------------------------------------------------------------------------------

def test_a_client_of_another_python_version_is_refused_naming_both(far_node: NodeProcess,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from gridlib import versions
    ours = versions.VERSIONS["python"]
    monkeypatch.setitem(versions.VERSIONS, "python", "3.9")
    with gridlib.JobCluster(slow, nodes=at(far_node)) as cluster:
        job = cluster.submit(0)
        assert job(timeout=60) is None
        assert "Python 3.9" in (job.exception or "") and f"Python {ours}" in (job.exception or "")


# -- 7. failures look like failures -----------------------------------------------------------

def test_await_raises_the_remote_exception_as_its_own_class(far_node: NodeProcess) -> None:
    def fails(x: int) -> int:
        raise ValueError(f"bad value {x}")

    with gridlib.JobCluster(fails, nodes=at(far_node)) as cluster:
        async def run() -> None:
            await cluster.submit(7)
        with pytest.raises(ValueError, match="bad value 7") as caught:
            asyncio.run(run())
        assert isinstance(caught.value, gridlib.RemoteJobError)
        assert "bad value 7" in str(caught.value)
        assert "fails" in (caught.value.traceback or "")
        job = cluster.submit(8)
        assert job() is None and job.status == JobStatus.Terminated  # job() keeps dispy's contract
        tb = job.exception or ""
        assert tb.startswith("Traceback") and "worker.py" not in tb and "in fails" in tb


def test_await_of_a_cancelled_job_raises_cancelled(far_node: NodeProcess) -> None:
    with gridlib.JobCluster(slow, nodes=at(far_node)) as cluster:
        job = cluster.submit(30)
        cluster.cancel(job)

        async def run() -> None:
            await job
        with pytest.raises(CancelledError):
            asyncio.run(run())


def test_a_clean_close_is_not_reported_as_a_lost_scheduler(far_node: NodeProcess) -> None:
    before = len(far_node.log())
    with gridlib.JobCluster(slow, nodes=at(far_node)) as cluster:
        assert cluster.submit(0)(timeout=60) == 0
    assert wait_for(lambda: "event=scheduler_left" in far_node.log()[before:], 30)
    assert "scheduler_lost" not in far_node.log()[before:]


# -- operational errors, in one line ----------------------------------------------------------

@pytest.mark.parametrize("daemon", ["node", "scheduler", "relay"])
def test_a_port_in_use_is_one_line_not_a_traceback(daemon: str, tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = ["--dest-path-prefix", str(tmp_path / "node")] if daemon == "node" else []
        proc = subprocess.run([str(Path(sys.executable).with_name("gridlib")), daemon, "--host",
                               "127.0.0.1", "--port", str(port), *extra],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"gridlib {daemon}: 127.0.0.1:{port} is already in use: another process "
                     f"(another gridlib daemon?) listens there; stop it, or choose another port "
                     f"(--port)"], proc.stderr


def test_a_node_whose_workers_cannot_start_fails_the_cluster(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()  # the node's main process never imports cloudpickle; its workers do
    (broken / "cloudpickle.py").write_text("raise RuntimeError('cloudpickle is broken here')\n")
    node = NodeProcess(tmp_path, "--cpus", "1", env={"PYTHONPATH": str(broken)},
                       cwd=tmp_path)
    try:
        with gridlib.JobCluster(slow, nodes=at(node)) as cluster:
            job = cluster.submit(0)
            assert job(timeout=90) is None
            assert job.exception_type == "SetupError" and "worker" in (job.exception or "")
            assert "the node's log" in (job.exception or "")
        assert "cloudpickle is broken here" in node.log()
    finally:
        node.stop()
