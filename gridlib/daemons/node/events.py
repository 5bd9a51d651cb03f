"""What goes into the node's core and what comes out of it (docs/architecture.md §5).

The node is an I/O-free core (:mod:`.core`) behind a thin shell
(:mod:`.shell`).  The shell turns everything that happens -- a message on a
scheduler link, a beacon, a worker's message or exit, a timer, a signal --
into one of the *events* below and hands it to ``NodeCore.handle``; the core
answers with *effects* -- send this message, open that link, start or kill
a worker, write the spool, set a timer -- that the shell carries out.  Some
effects report back with an event (a cluster directory that could not be
made, a file written), which the shell feeds to the core in the same turn.

Everything here is plain data: the core can be driven by a test with a
fake clock and no sockets, no processes and no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridlib.protocol.beacon import Beacon
from gridlib.protocol.codec import Message

__all__ = [
    "Event", "Effect",
    # events
    "LinkMessage", "LinkOpened", "LinkFailed", "BeaconHeard", "WorkerReady", "WorkerSetupFailed",
    "WorkerResult", "WorkerReport", "WorkerExited", "TimerFired", "Tick", "Interrupt",
    "Terminate", "Reload", "SpoolLoaded", "SpoolFailed", "ClusterPrepared", "ClusterPrepareFailed",
    "FileWritten", "AheadRevoked",
    # effects
    "Send", "SendHeartbeat", "OpenLink", "CloseLink", "PrepareCluster", "RemoveClusterDir",
    "WriteClusterFile", "SpawnWorker", "WorkerSend", "KillWorker", "RevokeAhead", "SpoolHold", "SpoolPut",
    "SpoolWriteHeld", "SpoolAck", "SpoolDropCluster", "ResendSpooled", "SetTimer", "CancelTimer",
    "StopNode",
]

TimerKey = tuple[Any, ...]


# -- events: what happened --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LinkMessage:
    """A decoded message from the scheduler of link ``sid``."""

    sid: str
    msg: Message


@dataclass(frozen=True, slots=True)
class LinkOpened:
    """The shell dialed link ``sid``; ``ip_addr`` is this host's address toward it."""

    sid: str
    ip_addr: str


@dataclass(frozen=True, slots=True)
class LinkFailed:
    """Link ``sid`` cannot work: nothing listens at its endpoint, or its CURVE handshake failed
    (not the scheduler the beacon named).  Reported for links dialed after a beacon only."""

    sid: str
    reason: str


@dataclass(frozen=True, slots=True)
class BeaconHeard:
    """A valid beacon naming a key this node trusts."""

    beacon: Beacon


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """Worker ``wid`` ran the cluster's setup and waits for jobs."""

    wid: int


@dataclass(frozen=True, slots=True)
class WorkerSetupFailed:
    wid: int
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """Worker ``wid`` finished its job: result fields (``labels`` included) and frames."""

    wid: int
    fields: dict[str, Any]
    frames: list[Any]


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A running job sent a provisional result (``kind="provisional"``) or a file (``"file"``)."""

    wid: int
    kind: str
    fields: dict[str, Any]
    frames: list[Any]


@dataclass(frozen=True, slots=True)
class AheadRevoked:
    """The answer to ``RevokeAhead``: worker ``wid`` had claimed (started) every job up to
    sequence number ``claimed``; the ones after it, up to ``upto``, never start."""

    wid: int
    claimed: int
    upto: int
    why: tuple[str, ...]
    stuck: bool = False  # the worker did not let go of its claims lock (dead or frozen in a claim)


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """Worker ``wid``'s process is gone (or could not be started)."""

    wid: int
    exitcode: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TimerFired:
    key: TimerKey


@dataclass(frozen=True, slots=True)
class Tick:
    """The periodic check (twice a second): liveness, heartbeats, service hours, expiries.

    ``wall`` is the local wall-clock time (for service hours), as a datetime.
    """

    wall: Any = None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """SIGINT: drain, then stop; a second one stops at once."""


@dataclass(frozen=True, slots=True)
class Terminate:
    """SIGTERM, or the client that owns a private node is gone: stop now."""

    reason: str = "terminated"


@dataclass(frozen=True, slots=True)
class Reload:
    """SIGHUP: the keys this node now trusts."""

    trusted: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class SpoolLoaded:
    """Results found in the spool at start: (job id, cluster id, attempt) each."""

    entries: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class SpoolFailed:
    """Writing the spool failed (a full disk): results are at risk if the node dies."""

    error: str


@dataclass(frozen=True, slots=True)
class ClusterPrepared:
    """The cluster's directory and files are in place."""

    cluster_id: str
    directory: str


@dataclass(frozen=True, slots=True)
class ClusterPrepareFailed:
    cluster_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileWritten:
    """The answer to a ``WriteClusterFile``: ``code`` 0 when written."""

    sid: str
    request: Message
    size: int = 0
    code: int = 0
    reason: str = ""


Event = (LinkMessage | LinkOpened | LinkFailed | BeaconHeard | WorkerReady | WorkerSetupFailed | WorkerResult
         | WorkerReport | WorkerExited | TimerFired | Tick | Interrupt | Terminate | Reload
         | SpoolLoaded | SpoolFailed | ClusterPrepared | ClusterPrepareFailed | FileWritten
         | AheadRevoked)


# -- effects: what to do --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    sid: str
    msg: Message


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """A HEARTBEAT on link ``sid``, with the host's free resources (the shell measures them)."""

    sid: str


@dataclass(frozen=True, slots=True)
class OpenLink:
    """Dial a scheduler (answered with ``LinkOpened``); ``watch``: report ``LinkFailed`` if its
    connection is refused or its handshake fails (a beacon may name a dead endpoint)."""

    sid: str
    endpoint: str
    key: bytes
    watch: bool = False


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close link ``sid``'s socket, letting what was sent get out for ``linger`` ms."""

    sid: str
    linger: int = 100


@dataclass(frozen=True, slots=True)
class PrepareCluster:
    """Make the cluster's directory (``dest_path`` under the node's prefix) and write its
    files; answered with ``ClusterPrepared`` or ``ClusterPrepareFailed``."""

    cluster_id: str
    dest_path: str
    files: list[tuple[str, int, Any]]  # (name, mode, data)


@dataclass(frozen=True, slots=True)
class RemoveClusterDir:
    directory: str


@dataclass(frozen=True, slots=True)
class WriteClusterFile:
    """A ``FILE_PUT``: write the file; answered with ``FileWritten``."""

    sid: str
    request: Message
    directory: str
    name: str
    mode: int
    data: Any


@dataclass(frozen=True, slots=True)
class SpawnWorker:
    """Start worker ``wid`` in ``directory`` and send it the setup record."""

    wid: int
    cluster_id: str
    directory: str
    setup: dict[str, Any]
    blob: bytes


@dataclass(frozen=True, slots=True)
class WorkerSend:
    wid: int
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    frames: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KillWorker:
    """SIGKILL the worker's process group (it reports ``WorkerExited``)."""

    wid: int


@dataclass(frozen=True, slots=True)
class RevokeAhead:
    """Take back the jobs handed to worker ``wid`` (sequence numbers up to ``upto``) that it has
    not claimed, but ``keep`` (the job it runs, which it may not have claimed yet); the shell
    answers with ``AheadRevoked`` (``why`` comes back with it)."""

    wid: int
    upto: int
    keep: int
    why: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpoolHold:
    """Keep a result sent over a live link in memory until acknowledged or written."""

    cluster_id: str
    job_id: str
    fields: dict[str, Any]
    frames: list[Any]
    labels: list[str]


@dataclass(frozen=True, slots=True)
class SpoolPut:
    """Write a result to the spool now."""

    cluster_id: str
    job_id: str
    fields: dict[str, Any]
    frames: list[Any]
    labels: list[str]


@dataclass(frozen=True, slots=True)
class SpoolWriteHeld:
    """Write the held results held since ``before`` (all of them when None)."""

    before: float | None = None


@dataclass(frozen=True, slots=True)
class SpoolAck:
    job_ids: list[str]


@dataclass(frozen=True, slots=True)
class SpoolDropCluster:
    cluster_id: str


@dataclass(frozen=True, slots=True)
class ResendSpooled:
    """Send link ``sid`` the spooled results of ``job_ids`` again (read from the spool)."""

    sid: str
    job_ids: list[str]


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire ``TimerFired(key)`` at monotonic time ``at`` (replacing a timer of that key)."""

    key: TimerKey
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: TimerKey


@dataclass(frozen=True, slots=True)
class StopNode:
    """Close the spool, remove a private node's files and end the loop."""

    remove_prefix: bool = False


Effect = (Send | SendHeartbeat | OpenLink | CloseLink | PrepareCluster | RemoveClusterDir
          | WriteClusterFile | SpawnWorker | WorkerSend | KillWorker | RevokeAhead | SpoolHold | SpoolPut
          | SpoolWriteHeld | SpoolAck | SpoolDropCluster | ResendSpooled | SetTimer | CancelTimer
          | StopNode)
