"""``SharedJobCluster``: the JobCluster API against a ``gridlib scheduler`` daemon (docs/api.md §6).

Everything but the connection is JobCluster's: the client dials the shared
scheduler's client port with CURVE (it never has to be reachable itself, so
a client behind NAT works), submissions are sent again until the scheduler
acknowledges them (it journals them first), and the scheduler resends
results until the client acknowledges them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gridlib.client_io import ClientConnection
from gridlib.cluster import JobCluster
from gridlib.node_targets import dispy_wildcards, node_specs
from gridlib.protocol.addresses import split_host_port
from gridlib.protocol.codec import new_message
from gridlib.protocol.errors import AuthenticationFailed, ConnectionLost, GridError, KeyFileError
from gridlib.protocol.keys import parse_public_key
from gridlib.protocol.liveness import LivenessPolicy
from gridlib.protocol.sockets import DEFAULT_MAX_MSG_SIZE, tcp_endpoint
from gridlib.transports import SchedulerLink

__all__ = ["SharedJobCluster", "DEFAULT_SCHEDULER_PORT"]

DEFAULT_SCHEDULER_PORT = 51350


class SharedJobCluster(JobCluster):
    """A cluster whose jobs a shared scheduler runs on the nodes it manages.

    ``scheduler`` is ``"host[:port]"`` (client port, default 51350; default:
    the ``GRIDLIB_SCHEDULER`` environment variable, else this host);
    ``scheduler_key`` its public key (default: ``GRIDLIB_SCHEDULER_KEY``, a Z85
    key or a .key file, else your own key, as when you run the scheduler
    yourself or share a ``secret``); ``exclusive=True`` runs
    this cluster alone.  ``nodes=`` limits the cluster to those of the
    scheduler's nodes (and asks the scheduler to announce itself to them).
    Every other option is JobCluster's.
    """

    def __init__(self, computation: Any, scheduler: str | None = None, exclusive: bool = False,
                 scheduler_key: str | bytes | None = None, nodes: Any = None, **options: Any) -> None:
        if "scheduler_host" in options:  # dispy's name; a port given as scheduler_port there
            host, port = options.pop("scheduler_host"), options.pop("scheduler_port", None)
            scheduler = f"{host}:{port}" if port else str(host)
        # as RAY_ADDRESS does for Ray: the environment names the grid a program uses
        scheduler = scheduler or os.environ.get("GRIDLIB_SCHEDULER") or "127.0.0.1"
        if scheduler_key is None and os.environ.get("GRIDLIB_SCHEDULER_KEY"):
            try:
                scheduler_key = parse_public_key(os.environ["GRIDLIB_SCHEDULER_KEY"])
            except KeyFileError as exc:
                raise GridError(f"GRIDLIB_SCHEDULER_KEY: {exc}") from None
        try:
            host, port = split_host_port(str(scheduler), DEFAULT_SCHEDULER_PORT)
        except ValueError as exc:
            raise GridError(f"bad scheduler address {scheduler!r}: {exc}") from None
        self._scheduler_endpoint = tcp_endpoint(host, port)
        self._scheduler_key = scheduler_key.encode() if isinstance(scheduler_key, str) else scheduler_key
        self._exclusive = bool(exclusive)
        nodes = dispy_wildcards(nodes)
        self._only_listed = None if nodes is None else [
            split_host_port(spec, 0)[0] for spec in node_specs(nodes)]
        super().__init__(computation, nodes=nodes, **options)

    def _hello(self) -> None:
        try:
            welcome = self._conn.request(new_message("HELLO", {"name": f"pid-{os.getpid()}",
                                                               "batches": True}),
                                         timeout=10.0)
        except ConnectionLost:
            raise ConnectionLost(
                f"no answer from the scheduler at {self._scheduler_endpoint}: is it running, and "
                f"is this client's key ({self._conn.identity.keypair.public.decode()}) on its "
                f"allowlist (gridlib keys allow KEY --as client)?") from None
        limit = welcome.get("max_msg_size")
        self._scheduler_limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None

    def _scheduler_name(self) -> str | None:
        return self._scheduler_endpoint.removeprefix("tcp://")

    def _open(self, kind: str, blob: bytes, files: list[tuple[str, bytes, int]],
              options: dict[str, Any]) -> None:
        super()._open(kind, blob, files, {**options, "exclusive": self._exclusive})

    def _connect(self, identity: Any, targets: list[tuple[str, int]], host: str | None,
                 liveness: LivenessPolicy, scheduler_port: int, max_msg_size: int,
                 before_ack: Callable[[], None] | None) -> ClientConnection:
        transport = SchedulerLink(self._scheduler_endpoint,
                                  self._scheduler_key or identity.keypair.public,
                                  max_msg_size or DEFAULT_MAX_MSG_SIZE)
        conn = ClientConnection(identity, self._on_message, transport, liveness=liveness,
                                before_ack=before_ack, resend_submits=True)
        public = identity.keypair.public.decode()

        def refused(reason: str) -> None:  # (I/O thread) the handshake failed: say why now
            fix = (f"add this client's key ({public}) on the scheduler's host with `gridlib keys "
                   f"allow KEY --as client` and send the scheduler SIGHUP" if "refused" in reason
                   else "check scheduler_key= (or GRIDLIB_SCHEDULER_KEY): it must be the "
                        "scheduler's public key (`gridlib keys show` on its host)")
            conn.fail_requests(AuthenticationFailed(
                f"{reason} at {self._scheduler_endpoint.removeprefix('tcp://')}: {fix}"))
        transport.on_failure = refused
        return conn

    def _reach_nodes(self, nodes: Any, targets: list[tuple[str, int]], identity: Any,
                     secret: str | None, keys: Any, local_cpus: int, node_port: int) -> None:
        if nodes is not None and targets:
            self.discover_nodes(nodes)

    def discover_nodes(self, nodes: Any) -> None:
        """Ask the shared scheduler to announce itself to more nodes."""
        specs = node_specs(nodes)
        if self._only_listed is not None:
            self._only_listed += [split_host_port(spec, 0)[0] for spec in specs]
        self._conn.request(new_message("DISCOVER", {"nodes": specs, "port": self._node_port}))
