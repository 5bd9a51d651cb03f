"""``GridExecutor``: the grid as a ``concurrent.futures.Executor`` (API.md "Executor and asyncio").

Any function per call: each is pickled once (cloudpickle: the user's own code
by value, installed modules by reference, see ``gridlib/payload.py``), named
by the SHA-256 of its pickle and cached on the nodes
(``gridlib/executor_runtime.py``); the pickle travels with a job only until
every node of the cluster has run that function once.  ``map`` sends
``chunksize`` calls per job.  Futures are standard ``concurrent.futures.Future``
objects, completed on the cluster's delivery thread; a call that raised fails
its future with a :class:`~gridlib.RemoteJobError` carrying the remote
traceback -- an instance of the original exception's class too, when that
class can be unpickled here, so ``except ValueError`` still works.

Cancelling a future cancels its job, even a running one (its process is
killed): the grid does not tell the client the moment a job starts.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from gridlib.executor_runtime import run_calls
from gridlib.job import Job, JobStatus
from gridlib.payload import dumps
from gridlib.protocol.errors import GridError, RemoteJobError
from gridlib.remote_error import info_error

__all__ = ["GridExecutor"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
_KNOWN_FUNCTIONS = 10_000  # digests whose nodes are remembered (older ones: pickle sent again)


class GridExecutor(Executor):
    """Run callables on the grid; ``with GridExecutor() as ex: ex.submit(fn, x)``.

    ``nodes``/``secret`` and every other keyword go to the ``JobCluster`` it
    runs (``scheduler="host[:port]"`` makes it a ``SharedJobCluster``).
    ``max_workers`` sets the CPUs of the private local node started for
    ``nodes=None``; elsewhere the nodes' CPUs decide how many calls run at once.
    """

    def __init__(self, nodes: Any = None, secret: str | None = None,
                 max_workers: int | None = None, scheduler: str | None = None,
                 **options: Any) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if scheduler is not None:
            from gridlib.shared import SharedJobCluster
            self.cluster: Any = SharedJobCluster(run_calls, scheduler=scheduler, nodes=nodes,
                                                 secret=secret, **options)
        else:
            from gridlib.cluster import JobCluster
            self.cluster = JobCluster(run_calls, nodes=nodes, secret=secret,
                                      local_cpus=max_workers or 0, **options)
        self._lock = threading.Lock()
        self._shutdown = False
        # job -> (digest, pickle, calls, one call or a map chunk, its future)
        self._pending: dict[Job, tuple[str, bytes, list[Call], bool, Future[Any]]] = {}
        self._pickled: weakref.WeakKeyDictionary[Any, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        self._ran_on: OrderedDict[str, set[str]] = OrderedDict()  # digest -> nodes that have it

    # -- the Executor API -----------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on some node; a ``Future`` of its value."""
        return self._submit(self._pickle(fn), [(args, kwargs)], single=True)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """Like ``Executor.map``; ``chunksize`` calls travel and run as one job."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        deadline = None if timeout is None else time.monotonic() + timeout
        pickled = self._pickle(fn)
        calls = iter([(args, {}) for args in zip(*iterables, strict=False)])
        futures = []
        while chunk := list(itertools.islice(calls, chunksize)):
            futures.append(self._submit(pickled, chunk, single=False))
        return self._results(futures, deadline)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; with ``cancel_futures`` the unfinished ones are cancelled."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending.values())
        if cancel_futures:
            for *_, future in pending:
                future.cancel()
        if wait:
            self.cluster.wait()
        self.cluster.close(timeout=None if wait else 10.0, terminate=not wait or cancel_futures)

    # -- internals ------------------------------------------------------------------
    def _pickle(self, fn: Callable[..., Any]) -> tuple[str, bytes]:
        """(digest, pickle) of ``fn``, pickled once per function object when it allows."""
        try:
            known = self._pickled.get(fn)
        except TypeError:  # not weak-referenceable (e.g. a builtin): pickled every time
            known = None
        if known is not None:
            return known
        try:
            blob = dumps(fn)
        except Exception as exc:
            raise GridError(f"cannot send {fn!r} to the grid: {exc}") from None
        pickled = (hashlib.sha256(blob).hexdigest(), blob)
        try:
            self._pickled[fn] = pickled
        except TypeError:
            pass
        return pickled

    def _needs_pickle(self, digest: str) -> bool:
        """Until every node in the cluster ran this function, jobs carry its pickle."""
        nodes = set(self.cluster._node_names)  # (not status(): that counts every job; this is per call)
        with self._lock:
            ran_on = self._ran_on.get(digest, set())
        return not nodes or not nodes <= ran_on

    def _submit(self, pickled: tuple[str, bytes], calls: list[Call], single: bool,
                future: Future[Any] | None = None, with_pickle: bool = False) -> Future[Any]:
        with self._lock:
            if self._shutdown and future is None:
                raise RuntimeError("cannot schedule new calls after shutdown")
        future = future or Future()
        digest, blob = pickled
        job = self.cluster.submit(digest, blob if with_pickle or self._needs_pickle(digest)
                                  else None, calls)
        with self._lock:
            self._pending[job] = (digest, blob, calls, single, future)
        future.add_done_callback(lambda f: f.cancelled() and self.cluster.cancel(job))
        job.add_done_callback(self._job_done)
        return future

    def _ran(self, digest: str, node: str) -> None:
        with self._lock:
            self._ran_on.setdefault(digest, set()).add(node)
            self._ran_on.move_to_end(digest)
            while len(self._ran_on) > _KNOWN_FUNCTIONS:
                self._ran_on.popitem(last=False)

    def _job_done(self, job: Job) -> None:
        """Delivery thread: settle the future of a finished job (or send it again)."""
        with self._lock:
            entry = self._pending.pop(job, None)
        if entry is None or entry[4].done():
            return
        digest, blob, calls, single, future = entry
        if job.status == JobStatus.Finished and isinstance(job.result, tuple):
            kind, value = job.result
            if kind == "missing":  # a node without the function: once more, with it
                self._submit((digest, blob), calls, single, future,
                             with_pickle=True)
                return
            if job.node:
                self._ran(digest, job.node)
            if not future.set_running_or_notify_cancel():
                return
            outcomes = [(ok, v if ok else info_error(v, job.node)) for ok, v in value]
            if single:
                ok, v = outcomes[0]
                future.set_result(v) if ok else future.set_exception(v)
            else:
                future.set_result(outcomes)
            return
        if not future.set_running_or_notify_cancel():
            return
        future.set_exception(job.error() or RemoteJobError(job.status.name, "no result", "", job.node))

    @staticmethod
    def _results(futures: list[Future[Any]], deadline: float | None) -> Iterator[Any]:
        try:
            for future in futures:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                for ok, value in future.result(remaining):
                    if not ok:
                        raise value
                    yield value
        finally:
            for future in futures:
                future.cancel()
