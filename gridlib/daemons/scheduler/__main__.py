"""``python -m gridlib.daemons.scheduler``: the same as ``gridlib scheduler``."""

from gridlib.daemons.hangup import defer_hangups

defer_hangups()  # first: a SIGHUP while it starts is kept, not fatal

import typer  # noqa: E402

from gridlib.daemons.cli import scheduler  # noqa: E402

if __name__ == "__main__":
    typer.run(scheduler)
