"""A job's outcome from its JOB_RESULT message, on the client (docs/architecture.md §2 step 16)."""

from __future__ import annotations

import time

from gridlib.daemons.runtime.payload import unpack_value
from gridlib.job import WIRE_STATUS, Job, JobStatus
from gridlib.protocol.bodies import JobResult
from gridlib.protocol.codec import Message

__all__ = ["fill_result"]


def fill_result(job: Job, msg: Message, kind: str, no_nodes: str = "") -> None:
    """Set ``job``'s outcome from its JOB_RESULT: status, times, node, exception, output
    (``str`` for a function, ``bytes`` for a program: ``kind``) and the unpickled result.
    ``no_nodes``: why no node could run the cluster's jobs, added to a ``NoNodesError``."""
    r = msg.as_(JobResult)
    job.status = WIRE_STATUS.get(r.status, JobStatus.Terminated)
    job.start_time = float(r.start_time or job.start_time or 0.0) or None
    job.end_time = float(r.end_time or time.time())
    job.node, job.ip_addr = r.node or job.node, r.ip_addr or job.ip_addr
    job.attempts = r.attempts or 0
    exc = r.exception
    if exc is not None:
        job.exception_type = str(exc.get("type"))
        job.exception_message = str(exc.get("message") or "")
        if job.exception_type == "NoNodesError" and no_nodes:
            job.exception_message += ". " + no_nodes
        job.exception = str(exc.get("traceback") or f"{job.exception_type}: {job.exception_message}")
        pickled = exc.get("pickled")
        job.exception_pickle = pickled if isinstance(pickled, bytes) else None
    elif r.reason:
        job.exception = job.exception_message = r.reason
    result_frames = [fr for fr, lab in zip(msg.frames, msg.labels, strict=True) if lab == "result"]
    streams = {lab: bytes(memoryview(fr)) for fr, lab in zip(msg.frames, msg.labels, strict=True)
               if lab in ("stdout", "stderr")}
    out, err = streams.get("stdout", b""), streams.get("stderr", b"")
    if kind == "function":
        job.stdout, job.stderr = out.decode(errors="replace"), err.decode(errors="replace")
    else:
        job.stdout, job.stderr = out, err
    if job.status == JobStatus.Finished and result_frames:
        try:
            job.result = unpack_value(result_frames)
        except Exception as error:
            job.status = JobStatus.Terminated
            job.exception = f"SerializationError: cannot load the result: {error}"
