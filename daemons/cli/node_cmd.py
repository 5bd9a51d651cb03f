"""``gridlib node``: run a node daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from gridlib.protocol.errors import GridError
from gridlib.protocol.keys import resolve_identity

from .common import parse_size, read_secret, setup_logging

__all__ = ["node"]


def node(
    cpus: int = typer.Option(0, help="CPUs to use: 0 all, N exactly N, -N all but N."),
    host: str = typer.Option("0.0.0.0", help="Interface to listen on for beacons."),
    port: int = typer.Option(51352, help="Beacon port schedulers announce themselves to (0: none)."),
    name: str = typer.Option("", help="Node name (default: the host name)."),
    scheduler: str = typer.Option("", help="Dial this scheduler directly (HOST[:PORT]; NAT/cloud)."),
    scheduler_key: str = typer.Option("", help="The scheduler's public key (Z85) for --scheduler."),
    dest_path_prefix: str = typer.Option("", help="Directory for clusters' files."),
    max_file_size: str = typer.Option("100m", help="Largest file a client may send."),
    zombie_interval: float = typer.Option(3600.0, help="Seconds to keep a lost client's jobs."),
    keys: Path | None = typer.Option(None, help="Key directory (identity.key_secret, clients/)."),
    secret_file: Path | None = typer.Option(None, help="File holding a shared secret."),
    secret: str = typer.Option("", help="Shared secret (visible in ps: prefer --secret-file "
                                       "or GRIDLIB_SECRET)."),
    max_msg_size: str = typer.Option("1g", help="Largest message accepted from a scheduler."),
    parent_pid: int = typer.Option(0, hidden=True),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a node daemon: it executes the jobs of the schedulers it trusts."""
    from gridlib.daemons.node.main import run_node
    from gridlib.daemons.node.service import NodeConfig
    from gridlib.protocol.addresses import split_host_port
    from gridlib.protocol.sockets import tcp_endpoint

    setup_logging(log_level)
    try:
        shared = read_secret(secret_file, secret)
        identity = resolve_identity(shared, keys)
        endpoint = ""
        if scheduler:
            endpoint = scheduler if scheduler.startswith("tcp://") else \
                tcp_endpoint(*split_host_port(scheduler, 51351))
        config = NodeConfig(cpus=cpus, host=host, port=port, name=name,
                            dest_path_prefix=dest_path_prefix, scheduler=endpoint,
                            scheduler_key=scheduler_key.encode(),
                            max_file_size=parse_size(max_file_size),
                            zombie_interval=zombie_interval, parent_pid=parent_pid,
                            max_msg_size=parse_size(max_msg_size))
        raise typer.Exit(run_node(config, identity, lambda: resolve_identity(shared, keys)))
    except GridError as exc:
        typer.echo(f"gridlib node: {exc}", err=True)
        raise typer.Exit(2) from None
