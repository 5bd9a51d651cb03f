"""``python -m gridlib.daemons.scheduler``: the same as ``gridlib scheduler``."""

import typer

from gridlib.daemons.cli import scheduler

if __name__ == "__main__":
    typer.run(scheduler)
