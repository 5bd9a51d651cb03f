"""``gridlib ssh``: start a node on each host over ssh, and stop them all on Ctrl-C.

The logic is in ``gridlib/ssh_tool.py`` (and ``gridlib/ssh_remote.py``, the part that
runs on each host).  This module is the typer command: its own options, plus every
option of ``gridlib node`` that makes sense on a remote host, taken from the node
command itself (so a new node option is available here at once, with the node's own
type checks and help) and passed on when given.
"""

from __future__ import annotations

import copy
import inspect
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from .node_cmd import node as _node_command

__all__ = ["ssh", "NODE_OPTIONS", "NOT_FORWARDED", "node_arguments"]

# Options of gridlib node that gridlib ssh sets itself, or that have no meaning there.
NOT_FORWARDED = {
    "port_file": "gridlib ssh gives each node its own and reads it back",
    "daemon": "the node runs in its ssh session, which gridlib ssh watches",
    "keys": "each node gets a fresh key of its own, and trusts yours, in a run directory",
    "secret_file": "gridlib ssh uses keys: your public key goes to the node",
    "secret": "gridlib ssh uses keys: your public key goes to the node",
    "parent_pid": "hidden (a client's private node)",
    "clock_file": "hidden (tests of service hours)",
}
# Path options: made absolute on the host (from the login directory), not from the
# run directory the node works in.
REMOTE_PATHS = ("dest_path_prefix", "init")
_PANEL = "Options of gridlib node (passed to each node)"


def _node_parameters() -> dict[str, inspect.Parameter]:
    """gridlib node's parameters that gridlib ssh passes on, shown in a panel of their own."""
    signature = inspect.signature(inspect.unwrap(_node_command), eval_str=True)
    found = {}
    for name, param in signature.parameters.items():
        if name in NOT_FORWARDED:
            continue
        info = copy.copy(param.default)
        info.rich_help_panel = _PANEL
        if name in REMOTE_PATHS:
            info.help = (info.help or "") + " A path on the host."
        found[name] = param.replace(kind=inspect.Parameter.KEYWORD_ONLY, default=info)
    return found


NODE_OPTIONS = _node_parameters()


def _flag(name: str, info: Any) -> str:
    longs = [d for d in (getattr(info, "param_decls", None) or ()) if d.startswith("--")]
    return longs[0].split("/")[0] if longs else "--" + name.replace("_", "-")


def node_arguments(values: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The gridlib node options given (those that differ from the node's defaults) as
    arguments, and the path options apart (``{"--init": "x.py"}``)."""
    args: list[str] = []
    paths: dict[str, str] = {}
    for name, param in NODE_OPTIONS.items():
        value = values.get(name)
        if value is None or value == param.default.default:
            continue
        flag = _flag(name, param.default)
        if name in REMOTE_PATHS:
            paths[flag] = str(value)
        elif isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, str(value)]
    return args, paths


def _own(
    hosts: list[str] = typer.Argument(..., metavar="HOST", show_default=False,
                                      help="Where to start a node: [USER@]HOST, an alias of "
                                           "your ssh config, or ssh://[USER@]HOST[:PORT]."),
    python: str = typer.Option("python3", metavar="PATH",
                               help="The Python on the hosts that has gridlib installed (a "
                                    "venv's bin/python; ~/ is the remote home)."),
    ssh: str = typer.Option("ssh", metavar="COMMAND",
                            help="The ssh command to run, split like a shell would: e.g. "
                                 "\"ssh -F ./ssh_config -i ~/.ssh/grid\"."),
    ssh_option: list[str] = typer.Option([], "--ssh-option", "-o", metavar="OPTION",
                                         help="An ssh -o option (Port=2222, User=alice, "
                                              "ProxyJump=gw, BatchMode=no, ...); repeat. "
                                              "These win over gridlib ssh's defaults "
                                              "(BatchMode=yes, ConnectTimeout=15, "
                                              "ServerAliveInterval=10)."),
    keys: Path | None = typer.Option(None, metavar="DIR",
                                     help="Your key directory, as JobCluster(keys=DIR) uses "
                                          "(default: your own key): its public key is what "
                                          "the nodes trust, and DIR/nodes is where their keys "
                                          "go."),
    trust_nodes: bool = typer.Option(True, "--trust-nodes/--no-trust-nodes",
                                     help="Add each node's key to your nodes/ allowlist while "
                                          "it runs (as ssh-HOST-PORT.key), so a JobCluster "
                                          "started meanwhile uses it with no set-up; removed "
                                          "when it stops."),
    json_out: bool = typer.Option(False, "--json",
                                  help="One JSON object per line on stdout for each node up, "
                                       "failed, lost or stopped."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show every line of the nodes' logs and of ssh (default: "
                                      "the nodes' warnings and errors)."),
    start_timeout: float = typer.Option(120.0, min=1.0, metavar="S",
                                        help="Seconds each node has to start once ssh is "
                                             "connected."),
) -> None:
    """(the parameters of ``gridlib ssh`` itself; the command is :func:`ssh`)"""


def ssh(**options: Any) -> None:
    """Start a gridlib node on each HOST over ssh; Ctrl-C or SIGTERM stops them all.

    Runs your own ssh (your ssh config, agent and known_hosts apply). Each node gets a fresh key of its own and trusts your public key; no secret key is copied. Prints each node's address once it is up (use them with JobCluster(nodes=[...])), and one line for each host that fails, saying why.

    Exit status: 0 if every node ran until stopped, 1 if any host failed or lost its node, 2 for a usage error.
    """
    from gridlib import ssh_report, ssh_tool
    from gridlib.protocol.errors import GridError
    from gridlib.protocol.keys import resolve_identity

    hosts: list[str] = options["hosts"]
    try:
        for host in hosts:
            ssh_tool.check_host(host)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'HOST...'") from None
    try:
        ssh_command = shlex.split(options["ssh"])
    except ValueError as exc:
        raise typer.BadParameter(f"cannot split {options['ssh']!r}: {exc}",
                                 param_hint="'--ssh'") from None
    if not ssh_command or shutil.which(ssh_command[0]) is None:
        raise typer.BadParameter(f"{ssh_command[0] if ssh_command else 'ssh'!r} not found",
                                 param_hint="'--ssh'")
    keys: Path | None = options["keys"]
    try:
        identity = resolve_identity(None, keys)
    except GridError as exc:
        typer.echo(f"gridlib ssh: {exc}", err=True)
        raise typer.Exit(2) from None
    node_args, paths = node_arguments(options)
    if options.get("scheduler") and not options.get("scheduler_key"):
        node_args += ["--scheduler-key", identity.keypair.public.decode()]  # it trusts 2 keys
    out, err = ssh_report.write_line(sys.stdout), ssh_report.write_line(sys.stderr)
    report = (ssh_report.JsonReport if options["json_out"] else ssh_report.TextReport)(out, err)
    run = ssh_tool.SshRun(hosts, ssh_tool.SshOptions(
        client_key=identity.keypair.public, node_args=node_args, paths=paths, ssh=ssh_command,
        ssh_options=list(options["ssh_option"]), python=options["python"],
        trust_dir=ssh_tool.default_trust_dir(keys) if options["trust_nodes"] else None,
        start_timeout=options["start_timeout"], verbose=options["verbose"]), report, log=err)

    def on_signal(signum: int, frame: Any) -> None:
        run.request_stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM,
                                                          signal.SIGHUP)}
    try:
        status = run.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise typer.Exit(status)


_OWN = {name: p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in inspect.signature(_own, eval_str=True).parameters.items()}
if set(_OWN) & set(NODE_OPTIONS):  # (a programming error: caught by any run of the command)
    raise RuntimeError(f"gridlib ssh's own options hide gridlib node's: {set(_OWN) & set(NODE_OPTIONS)}")
ssh.__signature__ = inspect.Signature([*_OWN.values(), *NODE_OPTIONS.values()])  # type: ignore[attr-defined]
ssh.__annotations__ = {name: p.annotation for name, p in {**_OWN, **NODE_OPTIONS}.items()}
