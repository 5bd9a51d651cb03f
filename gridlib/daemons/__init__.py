"""gridlib's daemons: the scheduler, the node, the relay and the ``gridlib`` CLI."""
