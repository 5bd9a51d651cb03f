"""Many jobs to a node in one message: ``JOB_ASSIGN``s become ``JOBS_ASSIGN`` (docs/architecture.md §3).

The core decides job by job; the shell hands its sends here before it
encodes them.  Consecutive ``JOB_ASSIGN``s to the same node -- consecutive
among that node's own messages, so nothing sent to that node changes order --
travel as one ``JOBS_ASSIGN``: one header, one CURVE box, one wake-up of the
node instead of one per job.  A batch is at most ``MAX_JOBS`` jobs and
``MAX_BYTES`` of payload (each job was already checked against the node's
message limit, and the batch stays under the smallest limit a node may set).
A lone ``JOB_ASSIGN`` goes as it is.  Pure: no I/O.
"""

from __future__ import annotations

from gridlib.protocol.bodies import JobAssign
from gridlib.protocol.codec import Message, new_message

from .state import NODE, Send

__all__ = ["batch_assignments", "MAX_JOBS", "MAX_BYTES"]

MAX_JOBS = 64
MAX_BYTES = 1 << 20


def _size(msg: Message) -> int:
    return sum(memoryview(f).nbytes for f in msg.frames)


def batch_assignments(sends: list[Send]) -> list[Send]:
    """``sends`` with each run of JOB_ASSIGNs to one node merged (at the run's first place)."""
    out: list[Send | list[Send]] = []
    open_run: dict[tuple[bytes, ...], tuple[int, int]] = {}  # route -> (index in out, bytes)
    for send in sends:
        if send.to != NODE:
            out.append(send)
            continue
        if send.msg.type != "JOB_ASSIGN":
            open_run.pop(send.route, None)  # a run ends where another message to that node goes
            out.append(send)
            continue
        size = _size(send.msg)
        run = open_run.get(send.route)
        if run is not None:
            index, total = run
            group = out[index]
            assert isinstance(group, list)
            if len(group) < MAX_JOBS and total + size <= MAX_BYTES:
                group.append(send)
                open_run[send.route] = (index, total + size)
                continue
        open_run[send.route] = (len(out), size)
        out.append([send])
    return [item if isinstance(item, Send) else _merged(item) for item in out]


def _merged(group: list[Send]) -> Send:
    if len(group) == 1:
        return group[0]
    jobs, frames, labels = [], [], []
    for send in group:
        assign = send.msg.as_(JobAssign)
        jobs.append([assign.cluster_id, assign.job_id, assign.attempt, assign.timeout,
                     len(send.msg.frames)])
        frames.extend(send.msg.frames)
        labels.extend(send.msg.labels)
    return Send(NODE, group[0].route, new_message("JOBS_ASSIGN", {"jobs": jobs}, frames, labels))
