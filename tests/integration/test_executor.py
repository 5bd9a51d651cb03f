"""GridExecutor, as_completed, await job, report() and the joblib backend, on a real node."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus, RemoteJobError
from gridlib.daemons.runtime.executor_runtime import FUNCTION_DIR
from tests.helpers import NodeProcess, wait_for


class Unusual(ValueError):
    """An exception class the client can unpickle (defined here, shipped by value)."""


def executor_for(node: NodeProcess) -> gridlib.GridExecutor:
    return gridlib.GridExecutor(nodes=[f"127.0.0.1:{node.port}"])


def test_submit_any_function_map_in_chunks_and_remote_errors(node_daemon: NodeProcess) -> None:
    def square(x):  # type: ignore[no-untyped-def]
        return x * x

    def fails(x):  # type: ignore[no-untyped-def]
        raise Unusual(f"bad {x}")

    with executor_for(node_daemon) as ex:
        assert ex.submit(square, 7).result(60) == 49
        assert ex.submit(lambda a, b=0: a - b, 10, b=3).result(60) == 7  # another function, kwargs
        assert list(ex.map(square, range(20), chunksize=6)) == [x * x for x in range(20)]
        assert list(ex.map(pow, [2, 3], [5, 2], timeout=60)) == [32, 9]  # a builtin, two iterables
        future = ex.submit(fails, 3)
        with pytest.raises(ValueError) as caught:  # the original class still matches...
            future.result(60)
        error = caught.value
        assert isinstance(error, RemoteJobError) and isinstance(error, Unusual)  # ...and ours too
        assert error.type == "Unusual" and "bad 3" in error.message and error.node
        assert "raise Unusual" in error.traceback
        with pytest.raises(RemoteJobError):  # map raises when iteration reaches the failed call
            list(ex.map(fails, [1], timeout=60))
    with pytest.raises(RuntimeError):
        ex.submit(square, 1)


def test_functions_are_shipped_once_and_cached_on_the_node(node_daemon: NodeProcess) -> None:
    def marker(x):  # type: ignore[no-untyped-def]
        return ("cached function", x)

    with executor_for(node_daemon) as ex:
        assert [f.result(60) for f in [ex.submit(marker, i) for i in range(4)]][-1] == ("cached function", 3)
        cache_dirs = list(node_daemon.prefix.rglob(FUNCTION_DIR))
        assert cache_dirs and any(d.iterdir() for d in cache_dirs)  # on disk, for every worker
        assert wait_for(lambda: not ex._needs_pickle(ex._pickle(marker)[0]), 30)
        sent: list[object] = []
        real_submit = ex.cluster.submit

        def spy(digest, blob, calls):  # type: ignore[no-untyped-def]
            sent.append(blob)
            return real_submit(digest, blob, calls)

        ex.cluster.submit = spy
        assert ex.submit(marker, 9).result(60) == ("cached function", 9)
        assert sent == [None]  # the node has it: the job carried only its digest


def test_cancel_shutdown_and_asyncio(node_daemon: NodeProcess, tmp_path: Path) -> None:
    def nap(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    ex = executor_for(node_daemon)
    try:
        async def main() -> list[float]:
            loop = asyncio.get_running_loop()
            return list(await asyncio.gather(*(loop.run_in_executor(ex, nap, 0.05 * i)
                                               for i in range(3))))
        assert asyncio.run(main()) == [0.0, 0.05, 0.1]
        running = [ex.submit(nap, 30) for _ in range(3)]
        assert all(f.cancel() for f in running)  # their jobs are cancelled on the grid too
        assert ex.cluster.wait(60)
    finally:
        start = time.monotonic()
        ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - start < 30  # nothing left running for 30 s


def test_terminate_kills_running_calls_as_joblib_abort_needs(node_daemon: NodeProcess) -> None:
    def nap(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    ex = executor_for(node_daemon)
    try:
        futures = [ex.submit(nap, 60) for _ in range(3)]  # 2 CPUs: two run, one waits
        assert wait_for(lambda: sum(f.running() for f in futures) == 2, 60)
        started = time.monotonic()
        ex.terminate(futures)
        cf.wait(futures, timeout=30)
        assert all(f.done() for f in futures) and time.monotonic() - started < 30
        for future in futures:  # killed on the node, or never started: no value
            assert future.cancelled() or future.exception() is not None
        assert ex.submit(nap, 0.0).result(timeout=60) == 0.0  # the grid serves the next call
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def test_as_completed_for_threads_and_asyncio_and_await_job(node_daemon: NodeProcess) -> None:
    def nap(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    with gridlib.JobCluster(nap, nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        jobs = [cluster.submit(s) for s in (1.0, 0.0)]
        order = [job.result for job in cluster.as_completed(jobs, timeout=60)]
        assert order == [0.0, 1.0]  # the short one first

        async def main() -> tuple[list[float], float]:
            jobs = [cluster.submit(s) for s in (0.8, 0.0)]
            seen = [job.result async for job in cluster.as_completed(jobs, timeout=60)]
            return seen, await cluster.submit(0.01)
        assert asyncio.run(main()) == ([0.0, 0.8], 0.01)

        slow = cluster.submit(20)
        with pytest.raises(TimeoutError):
            list(cluster.as_completed([slow], timeout=0.3))
        done = threading.Event()
        slow.add_done_callback(lambda job: done.set())
        cluster.cancel(slow)
        assert done.wait(60) and slow.status == JobStatus.Cancelled
        assert slow() is None  # a job that did not finish returns None

        report = cluster.report()
        assert report.jobs_done >= 5 and report.jobs_pending == 0
        assert report.nodes and report.nodes[0].cpus == 2
        assert report.as_dict()["speedup"] == report.speedup
        assert "speedup" in str(report) and "<table>" in report._repr_html_()


def test_joblib_backend(node_daemon: NodeProcess) -> None:
    joblib = pytest.importorskip("joblib")  # a dev dependency: installed in CI
    from gridlib.joblib_backend import GridBackend

    gridlib.register_joblib()

    def triple(x):  # type: ignore[no-untyped-def]
        return 3 * x

    with executor_for(node_daemon) as ex, joblib.parallel_config(backend="gridlib", executor=ex):
        assert joblib.Parallel(n_jobs=-1)(joblib.delayed(triple)(x) for x in range(50)) \
            == [3 * x for x in range(50)]
        assert GridBackend(executor=ex).effective_n_jobs(-1) == 2  # the node's CPUs
        with pytest.raises(ZeroDivisionError):
            joblib.Parallel(n_jobs=2)(joblib.delayed(lambda x: 1 / x)(x) for x in (1, 0))


def test_executor_is_a_concurrent_futures_executor() -> None:
    assert issubclass(gridlib.GridExecutor, cf.Executor)
    with pytest.raises(ValueError):
        gridlib.GridExecutor(max_workers=0)


def test_joblib_raises_task_errors_as_loky_does_and_nests(node_daemon: NodeProcess) -> None:
    """The original class itself (KeyboardInterrupt included), the remote traceback as its
    cause; and a task may run Parallel(backend="gridlib") itself."""
    import traceback

    import joblib

    gridlib.register_joblib()

    def divide(x: int) -> float:
        return 1 / x

    def interrupt(x: int) -> int:
        raise KeyboardInterrupt

    def nested(n: int) -> list[int]:
        import joblib as jl
        return jl.Parallel(n_jobs=2, backend="gridlib")(jl.delayed(abs)(-i) for i in range(n))

    ex = gridlib.GridExecutor(nodes=[f"127.0.0.1:{node_daemon.port}"])
    try:
        with joblib.parallel_config(backend="gridlib", executor=ex):
            with pytest.raises(ZeroDivisionError) as caught:
                joblib.Parallel(n_jobs=2)(joblib.delayed(divide)(x) for x in (1, 0))
            assert type(caught.value) is ZeroDivisionError
            text = "".join(traceback.format_exception(caught.value))
            assert "in divide" in text and "division by zero" in text  # the remote traceback
            with pytest.raises(KeyboardInterrupt):
                joblib.Parallel(n_jobs=2)(joblib.delayed(interrupt)(x) for x in (1, 0))
    finally:
        ex.shutdown()
    with joblib.parallel_config(backend="gridlib", nodes=[f"127.0.0.1:{node_daemon.port}"]):
        assert joblib.Parallel(n_jobs=1)(joblib.delayed(nested)(3) for _ in range(1)) == [[0, 1, 2]]
