"""Node <-> worker pipe records: one record per message, frames intact."""

from __future__ import annotations

import multiprocessing
import threading

from gridlib.daemons.node import pipes


def test_a_message_and_its_frames_cross_the_pipe_in_one_record() -> None:
    a, b = multiprocessing.Pipe()
    big = bytes(range(256)) * 5000
    sender = threading.Thread(target=lambda: (
        pipes.send(a, "result", {"job_id": "j1", "n": 3}, [b"", big, memoryview(b"tail")]),
        pipes.send(a, "ready")))
    sender.start()  # a record larger than the pipe's buffer needs a reader at the same time
    kind, fields, frames = pipes.recv(b)
    assert (kind, fields) == ("result", {"job_id": "j1", "n": 3})
    assert [bytes(f) for f in frames] == [b"", big, b"tail"]
    assert pipes.recv(b) == ("ready", {}, [])
    sender.join(10)
    assert not b.poll()  # nothing left over: each message was exactly one record
