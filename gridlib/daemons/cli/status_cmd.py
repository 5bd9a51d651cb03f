"""``gridlib status``: the nodes and your clusters at a shared scheduler."""

from __future__ import annotations

from pathlib import Path

import typer

from gridlib.protocol.errors import GridError

from .common import read_secret, scheduler_key_option

__all__ = ["status"]


def status(
    scheduler: str = typer.Option("127.0.0.1:51350", envvar="GRIDLIB_SCHEDULER",
                                  help="The shared scheduler to ask (HOST[:PORT], port 51350)."),
    json_out: bool = typer.Option(False, "--json", help="Print the scheduler's answer as JSON."),
    keys: Path | None = typer.Option(None, help="Key directory to connect with instead of your "
                                                "own key (it must be on the scheduler's "
                                                "clients allowlist)."),
    secret_file: Path | None = typer.Option(None, help="File holding a shared secret (or set "
                                                       "GRIDLIB_SECRET)."),
    scheduler_key: str = scheduler_key_option(),
    timeout: float = typer.Option(5.0, min=0.1, help="Seconds to wait for the scheduler's "
                                                     "answer."),
) -> None:
    """Show a shared scheduler's nodes, your clusters and other users' totals.

    Exit status: 0 with an answer, 2 if the scheduler does not answer or an option is wrong.
    """
    import json

    from gridlib.protocol.keys import parse_public_key, resolve_identity
    from gridlib.status_tool import fetch_status, render_status

    try:
        identity = resolve_identity(read_secret(secret_file), keys)
        key = parse_public_key(scheduler_key) if scheduler_key else None
        answer = fetch_status(scheduler, identity, key, timeout)
    except GridError as exc:
        typer.echo(f"gridlib status: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(answer, indent=2, default=str))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a pipe or a file: 80 columns would wrap the node table
        console.width = max(console.width, 160)
    render_status(answer, console)
