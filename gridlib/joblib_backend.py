"""A joblib backend that runs ``Parallel`` batches on the grid (optional: needs joblib).

    import gridlib, joblib
    gridlib.register_joblib()
    with joblib.parallel_config(backend="gridlib"):
        squares = joblib.Parallel(n_jobs=-1)(joblib.delayed(f)(x) for x in xs)

Batches go through a :class:`~gridlib.GridExecutor`.  By default one executor
per process is started on first use (``nodes=None``: this host, a private node
if none runs) and closed at exit; ``parallel_config(backend="gridlib",
executor=ex)`` uses yours, and any other keyword (``nodes=``, ``secret=``,
``scheduler=`` ...) configures the default one.  ``n_jobs=-1`` means every CPU
of the cluster's nodes.
"""

from __future__ import annotations

import atexit
import threading
import time
from concurrent.futures import Future
from typing import Any

from gridlib.executor import GridExecutor
from gridlib.protocol.errors import RemoteJobError

__all__ = ["register_joblib", "GridlibBackend", "GridBackend"]

_default: GridExecutor | None = None
_default_lock = threading.Lock()


def _default_executor(options: dict[str, Any]) -> GridExecutor:
    global _default
    with _default_lock:
        if _default is None:
            _default = GridExecutor(**options)
            atexit.register(_default.shutdown, wait=False, cancel_futures=True)
        return _default


def register_joblib() -> None:
    """Make ``backend="gridlib"`` available to joblib (raises ImportError without joblib)."""
    from joblib import register_parallel_backend

    register_parallel_backend("gridlib", GridlibBackend)


def _run_batch(batch: Any) -> Any:
    """Run one of joblib's batches on a node, where a task that runs
    ``Parallel(backend="gridlib")`` itself (nested) finds the backend registered,
    as it is in the client.  Shipped by reference: the node imports this module."""
    if not _registered_here:
        _register_here()
    return batch()


_registered_here = False


def _register_here() -> None:
    global _registered_here
    _registered_here = True
    try:
        register_joblib()
    except Exception:  # joblib without the parts we need: no nesting, nothing else lost
        pass


def _backend_base() -> type:
    from joblib.parallel import ParallelBackendBase

    return ParallelBackendBase  # type: ignore[no-any-return]


def _as_loky(result: Any, *args: Any) -> Any:
    """A task's failure raised as joblib's process backend raises it: the original exception
    itself (``type(e) is ValueError``; a ``KeyboardInterrupt`` too), the remote traceback as
    its cause (as ``concurrent.futures.process`` attaches ``_RemoteTraceback``)."""
    try:
        return result(*args)
    except RemoteJobError as error:
        original = getattr(error, "original", None)
        if isinstance(original, BaseException):
            raise original from error.__cause__
        raise


class GridlibBackend(_backend_base()):  # type: ignore[misc]
    """joblib's ``ParallelBackendBase`` over a ``GridExecutor``."""

    supports_retrieve_callback = True
    supports_timeout = True
    default_n_jobs = -1

    def __init__(self, executor: GridExecutor | None = None, nesting_level: int | None = None,
                 inner_max_num_threads: int | None = None, **options: Any) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        self._executor = executor
        self._options = options
        self._futures: set[Future[Any]] = set()

    @property
    def executor(self) -> GridExecutor:
        if self._executor is None:
            self._executor = _default_executor(self._options)
        return self._executor

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None or n_jobs < 0:
            cpus = self._grid_cpus()
            return max(1, cpus + 1 + n_jobs if n_jobs is not None and n_jobs < -1 else cpus)
        return n_jobs

    def _grid_cpus(self, wait: float = 10.0) -> int:
        """CPUs of the cluster's nodes, waiting up to ``wait`` s for the first to set up."""
        deadline, pause = time.monotonic() + wait, threading.Event()
        while True:
            cpus: int = sum(n.cpus for n in self.executor.cluster.status().nodes)
            if cpus or time.monotonic() >= deadline:
                return cpus
            pause.wait(0.05)

    def submit(self, func: Any, callback: Any = None) -> Future[Any]:
        future = self.executor.submit(_run_batch, func)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: Future[Any]) -> Any:
        return _as_loky(future.result)

    def retrieve_result(self, out: Future[Any], timeout: float | None = None) -> Any:
        return _as_loky(out.result, timeout)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """joblib gives up on this run (an error, a timeout): calls not started are cancelled,
        and those running are killed on their nodes, as loky terminates its workers."""
        futures = list(self._futures)
        for future in futures:
            future.cancel()
        if self._executor is not None:
            self._executor.terminate(futures)


GridBackend = GridlibBackend  # the name before 0.2
