"""Claims (daemons/node/claims.py): a worker starts a job ahead only if its node has not taken
it back, and the node learns exactly which it started -- across real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

from gridlib.daemons.node.claims import LOCK_TIMEOUT, Claims

_MP = multiprocessing.get_context("forkserver")


def _claim_all(claims: Claims, seqs: list[int], out: Any) -> None:
    out.put([seq for seq in seqs if claims.claim(seq)])


def _hold_the_lock(claims: Claims, ready: Any) -> None:
    claims.lock.acquire()
    ready.set()
    time.sleep(60)


def test_a_job_taken_back_is_never_claimed_and_the_kept_one_still_is() -> None:
    claims = Claims(_MP)
    assert claims.claim(1) and claims.claim(2)
    claimed, had = claims.revoke(upto=6, keep=3)  # 3 is the job it runs; 4..6 wait behind it
    assert (claimed, had) == (2, True)
    out = _MP.Queue()
    worker = _MP.Process(target=_claim_all, args=(claims, [3, 4, 5, 6, 7], out))
    worker.start()
    assert out.get(timeout=30) == [3, 7]  # the kept one and one handed after the revoke
    worker.join(30)
    assert claims.revoke(upto=7, keep=0) == (7, True)


def test_a_worker_killed_holding_the_lock_does_not_hang_its_node() -> None:
    claims = Claims(_MP)
    ready = _MP.Event()
    holder = _MP.Process(target=_hold_the_lock, args=(claims, ready))
    holder.start()
    try:
        assert ready.wait(30)
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        start = time.monotonic()
        claimed, had = claims.revoke(upto=5, keep=0)
        assert not had and claimed == 0
        assert time.monotonic() - start < LOCK_TIMEOUT + 5  # bounded, not for ever
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join(30)
