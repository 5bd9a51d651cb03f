"""joblib's own ``test_parallel.py`` (installed with joblib), its backend-generic tests run
with ``backend="gridlib"``.

Every test function of that module that takes a ``backend`` argument is run
here once per combination of its other ``parametrize`` values, with
``backend="gridlib"``; fixtures it asks for (``tmpdir``, ``monkeypatch``)
come from pytest.  The file is imported at test time, never copied.  Cases
that exercise another backend's internals are listed in ``NOT_GENERIC`` with
the reason.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest

joblib = pytest.importorskip("joblib")
from joblib.test import test_parallel as jp  # noqa: E402

import gridlib  # noqa: E402
from gridlib import joblib_backend  # noqa: E402
from tests.helpers import wait_for  # noqa: E402

gridlib.register_joblib()


@pytest.fixture(autouse=True)
def nothing_left_running() -> Any:
    """Each case starts on an idle grid: a job a case left running is cancelled (killed) once
    the case is over, as loky's workers would be, instead of holding one of the private node's
    CPUs into the next cases.  (A case that ends without joblib aborting the run --
    ``test_parallel_unordered_generator_returns_fastest_first`` returns while its 30 s task
    runs -- would otherwise make the next case wait for it; an abort, on an error or a
    timeout, kills the running calls itself: ``GridExecutor.terminate``.)"""
    yield
    executor = joblib_backend._default
    if executor is None:
        return
    cluster = executor.cluster
    left = [job for job in list(cluster._jobs.values()) if not job.finished]
    for job in left:
        cluster.cancel(job)
    assert wait_for(lambda: all(job.finished for job in left), 60), left

NOT_GENERIC = {
    # names another backend's worker threads/processes, or joblib's own thread limits
    "test_main_thread_renamed_no_warning": "checks the threading backend's thread names",
    "test_parallel_thread_limit": "checks threadpoolctl limits inside loky workers",
    "test_thread_bomb_mitigation": "checks the thread limits loky sets in its workers",
    "test_dispatch_multiprocessing": "counts the multiprocessing backend's dispatches",
    "test_batching_auto_subprocesses": "inspects a process backend's batch size heuristics",
    "test_backend_batch_statistics_reset": "inspects joblib's own auto-batching statistics",
    "test_error_capture": "checks the identity of a process backend's worker pool object "
                          "(get_workers) after an error; the errors themselves are raised as "
                          "loky raises them (checked in test_executor.py)",
    "test_initializer_parallel": "its initializer reaches the parent through a multiprocessing "
                                 "Manager, whose authentication key only the parent's own "
                                 "child processes share",
    "test_initializer_context": "the same multiprocessing Manager as test_initializer_parallel",
    # a fresh interpreter that never imported gridlib: joblib has no plugin entry point through
    # which a backend registers itself there
    "test_parallel_with_interactively_defined_functions": "runs a fresh interpreter that never "
                                                          "registered the gridlib backend",
    "test_parallel_with_unpicklable_functions_in_args": "runs a fresh interpreter that never "
                                                        "registered the gridlib backend",
}


# cases that wait seconds by design (marked slow: `make test-quick` leaves them out); none now:
# test_parallel_timeout_fail_with_generator took 10 s while joblib's abort left its sleep(10)
# calls running (abort_everything now kills them, as loky does)
SLOW: set[str] = set()


def _cases() -> list[Any]:
    cases = []
    for name, fn in sorted(vars(jp).items()):
        if not name.startswith("test_") or not callable(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if "backend" not in params:
            continue
        grid: dict[str, list[Any]] = {}
        for mark in getattr(fn, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            names = [n.strip() for n in (mark.args[0].split(",") if isinstance(mark.args[0], str)
                                         else mark.args[0])]
            values = [v.values if hasattr(v, "values") else v for v in mark.args[1]]
            if names == ["backend"]:
                continue
            if len(names) == 1:
                grid[names[0]] = list(values)
            else:
                grid[",".join(names)] = [tuple(v) for v in values]
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            kwargs: dict[str, Any] = {}
            for key, value in zip(keys, combo, strict=True):
                if "," in key:
                    kwargs.update(zip(key.split(","), value, strict=True))
                else:
                    kwargs[key] = value
            if "backend" in kwargs:
                continue
            label = name + "".join(f"[{k}={v!r}]" for k, v in kwargs.items() if not callable(v))[:80]
            marks = [pytest.mark.skip(reason=NOT_GENERIC[name])] if name in NOT_GENERIC else []
            if name in SLOW:
                marks.append(pytest.mark.slow)
            cases.append(pytest.param(name, kwargs, id=label, marks=marks))
    return cases


@pytest.mark.parametrize(("name", "kwargs"), _cases())
def test_joblib_parallel_with_the_gridlib_backend(name: str, kwargs: dict[str, Any],
                                                  request: pytest.FixtureRequest) -> None:
    fn = getattr(jp, name)
    params = inspect.signature(fn).parameters
    args = dict(kwargs)
    for param in params:
        if param == "backend":
            args[param] = "gridlib"
        elif param not in args:
            args[param] = request.getfixturevalue(param)
    fn(**args)
