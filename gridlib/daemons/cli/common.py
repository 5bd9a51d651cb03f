"""What the commands share: sizes, logging, secrets from a file or the environment."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

from gridlib.protocol.errors import GridError, KeyFileError

__all__ = ["parse_size", "setup_logging", "read_secret", "PortFile", "PORT_FILE_HELP"]

PORT_FILE_HELP = ("Once every port is bound, write {\"pid\": PID, \"ports\": {...}} (JSON) to "
                  "this file, atomically: how a program learns the ports --port 0 got. "
                  "Removed at exit.")

_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def scheduler_key_option() -> Any:
    """``--scheduler-key`` of the commands that talk to a shared scheduler (run, status)."""
    return typer.Option("", envvar="GRIDLIB_SCHEDULER_KEY",
                        help="The shared scheduler's public key (Z85 or a .key file; default: "
                             "your own key).")


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


class PortFileError(GridError):
    """The ``--port-file`` cannot be written."""


class PortFile:
    """``--port-file PATH``: where a daemon says which ports it bound.

    Checked before the daemon binds anything (a path that cannot be written
    is a one-line error, exit status 2); :meth:`write` replaces the file
    atomically (a reader never sees half of it) with ``{"pid": PID, "ports":
    {NAME: PORT}}`` once every socket is bound, and :meth:`remove` deletes it
    at exit if it is still this process's.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path.absolute() if path is not None else None  # a daemon works elsewhere
        self.log = logging.getLogger("gridlib")
        if self.path is not None:
            self._check(self.path)

    @staticmethod
    def _check(path: Path) -> None:
        if path.is_dir():
            raise PortFileError(f"cannot write the port file {path}: it is a directory")
        probe = path.with_name(f".{path.name}.{os.getpid()}.check")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
        except OSError as exc:
            raise PortFileError(f"cannot write the port file {path}: {exc.strerror} "
                                f"({path.parent})") from None

    def write(self, ports: dict[str, int | None]) -> None:
        """Write the file (a no-op without ``--port-file``); logs what it wrote."""
        if self.path is None:
            return
        text = json.dumps({"pid": os.getpid(), "ports": ports}) + "\n"
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(temp, self.path)
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise PortFileError(f"cannot write the port file {self.path}: {exc.strerror}") from None
        self.log.info("event=port_file_written path=%s %s", self.path,
                      " ".join(f"{name}={port}" for name, port in ports.items()))

    def remove(self) -> None:
        """Delete the file if this process wrote it (never another daemon's)."""
        if self.path is None:
            return
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError, AttributeError):
            pass
