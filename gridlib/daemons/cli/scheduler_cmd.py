"""``gridlib scheduler``: run a shared scheduler."""

from __future__ import annotations

from pathlib import Path

import typer

from gridlib.protocol.errors import GridError
from gridlib.protocol.keys import resolve_identity

from .common import PORT_FILE_HELP, PortFile, exit_on_bind_failure, read_secret, setup_logging
from .config import config_options

__all__ = ["scheduler"]


@config_options
def scheduler(
    host: str = typer.Option("0.0.0.0", help="Interface for clients and nodes."),
    port: int = typer.Option(51350, help="Port clients connect to (0: one the OS chooses; "
                                         "see --port-file)."),
    node_port: int = typer.Option(51351, help="Port nodes connect to (0: one the OS chooses)."),
    node: list[str] = typer.Option([], help="Nodes to announce this scheduler to (host, "
                                           "a.b.c.*, CIDR, host:port); repeat the option."),
    nodes_beacon_port: int = typer.Option(51352, help="The nodes' beacon port."),
    policy: str = typer.Option("fifo", help="fifo: earliest job first; fair: least recently "
                                            "served cluster; early: earliest cluster first."),
    cooperative: bool = typer.Option(False, help="Let clients change how many node CPUs they use."),
    cleanup_nodes: bool = typer.Option(False, help="Remove every cluster's files from nodes at close."),
    journal: str = typer.Option("", help="SQLite journal: accepted jobs survive a restart."),
    client_timeout: float = typer.Option(3600.0, help="Close a silent client's clusters after this."),
    heartbeat: float = typer.Option(2.0, help="Heartbeat interval in seconds."),
    keys: Path | None = typer.Option(None, envvar="GRIDLIB_KEYS",
                                     help="Key directory (identity.key_secret, clients/, nodes/)."),
    secret_file: Path | None = typer.Option(None, envvar="GRIDLIB_SECRET_FILE",
                                            help="File (mode 0600) holding a shared secret."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    httpd: bool = typer.Option(False, "--httpd", help="Serve the web monitor; its address, with "
                                                      "the access token, is logged at start."),
    http_port: int = typer.Option(8181, help="The web monitor's port (0: a free one)."),
    http_host: str = typer.Option("127.0.0.1", help="The web monitor's interface (keep it on "
                                                    "loopback; use ssh -L from elsewhere)."),
    port_file: Path | None = typer.Option(None, metavar="FILE", help=PORT_FILE_HELP + " Here "
                                          "the ports are \"client\", \"node\" and, with "
                                          "--httpd, \"http\"."),
) -> None:
    """Run a shared scheduler: many client programs share the nodes."""
    from gridlib.daemons.scheduler.main import SchedulerConfig, run_scheduler
    from gridlib.daemons.scheduler.state import POLICIES, SchedulerOptions
    from gridlib.protocol.addresses import expand_targets

    setup_logging(log_level)
    if policy not in POLICIES:
        raise typer.BadParameter(f"--policy must be one of {', '.join(POLICIES)}")
    ports: PortFile | None = None
    try:
        ports = PortFile(port_file)
        shared = read_secret(secret_file)
        identity = resolve_identity(shared, keys)
        try:
            targets = expand_targets(node, nodes_beacon_port)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        options = SchedulerOptions(policy=policy, cooperative=cooperative,
                                   cleanup_nodes=cleanup_nodes, client_timeout=client_timeout)
        config = SchedulerConfig(host=host, client_port=port, node_port=node_port,
                                 node_targets=targets, options=options, journal=journal,
                                 heartbeat=heartbeat, httpd=httpd, http_host=http_host,
                                 http_port=http_port, on_listening=ports.write)
        raise typer.Exit(run_scheduler(config, identity, lambda: resolve_identity(shared, keys)))
    except GridError as exc:
        typer.echo(f"gridlib scheduler: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a socket that cannot bind: one line, not a traceback
        exit_on_bind_failure("scheduler", exc)
    finally:
        if ports is not None:
            ports.remove()
