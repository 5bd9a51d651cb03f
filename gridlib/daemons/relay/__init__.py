"""The relay: bridges a subnet of nodes to schedulers they cannot reach (docs/architecture.md §4.2)."""
