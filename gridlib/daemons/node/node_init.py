"""``--init FILE``: node-wide globals for every computation a node runs.

The file is plain Python.  It runs once in every worker process, in the
cluster's directory, before the cluster's ``setup``; the names it defines
are globals of the computation, ``setup`` and ``cleanup`` (a name the
computation brings along wins over the file's).  As in dispy, a function
``init()`` in the file, if there is one, is called next (a non-zero return is
a failure) and a function ``close()`` is called when the worker exits.

The node reads the file once, at start, and checks it there by running it in
a separate interpreter: an error in it stops the node from starting with the
file's own traceback, rather than failing every cluster later.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlib.protocol.errors import GridError

__all__ = ["NodeInit", "InitError", "load_init", "check_init", "run_init", "run_close"]

_CHECK_TIMEOUT = 300.0  # seconds the start-up check may take (an init may load a big model)


class InitError(GridError):
    """The ``--init`` file cannot be read, compiled or run."""


@dataclass(frozen=True)
class NodeInit:
    path: str  # absolute
    source: str


def load_init(path: Path) -> NodeInit:
    """Read and compile ``path``; InitError says what is wrong and where."""
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise InitError(f"cannot read --init file {path}: {reason}") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise InitError(f"--init file {path}, line {exc.lineno}: {exc.msg}") from None
    return NodeInit(str(path.resolve()), source)


def run_init(path: str, source: str) -> dict[str, Any]:
    """Run the file (and its ``init()``) in a fresh namespace; returns that namespace."""
    namespace: dict[str, Any] = {"__name__": "__gridlib_init__", "__file__": path,
                                 "__builtins__": builtins}
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 (the operator's own file)
    init = namespace.get("init")
    if callable(init):
        status = init()
        if status not in (0, None):
            raise InitError(f"init() in {path} returned {status!r}")
    return namespace


def run_close(namespace: dict[str, Any]) -> None:
    close = namespace.get("close")
    if callable(close):
        close()


def check_init(init: NodeInit) -> None:
    """Run the file once in a separate interpreter (in a scratch directory); InitError on failure."""
    with tempfile.TemporaryDirectory(prefix="gridlib-init-check-") as scratch:
        try:
            done = subprocess.run([sys.executable, "-m", __name__, init.path], input=init.source,
                                  capture_output=True, text=True, cwd=scratch, check=False,
                                  timeout=_CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InitError(f"--init file {init.path} did not finish within "
                            f"{_CHECK_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip() or f"exit status {done.returncode}"
        raise InitError(f"--init file {init.path} failed:\n{detail}")


def _main() -> None:
    """``python -m ...node_init PATH`` with the source on stdin: the start-up check."""
    path = sys.argv[1]
    try:
        namespace = run_init(path, sys.stdin.read())
        run_close(namespace)
    except BaseException as exc:  # anything the file raises, SystemExit included
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        # the file's own frames, not this module's
        print("".join(line for line in lines if __file__ not in line), file=sys.stderr, end="")
        sys.exit(1)


if __name__ == "__main__":
    _main()
