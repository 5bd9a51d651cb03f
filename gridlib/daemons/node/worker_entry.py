"""The worker process's entry point, kept import-light.

The node's main process references this function to start workers; the
real work (and the unpickler) is imported only in the worker (and the forkserver,
which preloads it), so the node's message loop never imports a deserializer.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .claims import Claims

__all__ = ["start_worker"]


def start_worker(conn: Connection, cluster_dir: str, node_name: str, ip_addr: str,
                 claims: Claims) -> None:
    from .worker import worker_main

    worker_main(conn, cluster_dir, node_name, ip_addr, claims)
