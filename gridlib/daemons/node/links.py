"""A node's link to one scheduler, as its core keeps it (docs/architecture.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gridlib.protocol.codec import DEFAULT_MAX_MSG_SIZE
from gridlib.protocol.liveness import Backoff

__all__ = ["Link"]


@dataclass
class Link:
    """One scheduler this node serves (or has dialed)."""

    sid: str
    epoch: int
    endpoint: str
    key: bytes
    last_heard: float
    interval: float = 2.0
    lost_after: int = 5
    welcomed: bool = False
    dial_out: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    next_ready: float = 0.0
    last_beat: float = 0.0
    ip_addr: str = ""  # this host's address toward the scheduler
    batches: bool = False  # the scheduler reads JOBS_RESULT (its WELCOME said so)
    lookahead: bool = False  # the scheduler grants jobs ahead (LOOKAHEAD; its WELCOME said so)
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE  # the scheduler's limit for what we send
    opened: float = 0.0
    persistence: int = 0  # how many beacons of it were heard before it was dialed
    session: str = ""  # names one registration: READY retries repeat it, so the scheduler
    # answers a retry again instead of taking it for a node that registers anew
