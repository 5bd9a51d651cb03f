"""The node daemon: an I/O-free core (core.py, jobs.py) behind a shell (shell.py); docs/architecture.md §5.1."""
