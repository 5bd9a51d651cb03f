"""``python -m gridlib.daemons.node``: the same as ``gridlib node``."""

from gridlib.daemons.hangup import defer_hangups

defer_hangups()  # first: a SIGHUP while it starts is kept, not fatal

from gridlib.daemons.cli import node_main  # noqa: E402

if __name__ == "__main__":
    node_main()
