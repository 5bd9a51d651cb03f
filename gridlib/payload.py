"""Packing computations, arguments and results with dill (DESIGN §4).

Only the client and the node's worker processes import this module: the
scheduler, the relay and the protocol package never deserialize payloads.
Arguments and results use pickle protocol 5 with large buffers out of band,
so each becomes ``[main frame, buffer frames...]`` sent without copies.
"""

from __future__ import annotations

import os
import pickle
import site
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill

from gridlib.protocol.errors import SerializationError

__all__ = [
    "Computation",
    "pack_computation",
    "unpack_computation",
    "pack_value",
    "unpack_value",
    "pack_args",
    "unpack_args",
]


@dataclass
class Computation:
    """What a node needs to run a cluster's jobs (unpacked in the worker)."""

    kind: str  # "function" or "program"
    func: Callable[..., Any] | None = None
    program: str | None = None
    setup: Callable[..., Any] | None = None
    cleanup: Callable[..., Any] | None = None
    depends: list[Any] = field(default_factory=list)  # functions/classes to define globally


def files_of(depends: Sequence[Any]) -> tuple[list[tuple[str, bytes, int]], list[Any]]:
    """Split ``depends`` into shipped files (name, data, mode) and Python objects."""
    files: list[tuple[str, bytes, int]] = []
    objects: list[Any] = []
    for dep in depends:
        if isinstance(dep, (str, os.PathLike)):
            path = Path(dep)
            if not path.is_file():
                raise SerializationError(f"dependency {str(dep)!r} is not a file")
            files.append((path.name, path.read_bytes(), path.stat().st_mode & 0o777))
        elif isinstance(dep, types.ModuleType):
            source = getattr(dep, "__file__", None)
            if not source or not source.endswith(".py"):
                raise SerializationError(f"module {dep.__name__} has no Python source file to ship")
            files.append((Path(source).name, Path(source).read_bytes(), 0o644))
        elif callable(dep):
            objects.append(dep)
        else:
            raise SerializationError(f"cannot ship dependency {dep!r}: use a path, module, function or class")
    return files, objects


def _own_module_file(fn: Any) -> tuple[str, bytes, int] | None:
    """The source of the user's own top-level module that defines ``fn``, if any.

    dill ships functions of an importable module by reference, so the node
    must be able to import that module: a user's own script module (not a
    package, not installed) is shipped along automatically.
    """
    name = getattr(fn, "__module__", None)
    if not name or name == "__main__" or "." in name or "<locals>" in getattr(fn, "__qualname__", ""):
        return None
    source = getattr(sys.modules.get(name), "__file__", None)
    if not source or not source.endswith(".py"):
        return None
    path = Path(source).resolve()
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())}
    if any(path.is_relative_to(prefix) for prefix in installed):
        return None
    return path.name, path.read_bytes(), 0o644


def pack_computation(
    computation: Callable[..., Any] | str,
    depends: Sequence[Any] = (),
    setup: Callable[..., Any] | None = None,
    cleanup: Callable[..., Any] | bool | None = None,
) -> tuple[str, bytes, list[tuple[str, bytes, int]]]:
    """Serialize a computation: (kind, blob, files to ship to the node)."""
    files, objects = files_of(depends)
    cleanup_fn = cleanup if callable(cleanup) else None
    if isinstance(computation, (str, os.PathLike)):
        path = Path(computation)
        if not path.is_file():
            raise SerializationError(f"program {str(computation)!r} is not a file")
        files.insert(0, (path.name, path.read_bytes(), path.stat().st_mode & 0o777 | 0o500))
        comp = Computation("program", program=path.name, setup=setup, cleanup=cleanup_fn,
                           depends=objects)
    elif callable(computation):
        own = _own_module_file(computation)
        if own is not None and own[0] not in {name for name, _, _ in files}:
            files.append(own)
        comp = Computation("function", func=computation, setup=setup, cleanup=cleanup_fn,
                           depends=objects)
    else:
        raise SerializationError("computation must be a function or the path of a program")
    try:
        blob = dill.dumps(comp, recurse=True)
    except Exception as exc:
        raise SerializationError(f"cannot serialize the computation: {exc}") from exc
    return comp.kind, blob, files


def unpack_computation(blob: bytes) -> Computation:
    comp = dill.loads(blob)
    if not isinstance(comp, Computation):
        raise SerializationError("computation payload is not a Computation")
    return comp


def pack_value(value: Any) -> list[Any]:
    """``[main, buffers...]`` for any value (pickle protocol 5, buffers out of band)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        main = dill.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        raise SerializationError(f"cannot serialize {type(value).__name__}: {exc}") from exc
    return [main, *(b.raw() for b in buffers)]


def unpack_value(frames: Sequence[Any]) -> Any:
    if not frames:
        return None
    return dill.loads(memoryview(frames[0]), buffers=[memoryview(f) for f in frames[1:]])


def pack_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    return pack_value((tuple(args), dict(kwargs)))


def unpack_args(frames: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = unpack_value(frames)
    return args, kwargs
