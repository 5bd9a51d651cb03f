"""The relay: bridges a subnet of nodes to schedulers they cannot reach (DESIGN §3)."""
