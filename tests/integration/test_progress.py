"""Progress for many jobs from library code: gridlib.progress and as_completed(progress=...)."""

from __future__ import annotations

import asyncio
import io
import re

import pytest

import gridlib
from gridlib import JobStatus
from gridlib.progress_view import display
from tests.helpers import NodeProcess


def maybe_fail(x):  # type: ignore[no-untyped-def]
    if x == 3:
        raise ValueError("three")
    return x


def test_progress_waits_for_every_job_and_reports_done_and_failed(node_daemon: NodeProcess) -> None:
    out = io.StringIO()  # not a terminal: plain lines
    with gridlib.JobCluster(maybe_fail, nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        jobs = [cluster.submit(i) for i in range(20)]
        returned = gridlib.progress(jobs, label="squares", timeout=120, stream=out)
    assert returned == jobs
    assert all(job.status in (JobStatus.Finished, JobStatus.Terminated) for job in jobs)
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"\[gridlib\] squares: 20/20 done, 1 failed \(\d+\.\d s\)", last), last


def test_as_completed_with_progress_for_threads_and_asyncio(node_daemon: NodeProcess,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRIDLIB_PROGRESS", "lines")
    with gridlib.JobCluster(maybe_fail, nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        jobs = [cluster.submit(i) for i in (1, 2)]
        assert sorted(j.result for j in cluster.as_completed(jobs, timeout=60, progress="pairs")) == [1, 2]
        assert "[gridlib] pairs: 2/2 done" in capsys.readouterr().err

        async def main() -> list[int]:
            jobs = [cluster.submit(i) for i in (4, 5, 6)]
            return sorted([job.result async for job in cluster.as_completed(jobs, 60, progress=True)])

        assert asyncio.run(main()) == [4, 5, 6]
        assert "[gridlib] jobs: 3/3 done" in capsys.readouterr().err


def test_progress_of_executor_futures_and_a_timeout_that_names_what_is_left(
        node_daemon: NodeProcess) -> None:
    def nap(seconds):  # type: ignore[no-untyped-def]
        import time
        time.sleep(seconds)
        return seconds

    out = io.StringIO()
    with gridlib.GridExecutor(nodes=[f"127.0.0.1:{node_daemon.port}"]) as ex:
        futures = [ex.submit(nap, 0.0) for _ in range(5)]
        assert gridlib.progress(futures, stream=out, timeout=120) == futures
        assert "5/5 done" in out.getvalue()
        slow = ex.submit(nap, 2.0)
        out = io.StringIO()
        with pytest.raises(TimeoutError):
            gridlib.progress([slow], timeout=0.2, stream=out)
        assert "0/1 done" in out.getvalue()  # the display ends with how far it got


def test_a_bar_on_a_terminal_and_a_clear_error_for_a_bad_choice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    bar = display(3, "work", out, kind="bar")
    for failed in (False, True, False):
        bar.advance(failed)
    bar.close()
    assert "work" in out.getvalue() and "3/3" in out.getvalue() and "1 failed" in out.getvalue()
    monkeypatch.setenv("GRIDLIB_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="GRIDLIB_PROGRESS"):
        display(1)
    monkeypatch.setenv("GRIDLIB_PROGRESS", "off")
    quiet = io.StringIO()
    shown = display(2, stream=quiet)
    shown.advance(False)
    shown.close()
    assert quiet.getvalue() == ""
    with pytest.raises(TypeError, match="Jobs or concurrent.futures"):
        gridlib.progress([1, 2])
