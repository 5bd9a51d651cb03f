"""Many jobs or results in one message (docs/architecture.md §3).

The core decides job by job; the shell hands its sends here before it
encodes them.  Two kinds of run travel as one message:

- consecutive ``JOB_ASSIGN``\\ s to the same node become one ``JOBS_ASSIGN``:
  one header, one CURVE box, one wake-up of the node instead of one per job
  (at most ``MAX_JOBS`` jobs and ``MAX_BYTES`` of payload; each job was
  already checked against the node's message limit, and the batch stays
  under the smallest limit a node may set);
- consecutive ``JOB_RESULT``\\ s to the same client over a socket (a
  ``SharedJobCluster``) become one ``JOBS_RESULT``
  (:mod:`gridlib.protocol.result_batches`, its limits).

"Consecutive" is among that peer's own messages, so nothing sent to a peer
changes order.  A run of one goes as it is.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from gridlib.protocol.codec import new_message
from gridlib.protocol.result_batches import MAX_BYTES as RESULT_BYTES
from gridlib.protocol.result_batches import MAX_RESULTS, jobs_result, payload_size

from .records import Route
from .state import CLIENT, NODE, Send

__all__ = ["batch_sends", "MAX_JOBS", "MAX_BYTES"]

MAX_JOBS = 64
MAX_BYTES = 1 << 20


def batch_sends(sends: list[Send], reads_batches: Callable[[str, Route], bool]) -> list[Send]:
    """``sends`` with each run of JOB_ASSIGNs to one node, and of JOB_RESULTs to one client,
    merged at the run's first place -- for the peers where ``reads_batches(side, route)``
    holds (a peer says so when it registers; this process's own client gets no batch)."""
    out: list[list[Send]] = []  # each entry one send, or a run to one peer
    open_run: dict[tuple[str, Route], tuple[list[Send], int]] = {}  # (side, route) -> (run, bytes)
    for send in sends:
        peer = (send.to, send.route)
        if send.to == NODE and send.msg.type == "JOB_ASSIGN" and reads_batches(NODE, send.route):
            limit_jobs, limit_bytes = MAX_JOBS, MAX_BYTES
        elif send.to == CLIENT and send.msg.type == "JOB_RESULT" and reads_batches(CLIENT, send.route):
            limit_jobs, limit_bytes = MAX_RESULTS, RESULT_BYTES
        else:
            open_run.pop(peer, None)  # another message to that peer ends its run
            out.append([send])
            continue
        size = payload_size(send.msg)
        run, total = open_run.get(peer, (None, 0))
        if run is not None and len(run) < limit_jobs and total + size <= limit_bytes:
            run.append(send)
            open_run[peer] = (run, total + size)
            continue
        run = [send]
        open_run[peer] = (run, size)
        out.append(run)
    return [group[0] if len(group) == 1 else _merged(group) for group in out]


def _merged(group: list[Send]) -> Send:
    first = group[0]
    if first.to == CLIENT:
        return Send(CLIENT, first.route, jobs_result([send.msg for send in group]))
    jobs, frames, labels = [], [], []
    for send in group:  # the JOB_ASSIGNs are the core's own (no check needed)
        fields = send.msg.fields
        jobs.append([fields["cluster_id"], fields["job_id"], fields["attempt"], fields.get("timeout"),
                     len(send.msg.frames), fields.get("label")])
        frames.extend(send.msg.frames)
        labels.extend(send.msg.labels)
    return Send(NODE, first.route, new_message("JOBS_ASSIGN", {"jobs": jobs}, frames, labels))
