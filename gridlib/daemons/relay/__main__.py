"""``python -m gridlib.daemons.relay``: the same as ``gridlib relay``."""

from gridlib.daemons.hangup import defer_hangups

defer_hangups()  # first: a SIGHUP while it starts is kept, not fatal

from gridlib.daemons.cli import relay_main  # noqa: E402

if __name__ == "__main__":
    relay_main()
