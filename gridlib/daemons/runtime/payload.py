"""Packing computations, arguments and results with cloudpickle (docs/code-shipping.md).

Only the client and the node's worker processes import this module: the
scheduler, the relay and the protocol package never deserialize payloads.
Arguments and results use pickle protocol 5 with large buffers out of band,
so each becomes ``[main frame, buffer frames...]`` sent without copies.

What travels by value: functions, classes and lambdas of the user's own code
-- ``__main__``, a script's sibling modules, a local package, a test module
(see :func:`is_user_module`) -- each with exactly the globals it references.
Everything importable from an installed distribution (the standard library,
site-packages, gridlib itself) travels by reference.  The user's modules found
in ``sys.modules`` are registered with ``cloudpickle.register_pickle_by_value``
before anything is pickled; a module listed in a cluster's ``depends=`` is
shipped whole as a file instead and goes by reference.  Loading is plain
``pickle.loads``.
"""

from __future__ import annotations

import io
import os
import pickle
import site
import sys
import sysconfig
import threading
import types
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from gridlib.protocol.errors import SerializationError

__all__ = [
    "Computation",
    "pack_computation",
    "unpack_computation",
    "pack_value",
    "unpack_value",
    "pack_args",
    "unpack_args",
    "files_of",
    "dumps",
    "is_user_module",
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
    shipped_modules: list[str] = field(default_factory=list)  # depends= modules: files, by reference


# -- which modules are the user's own code ---------------------------------------------

_BY_REFERENCE_ROOTS = frozenset({"gridlib"})  # installed, editable in a checkout: by reference
_SOURCE_SUFFIXES = (".py", ".pyw", ".pyc")
_decided: dict[str, bool] = {}  # module name -> registered by value
_shipped_whole: set[str] = set()  # top-level modules shipped as files (depends=): by reference
_modules_seen = -1  # len(sys.modules) at the last scan
_scan_lock = threading.Lock()
_install_dirs: tuple[str, ...] | None = None
_distributions: dict[str, list[str]] | None = None


def _installed_dirs() -> tuple[str, ...]:
    """Where installed code lives: the standard library, site-packages, the user site."""
    global _install_dirs
    if _install_dirs is None:
        dirs: set[str] = set()
        for base in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
            paths = sysconfig.get_paths(vars={"base": base, "platbase": base, "installed_base": base,
                                              "installed_platbase": base})
            dirs.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
        try:
            dirs.update(site.getsitepackages())
        except AttributeError:  # an old virtualenv's site module
            pass
        user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
        if user_site:
            dirs.add(user_site)
        both = {os.path.join(d, "") for d in dirs} | {os.path.join(os.path.realpath(d), "") for d in dirs}
        _install_dirs = tuple(sorted(both))
    return _install_dirs


def _installed_file(path: str) -> bool:
    dirs = _installed_dirs()
    return path.startswith(dirs) or os.path.realpath(path).startswith(dirs)


def _provided_by_a_distribution(top: str, source: str) -> bool:
    """Whether an installed distribution provides the top-level module ``top``.

    A distribution that installs files for ``top`` elsewhere than ``source``
    is another module of the same name (a local ``tests`` or ``utils``
    shadowing it): then ``source`` is the user's own.  An editable install
    (gridlib's own checkout) lists no files for ``top``: it provides it.
    """
    import importlib.metadata  # 17 ms to import: only once a module needs it

    global _distributions
    if _distributions is None:
        _distributions = dict(importlib.metadata.packages_distributions())
    names = _distributions.get(top)
    if not names:
        return False
    real = os.path.realpath(source)
    elsewhere = False
    for name in dict.fromkeys(names):
        try:
            dist = importlib.metadata.distribution(name)
            files = [f for f in dist.files or ()  # top/..., top.py, top.cpython-311-....so
                     if f.parts and (f.parts[0] == top or (len(f.parts) == 1 and f.name.split(".")[0] == top))]
        except Exception:
            return True
        if not files:
            return True
        located = {os.path.realpath(str(dist.locate_file(f))) for f in files}
        if real in located:
            return True
        elsewhere = True
    return not elsewhere


def is_user_module(name: str, module: Any) -> bool:
    """Whether ``module`` is the user's own code, whose objects travel by value.

    It is when it is ``__main__``, or its source file is in none of the
    installed locations (standard library, site-packages, user site), its name
    is no standard library module, no installed distribution provides it, it
    is not gridlib and it was not shipped whole with ``depends=``.  Extension
    modules and modules without a file (built-in, dynamic) are never by value.
    """
    if not isinstance(module, types.ModuleType):
        return False
    if name == "__main__":
        return True
    top = name.partition(".")[0]
    if (top in _BY_REFERENCE_ROOTS or top in sys.stdlib_module_names or top in _shipped_whole
            or getattr(module, "__name__", None) != name):
        return False
    source = getattr(module, "__file__", None)
    if not source:  # a namespace package: where its first portion lives
        portions = list(getattr(module, "__path__", None) or ())
        if not portions:
            return False
        source = os.path.join(portions[0], "__init__.py")
    elif not source.endswith(_SOURCE_SUFFIXES):
        return False
    if _installed_file(source):
        return False
    return not _provided_by_a_distribution(top, source)


def _register_user_modules() -> None:
    """Register the user's modules in ``sys.modules`` for pickling by value.

    Each module is decided once; ``sys.modules`` is scanned again only when
    its size changed, so that packing one more job costs a ``len()``.
    """
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return
    with _scan_lock:
        modules = sys.modules.copy()
        for name, module in modules.items():
            if name in _decided:
                continue
            by_value = is_user_module(name, module)
            if by_value and name != "__main__":  # (cloudpickle ships __main__'s objects by value itself)
                try:
                    cloudpickle.register_pickle_by_value(module)
                except ValueError:  # not importable under its own name after all
                    by_value = False
            _decided[name] = by_value
        _modules_seen = len(modules)


def _ship_whole(names: Sequence[str]) -> None:
    """These top-level modules are files on the node: pickle them by reference from now on."""
    with _scan_lock:
        for name in names:
            _shipped_whole.add(name)
            if _decided.get(name):
                try:
                    cloudpickle.unregister_pickle_by_value(sys.modules[name])
                except (KeyError, ValueError):
                    pass
            _decided[name] = False


_cloudpickle_code_reduce = cloudpickle.Pickler.dispatch_table.get(types.CodeType)


def _code_reduce(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, with its file name kept.

    cloudpickle writes ``<dynamic-code>`` instead; with the real name a job's
    remote traceback says which of the user's files raised, as dill's did.
    """
    rebuild, args = _cloudpickle_code_reduce(code)
    return rebuild, tuple(code.co_filename if isinstance(a, str) and a == "<dynamic-code>" else a
                          for a in args)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    if _cloudpickle_code_reduce is not None:
        dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any, protocol: int = 5, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None
          ) -> bytes:
    """cloudpickle ``obj``: the user's code by value, installed modules by reference.

    The result loads with plain ``pickle.loads`` wherever gridlib is installed.
    """
    _register_user_modules()
    with io.BytesIO() as file:
        _Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()


# -- shipping ---------------------------------------------------------------------------


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


def _modules_shipped_whole(depends: Sequence[Any]) -> list[str]:
    """Top-level module names that ``depends`` puts on the node as ``NAME.py`` files."""
    names = []
    for dep in depends:
        if isinstance(dep, types.ModuleType):
            if "." not in dep.__name__ and not hasattr(dep, "__path__"):
                names.append(dep.__name__)
        elif isinstance(dep, (str, os.PathLike)):
            path = Path(dep)
            if path.suffix == ".py" and path.stem.isidentifier():
                names.append(path.stem)
    return names


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
        comp = Computation("function", func=computation, setup=setup, cleanup=cleanup_fn,
                           depends=objects)
    else:
        raise SerializationError("computation must be a function or the path of a program")
    comp.shipped_modules = _modules_shipped_whole(depends)
    _ship_whole(comp.shipped_modules)
    try:
        blob = dumps(comp)
    except Exception as exc:
        raise SerializationError(f"cannot serialize the computation: {exc}") from exc
    return comp.kind, blob, files


def unpack_computation(blob: bytes) -> Computation:
    """The node's side (a worker in the cluster's directory, where ``depends=`` files are)."""
    comp = pickle.loads(blob)
    if not isinstance(comp, Computation):
        raise SerializationError("computation payload is not a Computation")
    _ship_whole(comp.shipped_modules)  # so that results of theirs go back by reference too
    return comp


# ``bytes`` this large travel as frames of their own, not inside the pickle: pickle writes
# an exact ``bytes`` in band (it never offers it to a reducer), which copies it into the
# pickle's buffer -- twice, with the buffer's growth -- and its frame is then that copy.
OUT_OF_BAND_BYTES = 64 * 1024


class _Bytes:
    """A large ``bytes`` value, pickled as a buffer out of band (loads back as ``bytes``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return _bytes_of, (pickle.PickleBuffer(self.data),)


def _bytes_of(buffer: Any) -> bytes:
    return bytes(buffer)


def _wrap(value: Any) -> Any:
    return _Bytes(value) if type(value) is bytes and len(value) >= OUT_OF_BAND_BYTES else value


def pack_value(value: Any) -> list[Any]:
    """``[main, buffers...]`` for any value (pickle protocol 5, buffers out of band: those
    that support it, and a large ``bytes`` given as the value or as an argument)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        main = dumps(_wrap(value), protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        raise SerializationError(f"cannot serialize {type(value).__name__}: {exc}") from exc
    return [main, *(b.raw() for b in buffers)]


def unpack_value(frames: Sequence[Any]) -> Any:
    if not frames:
        return None
    return pickle.loads(memoryview(frames[0]), buffers=[memoryview(f) for f in frames[1:]])


def pack_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    return pack_value((tuple(_wrap(a) for a in args), {k: _wrap(v) for k, v in kwargs.items()}))


def unpack_args(frames: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = unpack_value(frames)
    return args, kwargs
