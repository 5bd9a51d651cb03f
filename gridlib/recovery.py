"""``recover_jobs``: every job of a client that died, from its journal (docs/reliability.md §5).

For each cluster the journal holds open, a new embedded scheduler opens the
same cluster (same id, same computation) with ``recover`` set.  Nodes that
still run its jobs, or hold their results in their spools, hand them over
(they accept only the same Curve key); results already journaled are
restored locally; jobs nobody reports within a grace period run again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gridlib.cluster import JobCluster
from gridlib.daemons.runtime.payload import unpack_args, unpack_value
from gridlib.job import Job
from gridlib.journal import ClusterEntry, Journal
from gridlib.protocol.errors import GridError

__all__ = ["recover_jobs"]


def recover_jobs(recover_file: str | os.PathLike[str], timeout: float | None = None,
                 terminate_pending: bool = False, secret: str | None = None,
                 keys: str | os.PathLike[str] | None = None,
                 pulse_interval: float = 2.0) -> list[Job]:
    """Return the jobs of the clusters a crashed client left open in ``recover_file``.

    Waits for the jobs still running (at most ``timeout`` seconds); with
    ``terminate_pending`` cancels them instead.  A cluster whose jobs all
    ended is closed in the journal; one that timed out stays open, so that a
    later call picks up where this one stopped.  Use the client's ``secret``
    or ``keys``: nodes hand a cluster only to the key that set it up.
    """
    path = Path(recover_file)
    if not path.is_file():
        raise GridError(f"no recovery journal at {path}")
    journal = Journal(path)
    jobs: list[Job] = []
    try:
        for entry in journal.open_clusters():
            jobs += _recover_cluster(journal, entry, timeout, terminate_pending, secret, keys,
                                     pulse_interval)
    finally:
        journal.close()
    return jobs


def _recover_cluster(journal: Journal, entry: ClusterEntry, timeout: float | None,
                     terminate_pending: bool, secret: str | None, keys: Any,
                     pulse_interval: float) -> list[Job]:
    cluster = JobCluster.__new__(JobCluster)
    cluster._start((entry.kind, entry.computation, entry.files), entry.options, entry.nodes,
                   None, None, None, secret, keys, pulse_interval, None, entry.node_port, 0,
                   journal, cluster_id=entry.cluster_id, scheduler_port=entry.scheduler_port)
    jobs = []
    for stored in journal.jobs_of(entry.cluster_id):
        args, kwargs = unpack_args(stored.frames)
        job = Job(unpack_value([stored.meta]), stored.uid, args, kwargs, stored.submit_time)
        if stored.result is not None:
            cluster._restore(job, stored.result)
        else:
            cluster._send_job(job, {**stored.spec, "recover": True}, stored.frames)
        jobs.append(job)
    if terminate_pending:
        for job in jobs:
            cluster.cancel(job)
    if cluster.wait(timeout):
        cluster.close()
    else:
        cluster._shutdown_io()  # leave the cluster open in the journal for a later call
    return jobs
