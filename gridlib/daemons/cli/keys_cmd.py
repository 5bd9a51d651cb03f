"""``gridlib keys``: manage Curve key files and allowlists."""

from __future__ import annotations

from pathlib import Path

import typer

from gridlib.protocol.errors import GridError
from gridlib.protocol.keys import (
    ROLES,
    allow_key,
    config_dir,
    load_keypair,
    load_public_key,
    parse_public_key,
    revoke_key,
    user_keypair,
    write_keypair,
)

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Manage Curve key files.", no_args_is_help=True)


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
