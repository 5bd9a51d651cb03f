"""``gridlib relay``: bridge schedulers to the nodes of another subnet."""

from __future__ import annotations

from pathlib import Path

import typer

from gridlib.protocol.errors import GridError
from gridlib.protocol.keys import resolve_identity

from .common import PORT_FILE_HELP, PortFile, exit_on_bind_failure, read_secret, setup_logging
from .config import config_options

__all__ = ["relay"]


def _subnets(hosts: list[str]) -> list[str]:
    """The IPv4 networks a relay serves by default: those of its interfaces *other* than
    the ones it hears schedulers on (all of them when it listens on 0.0.0.0)."""
    import ipaddress

    import psutil

    nets = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family.name != "AF_INET" or not addr.netmask:
                continue
            ip = ipaddress.ip_address(addr.address)
            if ip.is_loopback or addr.address in hosts:
                continue
            nets.append(str(ipaddress.ip_network(f"{addr.address}/{addr.netmask}", strict=False)))
    return nets


@config_options
def relay(
    host: list[str] = typer.Option(["0.0.0.0"], help="Interface(s) to hear schedulers' beacons on."),
    port: int = typer.Option(51352, help="Beacon port (schedulers list the relay like a node); "
                                         "0: one the OS chooses (see --port-file)."),
    port_file: Path | None = typer.Option(None, metavar="FILE", help=PORT_FILE_HELP + " Here "
                                          "the port is \"beacon\"."),
    node: list[str] = typer.Option([], help="Nodes to announce schedulers to (host, a.b.c.*, CIDR); "
                                           "default: the subnets of this host's other interfaces."),
    node_port: int = typer.Option(51352, help="The nodes' beacon port."),
    scheduler: str = typer.Option("", help="Also bridge this scheduler directly (HOST[:PORT])."),
    scheduler_key: str = typer.Option("", help="The scheduler's public key (Z85) for --scheduler."),
    keys: Path | None = typer.Option(None, envvar="GRIDLIB_KEYS",
                                     help="Key directory (identity.key_secret, clients/, nodes/)."),
    secret_file: Path | None = typer.Option(None, envvar="GRIDLIB_SECRET_FILE",
                                            help="File (mode 0600) holding a shared secret."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a relay: lets schedulers in one subnet use the nodes of another."""
    from gridlib.daemons.relay.main import run_relay
    from gridlib.daemons.relay.service import RelayConfig
    from gridlib.protocol.addresses import expand_targets, split_host_port
    from gridlib.protocol.sockets import tcp_endpoint

    setup_logging(log_level)
    ports: PortFile | None = None
    try:
        ports = PortFile(port_file)
        shared = read_secret(secret_file)
        identity = resolve_identity(shared, keys)
        patterns = node or _subnets(host)
        try:
            targets = expand_targets(patterns, node_port)
        except ValueError as exc:
            raise typer.BadParameter(f"{exc}; name the nodes with --node") from None
        endpoint = ""
        if scheduler:
            endpoint = scheduler if scheduler.startswith("tcp://") else \
                tcp_endpoint(*split_host_port(scheduler, 51351))
        config = RelayConfig(hosts=host, port=port, node_targets=targets, scheduler=endpoint,
                             scheduler_key=scheduler_key.encode(), on_listening=ports.write)
        raise typer.Exit(run_relay(config, identity, lambda: resolve_identity(shared, keys)))
    except GridError as exc:
        typer.echo(f"gridlib relay: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a socket that cannot bind: one line, not a traceback
        exit_on_bind_failure("relay", exc)
    finally:
        if ports is not None:
            ports.remove()
