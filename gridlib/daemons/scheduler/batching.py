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

from gridlib.protocol.codec import Message, new_message

from .state import NODE, Send

__all__ = ["batch_assignments", "MAX_JOBS", "MAX_BYTES"]

MAX_JOBS = 64
MAX_BYTES = 1 << 20


def _size(msg: Message) -> int:
    return sum(memoryview(f).nbytes for f in msg.frames)


def batch_assignments(sends: list[Send]) -> list[Send]:
    """``sends`` with each run of JOB_ASSIGNs to one node merged (at the run's first place)."""
    out: list[list[Send]] = []  # each entry one send, or a run of JOB_ASSIGNs to one node
    open_run: dict[tuple[bytes, ...], tuple[list[Send], int]] = {}  # route -> (its run, bytes)
    for send in sends:
        if send.to != NODE or send.msg.type != "JOB_ASSIGN":
            if send.to == NODE:
                open_run.pop(send.route, None)  # another message to that node ends its run
            out.append([send])
            continue
        size = _size(send.msg)
        run, total = open_run.get(send.route, (None, 0))
        if run is not None and len(run) < MAX_JOBS and total + size <= MAX_BYTES:
            run.append(send)
            open_run[send.route] = (run, total + size)
            continue
        run = [send]
        open_run[send.route] = (run, size)
        out.append(run)
    return [group[0] if len(group) == 1 else _merged(group) for group in out]


def _merged(group: list[Send]) -> Send:
    """One JOBS_ASSIGN for a run; the JOB_ASSIGNs are the core's own (no check needed)."""
    jobs, frames, labels = [], [], []
    for send in group:
        fields = send.msg.fields
        jobs.append([fields["cluster_id"], fields["job_id"], fields["attempt"], fields.get("timeout"),
                     len(send.msg.frames), fields.get("label")])
        frames.extend(send.msg.frames)
        labels.extend(send.msg.labels)
    return Send(NODE, group[0].route, new_message("JOBS_ASSIGN", {"jobs": jobs}, frames, labels))
