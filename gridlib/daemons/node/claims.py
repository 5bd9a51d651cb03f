"""Which jobs a worker has started: three numbers it shares with its node, under a lock.

A worker of a cluster with short jobs holds jobs ahead, written to its pipe
behind the one it runs (``jobs.py``).  Being in the pipe is not being
started: the worker *claims* a job, by its sequence number, just before it
runs it, and skips a job its node has taken back.  The node takes jobs back
(``revoke``) under the same lock and reads, in the same step, the last job the
worker claimed -- so it knows exactly which of the jobs it had handed over
started, and can give the others to another worker or node, or cancel them,
without running any job twice.

The numbers: the last sequence number claimed; every job numbered up to
``revoked`` is taken back except ``kept`` (the job the worker runs, which it
may not have claimed yet when the node takes the ones behind it back).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Claims", "LOCK_TIMEOUT"]

LOCK_TIMEOUT = 0.1  # seconds the node waits for a worker's lock (held for microseconds)
_CLAIMED, _REVOKED, _KEPT = 0, 1, 2


class Claims:
    """Made by the node for each worker (``ctx``: the multiprocessing context that starts it)."""

    def __init__(self, ctx: Any) -> None:
        self.lock = ctx.Lock()
        self.seqs = ctx.RawArray("q", 3)

    def claim(self, seq: int) -> bool:
        """(worker) Start job ``seq``, unless the node took it back."""
        with self.lock:
            seqs = self.seqs
            if seq <= seqs[_REVOKED] and seq != seqs[_KEPT]:
                return False
            seqs[_CLAIMED] = seq
            return True

    def revoke(self, upto: int, keep: int) -> tuple[int, bool]:
        """(node) Take back every job up to ``upto`` not claimed yet but ``keep``; returns the
        last claimed, and whether the lock was had (else the worker is dead or frozen inside
        a claim, and what it claimed is not known for sure)."""
        had = self.lock.acquire(timeout=LOCK_TIMEOUT)
        try:
            seqs = self.seqs
            seqs[_REVOKED] = max(seqs[_REVOKED], upto)
            seqs[_KEPT] = keep
            return seqs[_CLAIMED], had
        finally:
            if had:
                self.lock.release()
