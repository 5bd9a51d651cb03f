"""Several results in one message: ``JOB_RESULT``s become ``JOBS_RESULT`` (docs/architecture.md §3).

A node sends the results its workers return within one loop turn to a
scheduler as one ``JOBS_RESULT`` -- one header, one CURVE box, one wake-up
of the scheduler instead of one per job -- and the scheduler handles each
entry as if it had come alone.  Results are merged in the order they were
made (nothing else sent to that scheduler is overtaken: the sender flushes
its batch before any other message), a batch holds at most ``MAX_RESULTS``
results and ``MAX_BYTES`` of frames, and a result bigger than that goes
alone as a ``JOB_RESULT``.  Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from .codec import Message, new_message
from .errors import ProtocolError

__all__ = ["merge_results", "jobs_result", "split_results", "payload_size", "MAX_RESULTS",
           "MAX_BYTES"]

MAX_RESULTS = 64
MAX_BYTES = 1 << 20


def payload_size(msg: Message) -> int:
    """Bytes of a message's frames (what the batch limits count)."""
    return sum(memoryview(f).nbytes for f in msg.frames)


def merge_results(results: list[Message]) -> list[Message]:
    """``results`` (JOB_RESULTs, in order) as few messages as the limits allow, still in order."""
    out: list[list[Message]] = []
    total = 0
    for msg in results:
        size = payload_size(msg)
        if out and len(out[-1]) < MAX_RESULTS and total + size <= MAX_BYTES:
            out[-1].append(msg)
            total += size
        else:
            out.append([msg])
            total = size
    return [group[0] if len(group) == 1 else jobs_result(group) for group in out]


def jobs_result(group: list[Message]) -> Message:
    """One JOBS_RESULT holding ``group`` (JOB_RESULTs, in order; the caller kept to the limits)."""
    entries, frames, labels = [], [], []
    for msg in group:
        entries.append([msg.fields, len(msg.frames)])
        frames.extend(msg.frames)
        labels.extend(msg.labels)
    return new_message("JOBS_RESULT", {"results": entries}, frames, labels)


def split_results(msg: Message) -> list[Message]:
    """A JOBS_RESULT's entries as the JOB_RESULTs they were (each checked when it is read).

    Raises ProtocolError when an entry is not ``[fields, frame count]`` or the
    counts do not add up to the frames the message carries.
    """
    entries: Any = msg.fields.get("results")
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], dict)
            and isinstance(e[1], int) and not isinstance(e[1], bool) and e[1] >= 0 for e in entries):
        raise ProtocolError("JOBS_RESULT: each result is [fields, number of frames]")
    if sum(e[1] for e in entries) != len(msg.frames):
        raise ProtocolError("JOBS_RESULT: the results' frames do not add up to the message's")
    out, at = [], 0
    for fields, count in entries:
        out.append(Message("JOB_RESULT", fields, msg.labels[at:at + count], msg.frames[at:at + count],
                           msg.mid))
        at += count
    return out
