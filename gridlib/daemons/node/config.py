"""How a node runs: the ``gridlib node`` options, as one record (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE

from .service_hours import ServiceHours

__all__ = ["NodeConfig"]


@dataclass
class NodeConfig:
    """How a node runs (the ``gridlib node`` options)."""

    cpus: int = 0  # 0: all; negative: all but that many
    host: str = "0.0.0.0"
    port: int = 51352  # beacon port; 0: one the OS chooses, or with `scheduler` none (dial-out only)
    name: str = ""
    dest_path_prefix: str = ""
    scheduler: str = ""  # tcp://host:port to dial directly
    scheduler_key: bytes = b""
    max_file_size: int = 100 * 1024 * 1024
    max_output: int = 4 * 1024 * 1024  # bytes of a job's stdout (and stderr) sent back; the rest is cut
    zombie_interval: float = 3600.0
    parent_pid: int = 0  # exit when this process is gone (a client's private node)
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE  # larger messages drop the connection
    trusted: frozenset[bytes] = field(default_factory=frozenset)
    service_hours: ServiceHours | None = None  # None: always in service
    clock: Callable[[], dt.datetime] = dt.datetime.now  # local time, for service_hours
    serve: int = 0  # exit after this many clusters are done (0: never)
    init: tuple[str, str] | None = None  # the --init file: (path, source)
    #: called once the node runs, every socket bound, with its ports by name
    #: ({"beacon": PORT}, None for a node without one): how --port-file learns them
    on_listening: Callable[[dict[str, int | None]], None] | None = None

    def listens(self) -> bool:
        """Whether the node binds a beacon port: always, but for a node that only dials out
        (``--port 0`` with ``--scheduler``).  ``--port 0`` alone is a port the OS chooses."""
        return bool(self.port or not self.scheduler)

    def effective_cpus(self) -> int:
        total = os.cpu_count() or 1
        if self.cpus > 0:
            return min(self.cpus, 4096)
        return max(1, total + self.cpus)

    def prefix_path(self) -> Path:
        """The node's state directory: --dest-path-prefix, or one per beacon port."""
        return Path(self.dest_path_prefix or f"/tmp/gridlib-{os.getuid()}/node-{self.port}")
