"""Safe file placement: a peer-supplied name never escapes its base directory (docs/security.md §6).

Used by nodes for shipped files and by clients for files jobs send back.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import PayloadTooLarge, ProtocolError

__all__ = ["safe_relative", "safe_join", "write_file"]


def safe_relative(name: str) -> PurePosixPath:
    """Normalize a relative file name; refuse absolute paths and ``..``."""
    if not name or "\x00" in name or "\\" in name:
        raise ProtocolError(f"bad file name {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise ProtocolError(f"file name {name!r} escapes the cluster directory")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        raise ProtocolError(f"bad file name {name!r}")
    return PurePosixPath(*parts)


def safe_join(base: Path, name: str) -> Path:
    """``base / name``, refusing anything (links included) that resolves outside ``base``."""
    rel = safe_relative(name)
    target = base.joinpath(*rel.parts)
    resolved_base = base.resolve()
    parent = target.parent.resolve()
    if not (parent == resolved_base or parent.is_relative_to(resolved_base)):
        raise ProtocolError(f"file name {name!r} escapes the cluster directory through a link")
    if target.is_symlink():
        raise ProtocolError(f"file name {name!r} is a symbolic link")
    return target


def write_file(base: Path, name: str, data: bytes | memoryview, mode: int, max_size: int) -> Path:
    """Write a shipped file under ``base`` (0600 at most group/world bits cleared)."""
    if len(data) > max_size:
        raise PayloadTooLarge(f"file {name!r} is {len(data)} bytes (limit {max_size})")
    target = safe_join(base, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(target, (mode & 0o700) | 0o600)
    return target
