"""The worker process: runs one cluster's setup once, then its jobs one by one (docs/architecture.md §5).

A worker lives in its own process group, in the cluster's directory, with
fds 1 and 2 redirected to a file so that everything a job prints (its
subprocesses included) is captured.  Killing the group cancels a job.
This is the only place on a node that unpickles payloads, and only
payloads its node received from an authenticated scheduler.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from multiprocessing.connection import Connection
from typing import Any

from gridlib.daemons.runtime import jobctx
from gridlib.daemons.runtime.payload import (
    Computation,
    dumps,
    pack_value,
    unpack_args,
    unpack_computation,
)

from . import job_tree, pipes
from .claims import Claims
from .memory import retain_large_buffers
from .node_init import run_close, run_init

__all__ = ["worker_main"]


class _Capture:
    """fd-level capture of stdout and stderr, reset for every job."""

    def __init__(self) -> None:
        self.limit = 4 * 1024 * 1024  # bytes of each stream sent back (gridlib node --max-output)
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]  # noqa: SIM115 (live for the process)
        for fd, f in zip((1, 2), self.files, strict=True):
            os.dup2(f.fileno(), fd)
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), line_buffering=True)

    def reset(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for f in self.files:
            if os.lseek(f.fileno(), 0, os.SEEK_CUR):  # most jobs print nothing: no syscall more
                os.ftruncate(f.fileno(), 0)
                os.lseek(f.fileno(), 0, os.SEEK_SET)

    def read(self, limit: int) -> list[bytes]:
        """What the job wrote to fds 1 and 2 since ``reset`` (at most ``limit`` bytes of each,
        then a marker); the files are left empty."""
        sys.stdout.flush()
        sys.stderr.flush()
        out = []
        for f in self.files:
            fd = f.fileno()
            size = os.lseek(fd, 0, os.SEEK_CUR)
            keep = min(size, limit)
            out.append(_cut(os.pread(fd, keep, 0) if keep else b"", size, limit))
            if size:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
        return out


def _cut(data: bytes, size: int, limit: int) -> bytes:
    """``data`` (the first ``limit`` bytes of ``size``), with a marker where it was cut."""
    if size <= limit:
        return data
    return data[:limit] + (f"\n[gridlib: output cut here: the job wrote {size} bytes, the first "
                           f"{limit} are kept (gridlib node --max-output)]\n").encode()


_PICKLED_EXCEPTION_MAX = 16384  # bytes: it travels in the result's header
_OWN_DIRS = tuple({os.path.dirname(os.path.abspath(path)) + os.sep
                   for path in (jobctx.__file__ or "", __file__)})


def user_traceback(exc: BaseException) -> str:
    """The traceback as the user would read it: gridlib's own frames (the worker calling the
    job, the executor's call loop) are left out at the top, the user's frames kept."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIRS) \
            and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _exception_info(exc: BaseException) -> dict[str, Any]:
    """Type, message and traceback of a job's exception -- and the exception itself, pickled,
    when it pickles small enough, so the client can raise it as its own class."""
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc),
                            "traceback": user_traceback(exc)}
    try:
        pickled = dumps(exc)
    except Exception:
        pickled = b""
    if 0 < len(pickled) <= _PICKLED_EXCEPTION_MAX:
        info["pickled"] = pickled
    return info


def _rebind(fn: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(fn, types.FunctionType):
        return fn
    new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    return new


def _share_globals(comp: Computation, node_globals: dict[str, Any]) -> None:
    """Give setup, computation, cleanup and depends one global namespace.

    cloudpickle ships each function with just the globals it uses; dispy's promise is
    that names a ``setup`` declares ``global`` are visible to the computation,
    so they must share a namespace on the node.  It starts with the names of
    the node's ``--init`` file; the functions' own globals win over those.
    """
    functions = [f for f in (comp.setup, comp.func, comp.cleanup, *comp.depends)
                 if isinstance(f, types.FunctionType)]
    namespace: dict[str, Any] = {k: v for k, v in node_globals.items() if not k.startswith("__")}
    for fn in functions:
        namespace.update(fn.__globals__)
    comp.setup, comp.func, comp.cleanup = (_rebind(f, namespace) for f in (comp.setup, comp.func, comp.cleanup))
    comp.depends = [_rebind(f, namespace) for f in comp.depends]
    for dep in comp.depends:
        namespace.setdefault(getattr(dep, "__name__", repr(dep)), dep)


def _run_setup(comp: Computation, setup_args: list[Any], node_globals: dict[str, Any]) -> str | None:
    """Run the computation's setup; returns a reason when the node must not be used."""
    _share_globals(comp, node_globals)
    if isinstance(comp.func, types.FunctionType):  # (a builtin such as len has no globals)
        comp.func.__globals__.update(
            dispy_provisional_result=jobctx.provisional_result,
            dispy_send_file=jobctx.send_file,
        )
    if comp.setup is None:
        return None
    try:
        ret = comp.setup(*setup_args)
    except Exception as exc:
        return f"setup raised {type(exc).__name__}: {exc}"
    if ret not in (0, None):
        return f"setup returned {ret!r}"
    return None


def _run_job(comp: Computation, fields: dict[str, Any], frames: list[bytes],
             cluster_dir: str) -> tuple[dict[str, Any], list[Any]]:
    """Run one job; returns the result fields and the result frames."""
    args, kwargs = unpack_args(frames)
    if comp.kind == "program":
        env = dict(os.environ, GRID_NODE_NAME=fields["node_name"], GRID_JOB_PATH=cluster_dir,
                   GRID_JOB_ID=str(fields.get("label") or fields["job_id"]).replace("\0", ""))
        program = os.path.join(cluster_dir, str(comp.program))
        argv = [sys.executable, program] if program.endswith(".py") else [program]
        proc = subprocess.run([*argv, *map(str, args)], cwd=cluster_dir, env=env,
                              capture_output=True, check=False, preexec_fn=die_with_parent)
        return {"status": "finished"}, [*pack_value(proc.returncode), proc.stdout, proc.stderr]
    if comp.func is None:
        raise TypeError("the computation has no function")
    if isinstance(comp.func, types.FunctionType):
        comp.func.__globals__.update(dispy_node_name=fields["node_name"],
                                     dispy_node_ip_addr=fields["ip_addr"],
                                     dispy_job_path=cluster_dir)
    result = comp.func(*args, **kwargs)
    return {"status": "finished"}, pack_value(result)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (no orphans after a node dies)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was already gone before prctl took effect
        os._exit(1)


def _release_forkserver() -> None:
    """Drop our copy of the forkserver's "alive" pipe.

    multiprocessing hands every child the node's end of that pipe, which
    keeps the forkserver (our parent) running for as long as any worker
    lives -- and so PR_SET_PDEATHSIG would never fire when the node dies.
    """
    try:
        from multiprocessing import forkserver

        fd = forkserver._forkserver._forkserver_alive_fd
        if fd is not None:
            os.close(fd)
            forkserver._forkserver._forkserver_alive_fd = None
    except (AttributeError, OSError):
        pass


def _ignore(_signum: int, _frame: object) -> None:
    pass


def worker_main(connection: Connection, cluster_dir: str, node_name: str, ip_addr: str,
                claims: Claims) -> None:
    """Entry point of a worker process."""
    conn = pipes.Channel.from_fd(connection.fileno())
    connection.close()
    retain_large_buffers()
    _release_forkserver()
    die_with_parent()
    os.setsid()
    # SIGINT is the node's to answer (a drain: running jobs finish); one sent to every process
    # (Slurm's scancel --signal=INT, kill -INT -PGID) must not end the job with KeyboardInterrupt.
    # A handler, not SIG_IGN: a program the job runs gets SIGINT's default action back at exec.
    signal.signal(signal.SIGINT, _ignore)
    job_tree.become_subreaper()  # what a job starts stays ours (even in a new session): swept
    try:
        os.chdir(cluster_dir)
    except OSError as exc:  # the cluster was torn down while this worker started
        conn.send("setup_failed", {"reason": f"no cluster directory: {exc.strerror}"})
        return
    if os.environ.pop("GRIDLIB_NODE_SET_PYTHONSAFEPATH", None):
        os.environ.pop("PYTHONSAFEPATH", None)  # set by the node for itself, not for jobs
    sys.path.insert(0, cluster_dir)
    capture = _Capture()
    kind, fields, frames = conn.recv()
    limit = fields.get("max_output")
    capture.limit = limit if isinstance(limit, int) and limit > 0 else 4 * 1024 * 1024
    node_globals, reason = _node_globals(fields.get("init"))
    if not reason:
        try:
            comp = unpack_computation(frames[0])
            reason = _run_setup(comp, list(fields.get("setup_args") or []), node_globals)
        except Exception as exc:
            reason = f"cannot load the computation: {type(exc).__name__}: {exc}"
    if reason:
        conn.send("setup_failed", {"reason": reason})
        return
    conn.send("ready")
    while True:  # the node's records in order: jobs (held ahead too), "stop"
        try:
            kind, fields, frames = conn.recv()  # (one read takes every record waiting)
        except EOFError:
            break
        if kind == "stop":
            break
        if kind != "job" or not claims.claim(int(fields.get("seq") or 0)):
            continue  # taken back by the node before it started: it runs elsewhere, or not at all
        fields.update(node_name=node_name, ip_addr=ip_addr)
        _serve_job(conn, comp, fields, frames, cluster_dir, capture)
    if comp.cleanup is not None:
        try:
            comp.cleanup()
        except Exception:
            traceback.print_exc()
    job_tree.sweep()
    try:
        run_close(node_globals)
    except Exception:
        traceback.print_exc()


def _node_globals(init: Any) -> tuple[dict[str, Any], str | None]:
    """Run the node's ``--init`` file (``[path, source]``); returns its names, or a failure reason."""
    if not init:
        return {}, None
    path, source = str(init[0]), str(init[1])
    try:
        return run_init(path, source), None
    except BaseException as exc:  # the file may raise anything, SystemExit included
        return {}, f"--init {path} failed: {type(exc).__name__}: {exc}"


def _serve_job(conn: pipes.Channel, comp: Computation, fields: dict[str, Any], frames: list[bytes],
               cluster_dir: str, capture: _Capture) -> None:
    job_id, attempt = fields["job_id"], fields["attempt"]

    def channel(kind: str, extra: dict[str, Any], data: list[Any]) -> None:
        conn.send(kind, {"job_id": job_id, "attempt": attempt, **extra}, data)

    jobctx._install(jobctx.JobContext(fields["node_name"], fields["ip_addr"], cluster_dir,
                                      job_id, attempt), channel)
    capture.reset()
    start = time.time()
    try:
        result_fields, result_frames = _run_job(comp, fields, frames, cluster_dir)
        labels = ["result"] * len(result_frames)
    except BaseException as exc:  # a job may raise anything, SystemExit included
        result_fields = {"status": "terminated", "exception": _exception_info(exc)}
        result_frames, labels = [], []
    finally:
        jobctx._install(None, None)
    end = time.time()
    job_tree.sweep()  # everything the job started ends with it
    if comp.kind == "program" and result_fields["status"] == "finished":
        stdout, stderr = (_cut(bytes(memoryview(f)[:capture.limit]), memoryview(f).nbytes, capture.limit)
                          for f in result_frames[-2:])
        result_frames, labels = result_frames[:-2], labels[:-2]
    else:
        stdout, stderr = capture.read(capture.limit)
    # an empty stream is not sent (most jobs print nothing): its label is absent
    streams = [(label, data) for label, data in (("stdout", stdout), ("stderr", stderr)) if data]
    result_fields.update(job_id=job_id, attempt=attempt, start_time=start, end_time=end,
                         labels=[*labels, *(label for label, _ in streams)])
    conn.send("result", result_fields, [*result_frames, *(data for _, data in streams)])
