"""``python -m gridlib.daemons.node``: the same as ``gridlib node``."""

from gridlib.daemons.cli import node_main

if __name__ == "__main__":
    node_main()
