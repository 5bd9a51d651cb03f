"""The ``gridlib`` command line (typer): daemons, tools and key management.

One module per command (``node_cmd``, ``scheduler_cmd``, ``relay_cmd``,
``keys_cmd``); this one assembles them.  Secrets never need to be on the
command line: ``--secret-file`` or the ``GRIDLIB_SECRET`` environment variable
carry a shared secret, ``--keys`` names a key directory.
"""

from __future__ import annotations

import sys

from gridlib.daemons.hangup import defer_hangups

if sys.argv[1:2] in (["node"], ["scheduler"], ["relay"]):
    defer_hangups()  # before the slow imports: a SIGHUP while a daemon starts is not fatal

import typer  # noqa: E402

from .keys_cmd import keys_app
from .node_cmd import node
from .relay_cmd import relay
from .run_cmd import run
from .scheduler_cmd import scheduler
from .ssh_cmd import ssh
from .status_cmd import status

__all__ = ["app", "main", "node_main", "relay_main", "node", "scheduler", "relay"]

# --install-completion / --show-completion: tab completion for bash, zsh, fish and PowerShell
app = typer.Typer(help="gridlib: a compute grid for Python on ZeroMQ.", no_args_is_help=True)
app.command()(node)
app.command()(scheduler)
app.command()(relay)
app.command()(run)
app.command()(status)
app.command()(ssh)
app.add_typer(keys_app, name="keys")


def _print_version(value: bool) -> None:
    if value:
        from gridlib import __version__

        typer.echo(f"gridlib {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print gridlib's version and exit."),
) -> None:
    """gridlib: a compute grid for Python on ZeroMQ."""


def main() -> None:
    app()


def relay_main() -> None:
    """Entry for ``python -m gridlib.daemons.relay``."""
    typer.run(relay)


def node_main() -> None:
    """Entry for ``python -m gridlib.daemons.node``."""
    typer.run(node)
