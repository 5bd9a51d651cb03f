"""``python -m gridlib.daemons.relay``: the same as ``gridlib relay``."""

from gridlib.daemons.cli import relay_main

if __name__ == "__main__":
    relay_main()
