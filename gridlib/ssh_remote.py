"""The remote half of ``gridlib ssh``: runs on a node host, as the ssh session's command.

``gridlib ssh`` (``gridlib/ssh_tool.py``) does not import this module: it sends
its source over ssh, and the remote interpreter (``--python``) runs it with
two arguments, the code and a base64 JSON of options.  It only needs the
standard library and the host's own gridlib, and ``ssh_tool.BOOT`` runs it only on
Python 3.10 or later (it says so otherwise); it says itself when gridlib is missing.

On the host it

1. makes a private run directory (``mkdtemp``, 0700) holding the node's key
   directory and its ``--dest-path-prefix``;
2. writes a fresh node key there (``identity.key_secret``, 0600: the node's
   own key, made on its host) and the client's **public** key in its
   ``clients/`` allowlist: the node trusts exactly its own key and this user's;
3. starts ``PYTHON -m gridlib.daemons.node --keys DIR --port-file FILE ...``
   in that directory, in its own session, dying with this process (Linux
   ``PR_SET_PDEATHSIG``);
4. waits for the port file (or the node's exit, or a deadline), then prints
   one ``ready`` line: pid, beacon port, the node's public key, the address
   the ssh client reached this host at (``SSH_CONNECTION``);
5. stops the node (SIGTERM; SIGKILL to its process group 15 s later) when its
   stdin says ``stop``, reaches end of file (gridlib ssh or the connection is
   gone), stays silent longer than the keepalive limit, or on SIGTERM,
   SIGINT or SIGHUP; then removes the run directory.

Everything it reports is one JSON object per line on stdout, after the
marker ``@@gridlib-ssh `` (anything else a login script prints is ignored):
``ready``, ``log`` (each line the node writes), ``error`` (gridlib cannot be
used), ``failed`` (the node did not start), ``exited`` (it died later),
``stopped``.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from types import FrameType, ModuleType
from typing import Any

MARK = "@@gridlib-ssh "
_lock = threading.Lock()
_stop_reason: list[str] = []  # set by a signal handler or by stdin


def say(event: str, **fields: Any) -> None:
    """One event line for gridlib ssh; a vanished reader is not an error (we stop anyway)."""
    fields["event"] = event
    line = MARK + json.dumps(fields) + "\n"
    with _lock:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (OSError, ValueError):
            if not _stop_reason:
                _stop_reason.append("gridlib ssh is gone (its output closed)")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if not _stop_reason:
        _stop_reason.append(f"signal {signum}")


class Stdin:
    """gridlib ssh's side of the session: pings keep the node alive, ``stop`` or EOF end it."""

    def __init__(self, keepalive: float) -> None:
        self.keepalive = keepalive
        self.heard = time.monotonic()
        self.open = True

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for a line from gridlib ssh; sets the stop reason."""
        if not self.open:
            time.sleep(timeout)
            return
        try:
            ready, _, _ = select.select([0], [], [], timeout)
        except (OSError, ValueError):
            ready = []
        if ready:
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            self.heard = time.monotonic()
            if not data:
                self.open = False
                if not _stop_reason:
                    _stop_reason.append("the ssh session ended (gridlib ssh or its connection is gone)")
            elif b"stop" in data and not _stop_reason:
                _stop_reason.append("asked by gridlib ssh")
        if self.keepalive and time.monotonic() - self.heard > self.keepalive and not _stop_reason:
            _stop_reason.append(f"no keepalive from gridlib ssh for {self.keepalive:g} s")


def _die_with_parent() -> None:
    """In the node, before exec: its own session, and SIGTERM when this wrapper dies (Linux)."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:  # the wrapper died before prctl
        os._exit(1)


def _port_file(path: str, pid: int) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("pid") == pid:
        return data
    return None


def _stop_node(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then (after 15 s) SIGKILL to the node's process group; its exit status."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except OSError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.wait()
    return proc.returncode


def _remote_path(text: str, home: str) -> str:
    """A path option as given to gridlib ssh, made absolute on this host (``~`` and relative
    paths from the login directory, not from the run directory the node works in)."""
    text = os.path.expanduser(text)
    return text if os.path.isabs(text) else os.path.join(home, text)


def serve(opts: dict[str, Any], run: str, gridlib: ModuleType) -> int:
    from pathlib import Path

    from gridlib.protocol.keys import allow_key, write_keypair

    keys = os.path.join(run, "keys")
    pair = write_keypair(Path(keys), "identity")
    allow_key(Path(keys), "client", opts["client_key"].encode(), "gridlib-ssh-client")
    port_file = os.path.join(run, "node.json")
    home = os.getcwd()
    cmd = [sys.executable, "-m", "gridlib.daemons.node", "--keys", keys, "--port-file", port_file]
    paths = opts.get("paths") or {}
    if "--dest-path-prefix" not in paths:
        cmd += ["--dest-path-prefix", os.path.join(run, "node")]
    for flag, value in sorted(paths.items()):
        cmd += [flag, _remote_path(value, home)]
    cmd += opts["node_args"]
    env = dict(os.environ)
    for name in ("GRIDLIB_SECRET", "GRIDLIB_SECRET_FILE", "GRIDLIB_KEYS"):
        env.pop(name, None)  # the node uses the run's keys, never a secret of the host's
    proc = subprocess.Popen(cmd, cwd=run, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)
    tail: deque[str] = deque(maxlen=40)

    def forward() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            say("log", line=line)

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    try:
        return _watch(opts, proc, pair, port_file, reader, tail, gridlib, run)
    finally:
        if proc.poll() is None:  # whatever happened above, the node does not outlive us
            _stop_node(proc)


def _watch(opts: dict[str, Any], proc: subprocess.Popen[bytes], pair: Any, port_file: str,
           reader: threading.Thread, tail: deque[str], gridlib: ModuleType, run: str) -> int:
    """Report the node once it serves, then keep it until asked (or made) to stop."""

    def output() -> list[str]:
        reader.join(5)
        return list(tail)

    stdin = Stdin(opts.get("keepalive") or 0)
    deadline = time.monotonic() + float(opts.get("start_timeout") or 120)
    info = None
    while info is None:
        info = _port_file(port_file, proc.pid)
        if info is not None:
            break
        if proc.poll() is not None:
            say("failed", status=proc.returncode, output=output())
            return 4
        if _stop_reason:
            say("stopped", pid=proc.pid, status=_stop_node(proc), reason=_stop_reason[0])
            return 0
        if time.monotonic() > deadline:
            _stop_node(proc)
            say("failed", status=None, output=output(),
                reason=f"the node did not start within {opts.get('start_timeout')} s")
            return 4
        stdin.wait(0.05)
    connection = (os.environ.get("SSH_CONNECTION") or "").split()
    say("ready", pid=proc.pid, port=(info.get("ports") or {}).get("beacon"),
        key=pair.public.decode(), address=connection[2] if len(connection) == 4 else "",
        hostname=socket.gethostname(), dir=run, python=platform.python_version(),
        gridlib=getattr(gridlib, "__version__", "?"))
    stdin.heard = time.monotonic()  # the keepalive limit counts from here
    while not _stop_reason:
        if proc.poll() is not None:
            say("exited", pid=proc.pid, status=proc.returncode, output=output())
            return 4
        stdin.wait(0.5)
    status = _stop_node(proc)
    reader.join(5)
    say("stopped", pid=proc.pid, status=status, reason=_stop_reason[0])
    return 0


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    opts = json.loads(base64.b64decode(argv[-1]).decode())
    try:
        import gridlib
        import gridlib.protocol.keys  # noqa: F401
    except Exception as exc:
        say("error", reason=f"gridlib cannot be imported by {sys.executable} "
                            f"({type(exc).__name__}: {exc}); install it there, or give "
                            f"--python the interpreter that has it")
        return 3
    run = tempfile.mkdtemp(prefix="gridlib-ssh-")
    try:
        return serve(opts, run, gridlib)
    except Exception as exc:
        say("error", reason=f"{type(exc).__name__}: {exc}")
        return 3
    finally:
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
