"""``gridlib node``: run a node daemon."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gridlib.protocol.errors import GridError
from gridlib.protocol.keys import resolve_identity

from .common import (
    PORT_FILE_HELP,
    PortFile,
    exit_on_bind_failure,
    parse_size,
    read_secret,
    setup_logging,
)
from .config import config_options

if TYPE_CHECKING:  # the daemon's modules are imported only when it runs
    from gridlib.daemons.node.config import NodeConfig
    from gridlib.daemons.node.service_hours import ServiceHours

__all__ = ["node"]


@config_options
def node(
    cpus: int = typer.Option(0, help="CPUs to use, so jobs run at once: 0 all, N exactly N, "
                                     "-N all but N (at least 1)."),
    host: str = typer.Option("0.0.0.0", help="Interface to listen on for beacons."),
    port: int = typer.Option(51352, help="Beacon port schedulers announce themselves to; 0: "
                                         "one the OS chooses (see --port-file), or, with "
                                         "--scheduler, none (dial out only)."),
    port_file: Path | None = typer.Option(None, metavar="FILE", help=PORT_FILE_HELP + " Here "
                                          "the port is \"beacon\" (null: none)."),
    name: str = typer.Option("", help="Node name (default: the host name)."),
    scheduler: str = typer.Option("", help="Dial this scheduler directly (HOST[:PORT], port "
                                           "51351 by default; NAT/cloud)."),
    scheduler_key: str = typer.Option("", help="The scheduler's public key (Z85) for "
                                               "--scheduler; needed if several keys are trusted."),
    dest_path_prefix: str = typer.Option("", help="State directory: clusters' files, node id, "
                                                  "result spool, node.pid, node.log (default "
                                                  "/tmp/gridlib-UID/node-PORT)."),
    max_file_size: str = typer.Option("100m", help="Largest file a client may send (k, m, g)."),
    max_output: str = typer.Option("4m", help="Most of a job's stdout, and of its stderr, sent "
                                              "back (k, m, g); the rest is cut, with a marker "
                                              "saying so."),
    zombie_interval: float = typer.Option(3600.0, help="Seconds to keep the clusters (and "
                                                       "spooled results) of a lost client."),
    service_start: str = typer.Option("", metavar="HH:MM", help="Local time the node starts "
                                      "serving each day (with --service-stop and/or --service-end)."),
    service_stop: str = typer.Option("", metavar="HH:MM", help="Local time it stops taking jobs: "
                                     "running jobs finish, then it leaves the grid."),
    service_end: str = typer.Option("", metavar="HH:MM", help="Local time it kills running jobs "
                                    "and leaves the grid until the next --service-start."),
    serve: int = typer.Option(0, metavar="N", help="Serve N clusters (clients' clusters set up "
                              "here), then exit once they are closed (0: no limit)."),
    init: Path | None = typer.Option(None, metavar="FILE", dir_okay=False, help="Python file "
                                     "run in every worker before a cluster's setup; the names "
                                     "it defines are globals of every computation."),
    clean: bool = typer.Option(False, help="Stop a node still running on this "
                               "--dest-path-prefix (found by its node.pid), kill its jobs, "
                               "remove its job files, then start."),
    daemon: bool = typer.Option(False, help="Run in the background: print the PID and the log "
                                "file (PREFIX/node.log), then detach from the terminal."),
    keys: Path | None = typer.Option(None, envvar="GRIDLIB_KEYS", help="Key directory "
                                     "(identity.key_secret, clients/)."),
    secret_file: Path | None = typer.Option(None, envvar="GRIDLIB_SECRET_FILE",
                                            help="File (mode 0600) holding a shared secret."),
    secret: str = typer.Option("", help="Shared secret (visible in ps: prefer --secret-file "
                                       "or GRIDLIB_SECRET)."),
    max_msg_size: str = typer.Option("1g", help="Largest message accepted from a scheduler."),
    parent_pid: int = typer.Option(0, hidden=True),
    clock_file: Path | None = typer.Option(None, hidden=True),  # tests: "HH:MM" is the time now
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a node daemon: it executes the jobs of the schedulers it trusts.

    SIGINT (Ctrl-C): running jobs finish, no new ones start, then it exits (a
    second SIGINT stops it at once); SIGTERM: stop now, killing running jobs;
    SIGHUP: reload the allowlists.
    """
    options = dict(locals())  # every option, by name
    from gridlib.daemons.node.detach import detach
    from gridlib.daemons.node.main import run_node
    from gridlib.daemons.node.prefix import PrefixLock, clean_prefix
    from gridlib.daemons.node.service_hours import ServiceHours

    setup_logging(log_level)
    try:
        hours = ServiceHours.from_options(service_start, service_stop, service_end)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if serve < 0:
        raise typer.BadParameter("--serve must be 0 (no limit) or a number of clusters")
    keys = keys.absolute() if keys is not None else None  # a daemon works in /
    ports: PortFile | None = None
    try:
        ports = PortFile(port_file)
        shared = read_secret(secret_file, secret)
        identity = resolve_identity(shared, keys)
        config = _node_config(options, hours)
        config.on_listening = ports.write
        prefix = config.prefix_path()
        if clean:
            clean_prefix(prefix, logging.getLogger("gridlib.node"))
        lock = PrefixLock(prefix)
        lock.acquire()
        started = None
        if daemon:
            started = detach(prefix / "node.log")
            lock.write_pid()
        raise typer.Exit(run_node(config, identity, lambda: resolve_identity(shared, keys),
                                  lock, started))
    except GridError as exc:
        typer.echo(f"gridlib node: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a socket that cannot bind: one line, not a traceback
        exit_on_bind_failure("node", exc)
    finally:
        if ports is not None:
            ports.remove()


def _node_config(options: dict[str, Any], hours: ServiceHours | None) -> NodeConfig:
    """The NodeConfig of the command's options (paths made absolute, --init read and run once)."""
    from gridlib.daemons.node.config import NodeConfig  # noqa: F811 (at run time)
    from gridlib.daemons.node.node_init import check_init, load_init
    from gridlib.protocol.addresses import split_host_port
    from gridlib.protocol.sockets import tcp_endpoint

    scheduler = options["scheduler"]
    endpoint = ""
    if scheduler:
        endpoint = scheduler if scheduler.startswith("tcp://") else \
            tcp_endpoint(*split_host_port(scheduler, 51351))
    init = None
    if options["init"] is not None:
        init = load_init(options["init"])
        check_init(init)
    prefix = options["dest_path_prefix"]
    config = NodeConfig(cpus=options["cpus"], host=options["host"], port=options["port"],
                        name=options["name"],
                        dest_path_prefix=str(Path(prefix).absolute()) if prefix else "",
                        scheduler=endpoint, scheduler_key=options["scheduler_key"].encode(),
                        max_file_size=parse_size(options["max_file_size"]),
                        max_output=parse_size(options["max_output"]),
                        zombie_interval=options["zombie_interval"],
                        parent_pid=options["parent_pid"],
                        max_msg_size=parse_size(options["max_msg_size"]),
                        service_hours=hours, serve=options["serve"],
                        init=(init.path, init.source) if init else None)
    if options["clock_file"] is not None:
        config.clock = _file_clock(options["clock_file"].absolute())
    return config


def _file_clock(path: Path) -> Callable[[], dt.datetime]:
    """A clock that reads the time of day from a file (tests of service hours)."""
    from gridlib.daemons.node.service_hours import parse_clock_time

    def now() -> dt.datetime:
        try:
            seconds = parse_clock_time(path.read_text().strip(), str(path))
        except (OSError, ValueError):
            return dt.datetime.now()
        midnight = dt.datetime.combine(dt.date.today(), dt.time())
        return midnight + dt.timedelta(seconds=seconds)
    return now
