"""``GridExecutor``: the grid as a ``concurrent.futures.Executor`` (docs/api.md §7, docs/executor.md).

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

The semantics are the standard library's (CPython's own
``test_concurrent_futures`` runs against it: tests/integration/
test_stdlib_concurrent_futures.py): a future is *running* once its job runs
on a node, and only a pending one can be cancelled (cancelling it cancels its
job); ``shutdown(wait=False)`` lets running and queued calls finish in the
background, ``cancel_futures=True`` cancels only those not running yet; at
interpreter exit the calls still unfinished are waited for, and a submit
from then on raises ``RuntimeError``; ``map`` keeps no result it has
yielded; ``initializer(*initargs)`` runs once in each worker process, and
one that raises breaks the executor (``BrokenExecutor``, logged CRITICAL on
``concurrent.futures`` as a pool does).  What a call prints is written to this
process's stdout and stderr when it completes (``forward_output=False``: kept
only in the jobs), as a process pool's workers print to the same terminal.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future
from concurrent.futures import wait as wait_futures
from typing import Any

from gridlib.daemons.runtime.executor_runtime import run_calls, run_initializer
from gridlib.daemons.runtime.payload import dumps
from gridlib.job import Job, JobStatus
from gridlib.protocol.errors import GridError, RemoteJobError
from gridlib.remote_error import info_error

__all__ = ["GridExecutor", "BrokenGridExecutor"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
_KNOWN_FUNCTIONS = 10_000  # digests whose nodes are remembered (older ones: pickle sent again)
_live: weakref.WeakSet[GridExecutor] = weakref.WeakSet()
_exiting = False


def _python_exit() -> None:
    """At interpreter exit (before non-daemon threads are joined): no new calls, and the
    unfinished ones are waited for -- as the standard executors do."""
    global _exiting
    _exiting = True
    for executor in list(_live):
        executor.shutdown(wait=True)


threading._register_atexit(_python_exit)  # type: ignore[attr-defined]  # (what concurrent.futures uses)


class BrokenGridExecutor(BrokenExecutor, GridError):
    """The executor's ``initializer`` failed on every node: no call can run."""


class GridExecutor(Executor):
    """Run callables on the grid; ``with GridExecutor() as ex: ex.submit(fn, x)``.

    ``nodes``/``secret`` and every other keyword go to the ``JobCluster`` it
    runs (``scheduler="host[:port]"`` makes it a ``SharedJobCluster``).
    ``max_workers`` sets the CPUs of the private local node started for
    ``nodes=None``; elsewhere the nodes' CPUs decide how many calls run at once.
    """

    def __init__(self, nodes: Any = None, secret: str | None = None,
                 max_workers: int | None = None, scheduler: str | None = None,
                 initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (),
                 forward_output: bool = True, **options: Any) -> None:
        if isinstance(nodes, int) and not isinstance(nodes, bool):  # GridExecutor(4), as a pool
            nodes, max_workers = None, nodes
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None:
            if not callable(initializer):
                raise TypeError("initializer must be a callable")
            options["setup"] = functools.partial(run_initializer, initializer, tuple(initargs))
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
        self._closed = False
        self._initializer = initializer is not None
        self._broken: str | bool = False  # why no call can run (the initializer failed)
        self._forward = forward_output
        # job -> (digest, pickle, calls, one call or a map chunk, its future)
        self._pending: dict[Job, tuple[str, bytes, list[Call], bool, Future[Any]]] = {}
        self._pickled: weakref.WeakKeyDictionary[Any, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        self._ran_on: OrderedDict[str, set[str]] = OrderedDict()  # digest -> nodes that have it
        _live.add(self)

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
        calls: Iterator[tuple[tuple[Any, ...], dict[str, Any]]] = iter(
            [(args, {}) for args in zip(*iterables, strict=False)])
        futures = []
        while chunk := list(itertools.islice(calls, chunksize)):
            futures.append(self._submit(pickled, chunk, single=False))
        return self._results(futures, deadline)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls.  ``cancel_futures``: cancel the calls not running yet.  ``wait``:
        return once every call has finished; else they finish in the background and the
        executor's cluster closes after them."""
        with self._lock:
            self._shutdown = True
            futures = [entry[4] for entry in self._pending.values()]  # (in submission order)
        if cancel_futures:
            # the oldest calls, as many as the nodes have CPUs, may be running already (a
            # node says so only after 10 ms): as in a pool, only the calls behind them go
            busy = sum(max(1, node.cpus) for node in list(self.cluster._nodes.values())) or 1
            for future in [f for f in futures if not f.done()][busy:]:
                future.cancel()  # (one known to run is not cancelled)
        if wait:
            self._close_after(futures)
        else:
            threading.Thread(target=self._close_after, args=(futures,),
                             name="gridlib-executor-shutdown").start()  # non-daemon: joined at exit

    def terminate(self, futures: Iterable[Future[Any]]) -> None:
        """Cancel the calls behind ``futures``, running ones too (their processes are killed on
        the nodes); each such future ends cancelled or with the job's ``Cancelled`` error.
        Beyond the ``Executor`` API: joblib's ``abort_everything`` uses it."""
        wanted = set(futures)
        with self._lock:
            jobs = [job for job, entry in self._pending.items() if entry[4] in wanted]
        for job in jobs:
            self.cluster.cancel(job)

    def _close_after(self, futures: list[Future[Any]]) -> None:
        wait_futures(futures)
        self.cluster.wait()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.cluster.close()
        _live.discard(self)

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
        if future is None:
            with self._lock:
                if self._broken:
                    raise BrokenGridExecutor(f"the executor is broken: {self._broken}")
                if self._shutdown:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                if _exiting:
                    raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        future = future or Future()
        digest, blob = pickled
        job = self.cluster.submit(digest, blob if with_pickle or self._needs_pickle(digest)
                                  else None, calls)
        with self._lock:
            self._pending[job] = (digest, blob, calls, single, future)
        def cancelled(f: Future[Any]) -> None:
            if f.cancelled():  # (cancel() leaves it CANCELLED: wait() counts it done once notified)
                f.set_running_or_notify_cancel()
                self.cluster.cancel(job)
        future.add_done_callback(cancelled)

        def running(_job: Job) -> None:  # its job runs on a node: the future is running
            if not future.running() and not future.set_running_or_notify_cancel():
                self.cluster.cancel(job)
        job._on_running = running
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
        job._on_running = None
        if entry is None or entry[4].done():
            return
        digest, blob, calls, single, future = entry
        if self._forward:
            self._print(job)
        result, job.result = job.result, None  # the future keeps the value, not the job
        if job.status == JobStatus.Finished and isinstance(result, tuple):
            kind, value = result
            if kind == "missing":  # a node without the function: once more, with it
                self._submit((digest, blob), calls, single, future, with_pickle=True)
                return
            if job.node:
                self._ran(digest, job.node)
            if not future.running() and not future.set_running_or_notify_cancel():
                return
            outcomes = [(ok, v if ok else info_error(v, job.node)) for ok, v in value]
            if single:
                ok, v = outcomes[0]
                future.set_result(v) if ok else future.set_exception(v)
            else:
                future.set_result(outcomes)
            return
        if not future.running() and not future.set_running_or_notify_cancel():
            return
        if self._initializer and job.exception_type == "SetupError":
            self._break(job.exception_message or job.exception or "the initializer failed")
            future.set_exception(BrokenGridExecutor(f"the executor is broken: {self._broken}"))
            return
        future.set_exception(job.error() or RemoteJobError(job.status.name, "no result", "", job.node))

    def _break(self, reason: str) -> None:
        with self._lock:
            if self._broken:
                return
            self._broken = reason
        logging.getLogger("concurrent.futures").critical("Exception in initializer: %s", reason)

    @staticmethod
    def _print(job: Job) -> None:
        """What the call printed, here (as a process pool's workers print to our terminal)."""
        for text, stream in ((job.stdout, sys.stdout), (job.stderr, sys.stderr)):
            if text and stream is not None:
                try:
                    stream.write(text if isinstance(text, str) else text.decode(errors="replace"))
                    stream.flush()
                except (OSError, ValueError):
                    pass

    @staticmethod
    def _results(futures: list[Future[Any]], deadline: float | None) -> Iterator[Any]:
        """Each value as it comes, in order; nothing yielded is kept (the standard library's
        ``map`` drops each future once it has its value)."""
        futures.reverse()
        try:
            while futures:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                outcomes = futures[-1].result(remaining)
                futures.pop()
                outcomes.reverse()
                while outcomes:
                    if not outcomes[-1][0]:
                        raise outcomes.pop()[1]
                    yield outcomes.pop()[1]
        finally:
            for future in futures:
                future.cancel()
