"""The ``gridlib`` command line (typer): node daemons and key management.

Secrets never need to be on the command line: ``--secret-file`` or the
``GRIDLIB_SECRET`` environment variable carry a shared secret, ``--keys``
names a key directory.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from gridlib.protocol.errors import GridError, KeyFileError
from gridlib.protocol.keys import (
    ROLES,
    allow_key,
    config_dir,
    load_keypair,
    load_public_key,
    parse_public_key,
    resolve_identity,
    revoke_key,
    user_keypair,
    write_keypair,
)

__all__ = ["app", "main", "node_main", "relay_main"]

app = typer.Typer(help="gridlib: a compute grid for Python on ZeroMQ.", no_args_is_help=True,
                  add_completion=False)
keys_app = typer.Typer(help="Manage Curve key files.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

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


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)


def _secret(secret_file: Path | None, secret: str = "") -> str | None:
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


@app.command()
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

    _setup_logging(log_level)
    try:
        shared = _secret(secret_file, secret)
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


@app.command()
def scheduler(
    host: str = typer.Option("0.0.0.0", help="Interface for clients and nodes."),
    port: int = typer.Option(51350, help="Port clients connect to."),
    node_port: int = typer.Option(51351, help="Port nodes connect to."),
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
    keys: Path | None = typer.Option(None, help="Key directory (identity.key_secret, clients/, nodes/)."),
    secret_file: Path | None = typer.Option(None, help="File holding a shared secret."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a shared scheduler: many client programs share the nodes."""
    from gridlib.daemons.scheduler.main import SchedulerConfig, run_scheduler
    from gridlib.daemons.scheduler.state import POLICIES, SchedulerOptions
    from gridlib.protocol.addresses import expand_targets

    _setup_logging(log_level)
    if policy not in POLICIES:
        raise typer.BadParameter(f"--policy must be one of {', '.join(POLICIES)}")
    try:
        shared = _secret(secret_file)
        identity = resolve_identity(shared, keys)
        try:
            targets = expand_targets(node, nodes_beacon_port)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        options = SchedulerOptions(policy=policy, cooperative=cooperative,
                                   cleanup_nodes=cleanup_nodes, client_timeout=client_timeout)
        config = SchedulerConfig(host=host, client_port=port, node_port=node_port,
                                 node_targets=targets, options=options, journal=journal,
                                 heartbeat=heartbeat)
        raise typer.Exit(run_scheduler(config, identity, lambda: resolve_identity(shared, keys)))
    except GridError as exc:
        typer.echo(f"gridlib scheduler: {exc}", err=True)
        raise typer.Exit(2) from None


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


@app.command()
def relay(
    host: list[str] = typer.Option(["0.0.0.0"], help="Interface(s) to hear schedulers' beacons on."),
    port: int = typer.Option(51352, help="Beacon port (schedulers list the relay like a node)."),
    node: list[str] = typer.Option([], help="Nodes to announce schedulers to (host, a.b.c.*, CIDR); "
                                           "default: the subnets of this host's other interfaces."),
    node_port: int = typer.Option(51352, help="The nodes' beacon port."),
    scheduler: str = typer.Option("", help="Also bridge this scheduler directly (HOST[:PORT])."),
    scheduler_key: str = typer.Option("", help="The scheduler's public key (Z85) for --scheduler."),
    keys: Path | None = typer.Option(None, help="Key directory (identity.key_secret, clients/, nodes/)."),
    secret_file: Path | None = typer.Option(None, help="File holding a shared secret."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a relay: lets schedulers in one subnet use the nodes of another."""
    from gridlib.daemons.relay.main import run_relay
    from gridlib.daemons.relay.service import RelayConfig
    from gridlib.protocol.addresses import expand_targets, split_host_port
    from gridlib.protocol.sockets import tcp_endpoint

    _setup_logging(log_level)
    try:
        shared = _secret(secret_file)
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
                             scheduler_key=scheduler_key.encode())
        raise typer.Exit(run_relay(config, identity, lambda: resolve_identity(shared, keys)))
    except GridError as exc:
        typer.echo(f"gridlib relay: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("generate")
def keys_generate(
    directory: Path = typer.Argument(None, help="Key directory (default: the user's config dir)."),
    name: str = typer.Option("identity", help="Base name of the key files."),
    force: bool = typer.Option(False, help="Overwrite an existing key."),
) -> None:
    """Create a keypair: NAME.key (public) and NAME.key_secret (0600)."""
    directory = directory or config_dir()
    if (directory / f"{name}.key_secret").exists() and not force:
        typer.echo(f"{directory / (name + '.key_secret')} exists (use --force to replace it)", err=True)
        raise typer.Exit(1)
    pair = write_keypair(directory, name)
    typer.echo(pair.public.decode())


@keys_app.command("show")
def keys_show(directory: Path = typer.Argument(None, help="Key directory (default: the user's).")) -> None:
    """Print the public key of a key directory (never the secret)."""
    try:
        pair = load_keypair(directory / "identity.key_secret") if directory else user_keypair()
    except GridError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(pair.public.decode())


@keys_app.command("allow")
def keys_allow(
    key: str = typer.Argument(..., help="A Z85 public key, or the path of a .key file."),
    role: str = typer.Option("client", "--as", help="client (may send work) or node (may serve it)."),
    name: str = typer.Option("", help="Name of the allowlist entry (default: the key file's name)."),
    directory: Path = typer.Option(None, "--dir", help="Key directory (default: the user's)."),
) -> None:
    """Trust a peer's public key; running daemons pick it up on SIGHUP."""
    try:
        public = parse_public_key(key)
        label = name or (Path(key).stem if Path(key).is_file() else public.decode()[:8])
        label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        path = allow_key(directory or config_dir(), role, public, label)
    except GridError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"allowed {role} {public.decode()} ({path})")


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="The entry's name or the public key."),
    role: str = typer.Option("any", "--as", help="client, node or any."),
    directory: Path = typer.Option(None, "--dir", help="Key directory (default: the user's)."),
) -> None:
    """Stop trusting a key; running daemons drop it on SIGHUP."""
    removed = revoke_key(directory or config_dir(), role, key)
    if not removed:
        typer.echo(f"no allowlist entry matches {key!r}", err=True)
        raise typer.Exit(1)
    for path in removed:
        typer.echo(f"revoked {path}")


@keys_app.command("list")
def keys_list(directory: Path = typer.Option(None, "--dir", help="Key directory (default: the user's).")) -> None:
    """Show this identity's public key and the allowlists."""
    directory = directory or config_dir()
    try:
        own = load_keypair(directory / "identity.key_secret") if directory != config_dir() \
            else user_keypair()
        typer.echo(f"identity\tidentity\t{own.public.decode()}")
    except GridError as exc:
        typer.echo(f"identity\t-\tunreadable: {exc}")
    for role, folder in sorted(ROLES.items()):
        for path in sorted((directory / folder).glob("*.key")):
            try:
                typer.echo(f"{role}\t{path.stem}\t{load_public_key(path).decode()}")
            except GridError as exc:
                typer.echo(f"{role}\t{path.stem}\tunreadable: {exc}")


def main() -> None:
    app()


def relay_main() -> None:
    """Entry for ``python -m gridlib.daemons.relay``."""
    typer.run(relay)


def node_main() -> None:
    """Entry for ``python -m gridlib.daemons.node``."""
    typer.run(node)
