"""What a running job can call (docs/api.md §5): provisional results, files, context.

These functions work inside a job on a node; the worker process installs
the channel back to its node before each job.  Outside a job they raise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlib.protocol.errors import GridError

__all__ = ["JobContext", "job_context", "provisional_result", "send_file"]


@dataclass(frozen=True)
class JobContext:
    """Where and what the current job is."""

    node_name: str
    ip_addr: str
    job_path: str
    job_id: str
    attempt: int


_context: JobContext | None = None
_channel: Callable[[str, dict[str, Any], list[Any]], None] | None = None


def _install(context: JobContext | None, channel: Callable[..., None] | None) -> None:
    global _context, _channel
    _context, _channel = context, channel


def job_context() -> JobContext:
    """The running job's context; raises outside a job."""
    if _context is None:
        raise GridError("job_context() works only inside a job running on a node")
    return _context


def provisional_result(value: Any) -> None:
    """Send ``value`` to the client now; the job goes on."""
    from gridlib.daemons.runtime.payload import pack_value

    if _channel is None:
        raise GridError("provisional_result() works only inside a job running on a node")
    _channel("provisional", {}, pack_value(value))


def send_file(path: str | os.PathLike[str]) -> None:
    """Send a file to the client; it lands under the client's working directory.

    ``path`` is taken relative to the job's directory, which it may not leave.
    """
    if _channel is None or _context is None:
        raise GridError("send_file() works only inside a job running on a node")
    base = Path(_context.job_path).resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise GridError(f"send_file: {str(path)!r} is not a file inside the job directory")
    _channel("file", {"path": str(target.relative_to(base))}, [target.read_bytes()])
