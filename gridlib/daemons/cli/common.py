"""What the commands share: sizes, logging, secrets from a file or the environment."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from gridlib.protocol.errors import KeyFileError

__all__ = ["parse_size", "setup_logging", "read_secret"]

_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``"100m"`` -> bytes."""
    text = text.strip().lower()
    unit = _SIZE_UNITS.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in _SIZE_UNITS else text
    try:
        return int(float(number) * unit)
    except ValueError:
        raise typer.BadParameter(f"not a size: {text!r} (use e.g. 100m)") from None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)


def read_secret(secret_file: Path | None, secret: str = "") -> str | None:
    if secret:
        logging.getLogger("gridlib").warning(
            "event=secret_on_command_line hint='other users can read it with ps; "
            "use --secret-file or GRIDLIB_SECRET'")
        return secret
    if secret_file is not None:
        mode = secret_file.stat().st_mode if secret_file.exists() else 0
        if mode & 0o077:
            raise KeyFileError(f"secret file {secret_file} is readable by others; run: chmod 600 {secret_file}")
        try:
            return secret_file.read_text().strip()
        except OSError as exc:
            raise KeyFileError(f"cannot read {secret_file}: {exc.strerror}") from None
    return os.environ.get("GRIDLIB_SECRET") or None


def bind_failure(exc: BaseException) -> str | None:
    """A one-line explanation of a socket that could not bind (None for any other error)."""
    import errno
    import re

    code = getattr(exc, "errno", None)
    found = re.search(r"addr='([^']+)'", str(exc))
    where = found.group(1).removeprefix("tcp://") if found else "the address"
    if code == errno.EADDRINUSE:
        return (f"{where} is already in use: another process (another gridlib daemon?) listens "
                f"there; stop it, or choose another port (--port)")
    if code == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: this host has no such address (check --host)"
    if code == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
    return None


def exit_on_bind_failure(command: str, exc: Exception) -> None:
    """A socket that could not bind ends ``gridlib COMMAND`` with one line and exit status 2;
    any other error is raised again."""
    message = bind_failure(exc)
    if message is None:
        raise exc
    typer.echo(f"gridlib {command}: {message}", err=True)
    raise typer.Exit(2) from None

