"""Large arguments and results against a real node daemon (another directory, its own key):
frames over 256 KiB travel between the node and its workers in memory files that are filled
again once their reader has let go of them (daemons/node/pipes.py).  Nothing a job or the node
still holds may ever be overwritten, whatever the sizes and however long it is held."""

from __future__ import annotations

import hashlib
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import NodeProcess, far_node


class Blob:
    """Bytes that travel out of band and load as a view of what carried them: in a worker,
    a view of the memory file its node wrote the job's arguments into (no copy)."""

    def __init__(self, view):  # type: ignore[no-untyped-def]
        self.view = view

    def __reduce_ex__(self, protocol):  # type: ignore[no-untyped-def]
        return _blob_of, (pickle.PickleBuffer(self.view),)


def _blob_of(buffer):  # type: ignore[no-untyped-def]
    return Blob(memoryview(buffer))


HELD = []  # in each worker: every argument so far, as the views it arrived as


def hold_and_reverse(i, blob):  # type: ignore[no-untyped-def]
    """Keep this job's argument (a view of the node's memory file) for good; say which of the
    arguments kept so far no longer read as they did; return the argument reversed."""
    import hashlib as h
    HELD.append((i, blob, h.sha256(blob.view).hexdigest()))
    changed = [j for j, kept, digest in HELD if h.sha256(kept.view).hexdigest() != digest]
    return changed, bytes(blob.view[::-1])


def _payload(i: int) -> bytes:
    size = random.Random(i).randrange(256 * 1024, 2_600_000)  # over the pipes' memfd floor,
    return hashlib.shake_256(str(i).encode()).digest(size)    # some over the 2 MiB kept


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    with far_node(tmp_path, "--cpus", "2", "--name", "frames") as daemon:
        yield daemon


@pytest.mark.timeout(300)
def test_large_arguments_held_by_jobs_and_large_results_are_never_overwritten(node: NodeProcess) -> None:
    count = 60
    with gridlib.JobCluster(hold_and_reverse, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
        jobs = [cluster.submit(i, Blob(memoryview(_payload(i)))) for i in range(count)]
        for i, job in enumerate(jobs):
            outcome = job(timeout=120)
            assert job.status == JobStatus.Finished, (i, job.status, job.exception)
            changed, reversed_payload = outcome
            assert changed == [], f"job {i}: arguments held by earlier jobs changed: {changed}"
            assert reversed_payload == _payload(i)[::-1], f"job {i}: its result is not its own"
