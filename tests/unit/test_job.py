"""``Job`` as the user sees it, now that a queued job carries no ``threading.Event`` and no
per-instance dict (a million queued jobs must fit in 2 GB: docs/benchmarks.md): waiting,
``job.finish``, callbacks, ``kwargs``, tags and weak references behave as before."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

import pytest

from gridlib.job import Job, JobStatus


def queued(job_id: int = 0, kwargs: dict[str, object] | None = None) -> Job:
    return Job(job_id, f"{'ab' * 8}{job_id:x}", (job_id,), kwargs or {}, 1.0)


def complete(job: Job, result: object = "done") -> list[object]:
    """What ``JobCluster._apply_result`` does: fill the job in, then mark it final."""
    job.result, job.status = result, JobStatus.Finished
    return job._set_done()  # type: ignore[return-value]


def test_waiting_on_a_job_before_and_after_it_finishes() -> None:
    job = queued()
    assert not job.finished
    with pytest.raises(TimeoutError):
        job(timeout=0.01)
    waiter_result: list[object] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(job(timeout=30)))
    waiter.start()
    complete(job, 42)
    waiter.join(30)
    assert waiter_result == [42]
    assert job.finished and job() == 42 and job(timeout=0) == 42


def test_finish_is_one_event_set_once_the_job_is_final() -> None:
    job = queued()
    early = job.finish
    assert isinstance(early, threading.Event) and not early.is_set()
    assert job.finish is early  # the same Event every time
    complete(job)
    assert early.is_set()

    late = queued(1)
    complete(late)
    assert late.finish.is_set()  # asked for only after the job ended: already set
    assert late.finish.wait(0)


def test_a_job_not_finished_returns_none_like_dispy() -> None:
    job = queued()
    job.status = JobStatus.Terminated
    job._set_done()
    assert job.finished and job(timeout=1) is None and job.finish.is_set()


def race_waiters_and_completion(job: Job) -> list[bool]:
    """Four threads start waiting (``job()``, ``job.finish``) as this one completes ``job``."""
    start = threading.Barrier(5)
    woke: list[bool] = []

    def wait_call() -> None:
        start.wait()
        woke.append(job(timeout=10) == "done")

    def wait_event() -> None:
        start.wait()
        woke.append(job.finish.wait(10))

    threads = [threading.Thread(target=fn) for fn in (wait_call, wait_event, wait_call, wait_event)]
    for thread in threads:
        thread.start()
    start.wait()
    complete(job)
    for thread in threads:
        thread.join(15)
    return woke


def test_no_waiter_misses_the_end_of_its_job() -> None:
    """Every waiter wakes up: the Event made on demand cannot miss the completion."""
    for round_ in range(200):
        assert race_waiters_and_completion(queued(round_)) == [True] * 4, round_


def test_done_callbacks_before_and_after_the_end() -> None:
    job = queued()
    seen: list[str] = []
    job.add_done_callback(lambda j: seen.append("delivery"))
    job._on_done(lambda j: seen.append("inline"), inline=True)
    later = complete(job)
    assert seen == ["inline"] and len(later) == 1  # the other one goes to the delivery thread
    later[0](job)  # type: ignore[operator]
    job.add_done_callback(lambda j: seen.append("after"))  # already final: runs at once
    assert seen == ["inline", "delivery", "after"]


def test_kwargs_are_a_dict_kept_on_the_job() -> None:
    plain = queued()
    assert plain.kwargs == {}
    plain.kwargs["added"] = 1  # the same dict every time, as when it was an attribute
    assert plain.kwargs == {"added": 1}
    given = queued(1, {"x": 2})
    assert given.kwargs == {"x": 2} and given.args == (1,)
    given.kwargs = {"y": 3}
    assert given.kwargs == {"y": 3}


def test_a_job_can_still_be_tagged_and_weakly_referenced() -> None:
    job = queued()
    job.tag = "mine"  # type: ignore[attr-defined]
    assert job.tag == "mine"  # type: ignore[attr-defined]
    ref = weakref.ref(job)
    assert ref() is job
    del job
    gc.collect()
    assert ref() is None


def test_a_queued_job_is_small() -> None:
    """The guard for the million-job target: with a ``threading.Event`` each (1.2 KB) a
    queued job took 1.6 KB here; without, about 360 bytes with its id and uid."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        jobs = [queued(1000 + i) for i in range(2000)]
        per_job = (tracemalloc.get_traced_memory()[0] - before) / len(jobs)
    finally:
        tracemalloc.stop()
    assert per_job < 600, per_job
    assert all(not job.finished for job in jobs)
