"""The node side of ``GridExecutor``: run any function, shipped once per node.

``GridExecutor``'s cluster has one computation, :func:`run_calls`; each job
names the function to call by the SHA-256 of its pickle (``digest``) and
carries the pickle itself (``blob``) only until the client has seen every node
run it.  A worker keeps functions in memory and in the cluster's directory
(``.gridlib-functions/<digest>``), so its sibling workers on the same node find
them too.  A job whose function is in neither answers ``("missing", digest)``
and the client sends it again with the pickle.

Only a node's worker runs this module (it unpickles what its authenticated
scheduler relayed, like any computation).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridlib.daemons.runtime.payload import dumps

__all__ = ["run_calls", "run_initializer", "describe_exception", "FUNCTION_DIR"]

FUNCTION_DIR = ".gridlib-functions"
_functions: dict[str, Callable[..., Any]] = {}


def run_calls(digest: str, blob: bytes | None, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]
              ) -> tuple[str, Any]:
    """Call the function ``digest`` names once per ``(args, kwargs)`` in ``calls``.

    Returns ``("ok", [(True, value) | (False, exception info), ...])`` -- one
    outcome per call, so that one call raising does not lose the others of
    its chunk -- or ``("missing", digest)``.
    """
    fn = _function(digest, blob)
    if fn is None:
        return "missing", digest
    outcomes: list[tuple[bool, Any]] = []
    for args, kwargs in calls:
        try:
            outcomes.append((True, fn(*args, **kwargs)))
        except BaseException as exc:  # a call may raise anything (KeyboardInterrupt...): loky's rule
            outcomes.append((False, describe_exception(exc)))
    return "ok", outcomes


def run_initializer(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> int:
    """``GridExecutor(initializer=, initargs=)``: the cluster's setup, once per worker process
    (as a process pool runs it once per process); its return value does not matter."""
    _module_namespace(initializer)(*initargs)
    return 0


_namespaces: dict[str, dict[str, Any]] = {}  # a by-value module's name -> its globals here


def _module_namespace(fn: Any) -> Any:
    """Functions of one of the user's modules that arrived by value, each in its own pickle,
    share one global namespace here, as they share their module at home: an initializer
    that sets a module global is seen by the calls that read it."""
    if not isinstance(fn, types.FunctionType):
        return fn
    module = sys.modules.get(fn.__module__)
    if module is not None and getattr(module, "__dict__", None) is fn.__globals__:
        return fn  # by reference: it already lives in its real module
    namespace = _namespaces.setdefault(fn.__module__, {})
    for name, value in fn.__globals__.items():
        namespace.setdefault(name, value)
    shared = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    shared.__kwdefaults__ = fn.__kwdefaults__
    shared.__dict__.update(fn.__dict__)
    shared.__qualname__, shared.__module__ = fn.__qualname__, fn.__module__
    return shared


def _function(digest: str, blob: bytes | None) -> Callable[..., Any] | None:
    known = _functions.get(digest)
    if known is not None:
        return known
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("a function digest is 64 lowercase hex digits")
    path = Path(FUNCTION_DIR) / digest
    if blob is None:
        try:
            blob = path.read_bytes()
        except OSError:
            return None
    if hashlib.sha256(blob).hexdigest() != digest:
        raise ValueError("the function's pickle does not match its digest")
    fn: Callable[..., Any] = _module_namespace(pickle.loads(blob))  # (the user's code: by value)
    _functions[digest] = fn
    if not path.exists():  # for the other workers of this node (written whole, then renamed)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return fn


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, message, traceback and, when it pickles, the exception itself."""
    try:
        pickled: bytes | None = dumps(exc)
    except Exception:
        pickled = None
    return {"type": type(exc).__name__, "message": str(exc), "pickled": pickled,
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
