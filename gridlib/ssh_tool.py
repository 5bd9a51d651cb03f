"""``gridlib ssh``: start a ``gridlib node`` on hosts over the user's own ssh (docs/tools.md §3).

The logic behind the command, kept apart from typer so that it can be
called and tested on its own.  For each host it runs the user's ``ssh``
binary (so ``~/.ssh/config``, the agent and ``known_hosts`` apply) with one
remote command: the host's Python (``--python``) running
``gridlib/ssh_remote.py``, whose source travels in the command line
(compressed, base64, every word ``shlex``-quoted).  That wrapper makes a
private run directory on the host, writes a fresh node key there and this
user's **public** key as the only other key the node trusts, starts the node
with ``--keys`` and ``--port-file`` there, and reports back one JSON line per
event.  No secret key ever leaves either machine.

Stop semantics: the wrapper stops its node (SIGTERM, then SIGKILL) when
this side sends ``stop``, when its stdin reaches end of file (this process or
its connection is gone, however it died), when no keepalive came for
``KEEPALIVE`` seconds, and on SIGTERM/SIGINT/SIGHUP; the node also gets
SIGTERM from the kernel if the wrapper itself is killed (Linux).  So
:meth:`SshRun.stop` sends ``stop`` and waits for each wrapper's ``stopped``
line and for ssh to exit.

Each node that comes up is reported with its address (the one the ssh
client reached the host at), beacon port, PID and public key; unless told
otherwise, its key is added to this user's ``nodes/`` allowlist (as
``ssh-HOST-PORT.key``) while it runs, so a ``JobCluster`` created meanwhile
trusts it with no set-up, and removed when it stops.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridlib.ssh_report import NodeUp, Report

__all__ = [
    "MARK",
    "DEFAULT_SSH_OPTIONS",
    "SshOptions",
    "Session",
    "SshRun",
    "check_host",
    "remote_python",
    "remote_command",
    "ssh_argv",
    "ssh_failure",
    "node_failure",
    "failure_reason",
    "trust_name",
]

MARK = "@@gridlib-ssh "  # the wrapper's event lines start with it (a login script may print)
# Before the user's config file, after the user's -o (ssh takes the first value given):
# no prompts from N parallel sessions, a dead host noticed, a refused host said at once.
DEFAULT_SSH_OPTIONS = ("BatchMode=yes", "ConnectTimeout=15", "ServerAliveInterval=10",
                       "ServerAliveCountMax=3")
PING_INTERVAL = 5.0  # seconds between keepalives to each wrapper
KEEPALIVE = 60.0  # a wrapper that hears nothing for this long stops its node
STOP_WAIT = 30.0  # seconds for every node to stop before ssh itself is terminated

# The first thing the remote Python runs (one line, no "!" or newline: any login shell
# takes it in single quotes): refuse an old Python in words, import nothing from the
# login directory (python -c puts it first on sys.path), then run the wrapper.
BOOT = ('import sys;sys.version_info<(3,10) and sys.exit("Python %d.%d is too old for gridlib '
        '(3.10 or later)"%sys.version_info[:2]);sys.path[:]=[p for p in sys.path if p not in '
        '("",".")];import base64,zlib;exec(compile(zlib.decompress(base64.b64decode('
        'sys.argv[1])),"gridlib-ssh-remote","exec"))')

_HOST = re.compile(r"[A-Za-z0-9_.@%+:\[\]-]+")


def check_host(host: str) -> str:
    """``host`` if it is a plausible ssh destination (``[user@]host``, ``ssh://user@host:port``,
    an alias of ~/.ssh/config); raises ``ValueError`` otherwise.

    Nothing a shell would interpret gets through (the host never reaches a remote shell,
    and ssh gets it as one argument after ``--``; this is defence in depth), nor a leading
    ``-`` that ssh could take for an option.
    """
    rest = host[len("ssh://"):] if host.startswith("ssh://") else host
    if not rest or rest.startswith("-") or not _HOST.fullmatch(rest):
        raise ValueError(f"{host!r} is not a host: give [USER@]HOST, an alias from your ssh "
                         f"config, or ssh://[USER@]HOST[:PORT]")
    return host


def remote_python(python: str) -> str:
    """``--python`` as one shell word; ``~/x`` becomes ``"$HOME"/'x'``."""
    if python.startswith("~/"):
        return '"$HOME"/' + shlex.quote(python[2:])
    return shlex.quote(python)


def _remote_source() -> str:
    return (Path(__file__).with_name("ssh_remote.py")).read_text()


def remote_command(python: str, options: dict[str, Any]) -> str:
    """The one command ssh runs on the host: every word quoted, the wrapper's source and the
    options (JSON) in base64, so nothing the user typed is ever parsed by the remote shell."""
    code = base64.b64encode(zlib.compress(_remote_source().encode(), 9)).decode()
    args = base64.b64encode(json.dumps(options).encode()).decode()
    return " ".join(["exec", remote_python(python), "-c", shlex.quote(BOOT), shlex.quote(code),
                     shlex.quote(args)])


def ssh_argv(ssh: Sequence[str], ssh_options: Sequence[str], host: str, command: str) -> list[str]:
    """``ssh -T [-o OPT]... -o DEFAULT... -- HOST COMMAND`` (the user's -o first: they win)."""
    argv = [*ssh, "-T"]
    for option in (*ssh_options, *DEFAULT_SSH_OPTIONS):
        argv += ["-o", option]
    return [*argv, "--", host, command]


_SSH_NOISE = ("Warning: Permanently added", "** WARNING: connection is not using a post-quantum",
              "** This session may be vulnerable", "** The server may need to be upgraded",
              "Pseudo-terminal will not be allocated")


def ssh_failure(lines: Sequence[str]) -> str:
    """The line of ssh's stderr that says why (the last one that is not a routine warning)."""
    useful = [line.strip() for line in lines
              if line.strip() and not line.strip().startswith(_SSH_NOISE)]
    if not useful:
        return ""
    last = useful[-1]
    return last[len("ssh: "):] if last.startswith("ssh: ") else last


_BOX = "│╭╰─╮╯┃┏┗┓┛━"


def node_failure(lines: Sequence[str]) -> str:
    """One line out of what a node printed when it would not start (or died): typer's error
    box joined up, else its ``gridlib node: ...`` line, else its last line that is not an
    INFO or DEBUG log line ("" if there is none)."""
    boxed = [line.strip().strip(_BOX).strip() for line in lines if line.strip().startswith("│")]
    boxed = [text for text in boxed if text]
    if boxed:
        return " ".join(boxed)
    said = [line.strip() for line in lines if line.strip().startswith("gridlib node:")]
    if said:
        return said[-1][len("gridlib node:"):].strip()
    rest = [line.strip() for line in lines
            if line.strip() and " INFO " not in line and " DEBUG " not in line]
    return rest[-1] if rest else ""


def failure_reason(python: str, returncode: int | None, stderr: Sequence[str]) -> str:
    """Why a session ended before its node was up, from ssh's exit status and stderr (when
    the wrapper said nothing)."""
    said = ssh_failure(stderr)
    if returncode == 255:
        return f"ssh failed: {said}" if said else "ssh failed (exit status 255)"
    if returncode in (126, 127):
        return (f"cannot run --python {python} there ({said or 'not found'}); give the "
                f"interpreter that has gridlib installed")
    if said:
        return said
    return f"the remote command exited with status {returncode} and said nothing"


def _status(status: Any, form: str) -> str:
    """``exited with status 2`` / ``was killed by SIGKILL`` in ``form``; "" for 0 or none."""
    if not isinstance(status, int) or status == 0:
        return ""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return form.format(f"was killed by {name}")
    return form.format(f"exited with status {status}")


def trust_name(host: str, port: int | None) -> str:
    """The name of a node's key in the ``nodes/`` allowlist: ``ssh-HOST-PORT``."""
    return "ssh-" + re.sub(r"[^A-Za-z0-9_-]", "_", host) + f"-{port or 0}"


@dataclass
class SshOptions:
    """How to reach the hosts and what to start there (the command's options, checked)."""

    client_key: bytes  # this user's PUBLIC key, trusted by the nodes
    node_args: list[str] = field(default_factory=list)  # options for gridlib node
    paths: dict[str, str] = field(default_factory=dict)  # path options, made absolute there
    ssh: list[str] = field(default_factory=lambda: ["ssh"])
    ssh_options: list[str] = field(default_factory=list)  # each one -o
    python: str = "python3"
    trust_dir: Path | None = None  # add each node's key to TRUST_DIR/nodes while it runs
    start_timeout: float = 120.0  # for each node, once ssh is connected
    verbose: bool = False  # every line of every node's log, and of ssh


class Session:
    """One host: its ssh process and what the wrapper there said."""

    def __init__(self, host: str, events: queue.SimpleQueue[tuple[Session, str, Any]]) -> None:
        self.host = host
        self.events = events
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "starting"  # starting -> up -> done; or starting -> done
        self.up: NodeUp | None = None
        self.reason = ""  # why it failed, from the wrapper
        self.stopped: dict[str, Any] | None = None  # the wrapper's "stopped" event
        self.stderr: deque[str] = deque(maxlen=40)
        self.started = time.monotonic()
        self.trusted: Path | None = None
        self._stderr_done = threading.Event()

    def start(self, argv: list[str]) -> None:
        # Its own session: a Ctrl-C in the terminal reaches gridlib ssh only, which stops the
        # nodes in order (ssh never prompts: BatchMode, see DEFAULT_SSH_OPTIONS).
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)  # a stalled ssh never blocks the loop
        threading.Thread(target=self._read_stderr, name=f"ssh-err-{self.host}",
                         daemon=True).start()
        threading.Thread(target=self._read_stdout, name=f"ssh-out-{self.host}",
                         daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stderr.append(line)
            self.events.put((self, "stderr", line))
        self._stderr_done.set()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(MARK):
                try:
                    event = json.loads(line[len(MARK):])
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.put((self, "event", event))
                    continue
            self.events.put((self, "noise", line))
        self._stderr_done.wait(10)
        self.events.put((self, "exit", self.proc.wait()))

    @property
    def live(self) -> bool:
        return self.state != "done"

    def send(self, text: bytes) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:
            return
        try:
            os.write(self.proc.stdin.fileno(), text)  # a few bytes, unbuffered; never blocks
        except (OSError, ValueError):
            pass

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def signal_ssh(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill() if kill else self.proc.terminate()
            except OSError:
                pass


class SshRun:
    """Start a node on each host, report them, keep them alive, stop them all on request.

    :meth:`run` blocks until every node has stopped (after :meth:`request_stop`, which a
    signal handler may call) or failed, and returns the exit status: 0 if every host ran
    its node until asked to stop, 1 if any host failed or lost its node.
    """

    def __init__(self, hosts: Sequence[str], options: SshOptions, report: Report,
                 log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.report = report
        self.log = log or (lambda line: None)
        self.events: queue.SimpleQueue[tuple[Session | None, str, Any]] = queue.SimpleQueue()
        self.sessions = [Session(host, self.events) for host in hosts]  # type: ignore[arg-type]
        self.failures = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.summarised = False

    # -- from another thread or a signal handler --------------------------------------
    def request_stop(self, why: str = "") -> None:
        """Stop every node (SimpleQueue.put is safe in a signal handler).  A second SIGINT
        (``why == "SIGINT"``) kills the ssh processes at once: the nodes still stop, since
        their wrappers' stdin closes, but without the wait for each one's ``stopped``."""
        self.events.put((None, "stop", why))

    # -- the loop ----------------------------------------------------------------------
    def command_for(self) -> str:
        opts = self.options
        return remote_command(opts.python, {
            "client_key": opts.client_key.decode(), "node_args": list(opts.node_args),
            "paths": dict(opts.paths), "start_timeout": opts.start_timeout,
            "keepalive": KEEPALIVE})

    def run(self) -> int:
        command = self.command_for()
        for session in self.sessions:
            try:
                session.start(ssh_argv(self.options.ssh, self.options.ssh_options,
                                       session.host, command))
            except OSError as exc:
                session.state = "done"
                self._fail(session, f"cannot run {self.options.ssh[0]}: {exc.strerror or exc}")
        next_ping = time.monotonic() + PING_INTERVAL
        while any(s.live for s in self.sessions):
            try:
                source, kind, payload = self.events.get(timeout=0.5)
            except queue.Empty:
                pass
            else:
                self._handle(source, kind, payload)
            now = time.monotonic()
            if now >= next_ping and not self.stopping:
                next_ping = now + PING_INTERVAL
                for s in self.sessions:
                    if s.live:
                        s.send(b"ping\n")
            self._check_deadlines(now)
            self._maybe_summarise()
        self._maybe_summarise()
        return 1 if self.failures else 0

    def _handle(self, session: Session | None, kind: str, payload: Any) -> None:
        if session is None:  # "stop"; payload: the signal's name
            if not self.stopping:
                self.stop()
            elif payload == "SIGINT":  # Ctrl-C again: no waiting (a SIGTERM sent to a whole
                for s in self.sessions:  # process group may come twice: not this)
                    s.signal_ssh(kill=True)
            return
        if kind == "event":
            self._on_event(session, payload)
        elif kind == "exit":
            self._on_exit(session, payload)
        elif self.options.verbose:  # ssh's stderr, or a login script's output
            self.log(f"{session.host}: {payload}")

    def _on_event(self, session: Session, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "log":
            line = str(event.get("line", ""))
            if self.options.verbose or any(f" {lvl} " in line for lvl in
                                           ("WARNING", "ERROR", "CRITICAL")):
                self.log(f"{session.host}: {line}")
        elif kind == "ready" and session.state == "starting":
            self._on_ready(session, event)
        elif kind == "error":
            session.reason = str(event.get("reason", "the remote side failed"))
        elif kind == "failed":
            why = event.get("reason") or node_failure(event.get("output") or []) or \
                "it exited without saying why"
            session.reason = f"the node did not start: {why}" + _status(event.get("status"),
                                                                         " ({})")
        elif kind == "exited":
            why = node_failure(event.get("output") or [])
            session.reason = "the node " + (_status(event.get("status"), "{}") or "exited") + (
                f": {why}" if why else "")
        elif kind == "stopped":
            session.stopped = event

    def _on_ready(self, session: Session, event: dict[str, Any]) -> None:
        try:
            up = NodeUp(host=session.host, address=str(event.get("address") or session.host),
                        port=event.get("port"), pid=int(event["pid"]), key=str(event["key"]),
                        hostname=str(event.get("hostname", "")), directory=str(event.get("dir", "")),
                        python=str(event.get("python", "")), gridlib=str(event.get("gridlib", "")))
        except (KeyError, TypeError, ValueError):
            session.reason = f"the remote side sent a bad ready line: {event!r}"
            session.signal_ssh()
            return
        session.state, session.up = "up", up
        if self.options.trust_dir is not None:
            self._trust(session, up)
        self.report.up(up)
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        there = ".".join(up.python.split(".")[:2])
        if there and there != here:
            self.report.note(session.host, f"the node runs Python {up.python} and this "
                                           f"computer Python {here}: clients on another minor "
                                           f"version than the node's cannot use it")

    def _on_exit(self, session: Session, returncode: int) -> None:
        was, session.state = session.state, "done"
        self._untrust(session)
        if was == "starting":
            if self.stopping:
                self.report.note(session.host, "stopped before its node was up")
                return
            self._fail(session, session.reason or
                       failure_reason(self.options.python, returncode, session.stderr))
        elif self.stopping and not session.reason:
            assert session.up is not None
            self.report.stopped(session.host, session.up.pid,
                                confirmed=session.stopped is not None)
        else:
            why = session.reason or ssh_failure(session.stderr) or \
                f"ssh exited with status {returncode}"
            self.failures += 1
            self.report.lost(session.host, why)

    def _fail(self, session: Session, reason: str) -> None:
        self.failures += 1
        self.report.failed(session.host, reason)

    def _check_deadlines(self, now: float) -> None:
        limit = self.options.start_timeout + 30.0  # ssh's ConnectTimeout and log-in too
        for s in self.sessions:
            if s.state == "starting" and not s.reason and now - s.started > limit:
                s.reason = f"no node up within {limit:.0f} s"
                s.close_stdin()
                s.signal_ssh()
        if self.stopping and now > self.stop_deadline:
            for s in self.sessions:
                s.signal_ssh(kill=now > self.stop_deadline + 5.0)

    def _maybe_summarise(self) -> None:
        if self.summarised or self.stopping or any(s.state == "starting" for s in self.sessions):
            return
        self.summarised = True
        self.report.summary([s.up for s in self.sessions if s.up is not None and s.live],
                            len(self.sessions), self.options.trust_dir)

    def stop(self) -> None:
        """Ask every wrapper to stop its node; ssh sessions still connecting are ended (their
        wrapper, if it started, sees its stdin close and stops the node)."""
        self.stopping = True
        self.stop_deadline = time.monotonic() + STOP_WAIT
        for s in self.sessions:
            if not s.live:
                continue
            s.send(b"stop\n")
            s.close_stdin()
            if s.state == "starting":
                s.signal_ssh()

    # -- the client's allowlist ----------------------------------------------------------
    def _trust(self, session: Session, up: NodeUp) -> None:
        from gridlib.protocol.errors import KeyFileError
        from gridlib.protocol.keys import allow_key

        assert self.options.trust_dir is not None
        try:
            session.trusted = allow_key(self.options.trust_dir, "node", up.key.encode(),
                                        trust_name(session.host, up.port))
        except (OSError, KeyFileError) as exc:
            self.report.note(session.host, f"cannot trust its key in "
                                           f"{self.options.trust_dir / 'nodes'}: {exc}")

    def _untrust(self, session: Session) -> None:
        """Remove the key file written for this node, if it still holds this node's key."""
        from gridlib.protocol.errors import KeyFileError
        from gridlib.protocol.keys import load_public_key

        path, session.trusted = session.trusted, None
        if path is None or session.up is None:
            return
        try:
            if load_public_key(path) == session.up.key.encode():
                path.unlink()
        except (OSError, KeyFileError):
            pass


def default_trust_dir(keys: Path | None) -> Path:
    from gridlib.protocol.keys import config_dir

    return keys if keys is not None else config_dir()

