"""Node <-> worker pipe records: frames intact, several records per read, descriptors in order."""

from __future__ import annotations

import socket
import threading

import pytest

from gridlib.daemons.node import pipes


def _pair() -> tuple[pipes.Channel, pipes.Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return pipes.Channel(a), pipes.Channel(b)


def test_a_message_and_its_frames_cross_the_pipe_in_one_record() -> None:
    a, b = _pair()
    big = bytes(range(256)) * 5000  # over SHARED_MIN: travels in a memfd
    sender = threading.Thread(target=lambda: (
        a.send("result", {"job_id": "j1", "n": 3}, [b"", big, memoryview(b"tail")]),
        a.send("ready")))
    sender.start()
    kind, fields, frames = b.recv()
    assert (kind, fields) == ("result", {"job_id": "j1", "n": 3})
    assert [bytes(f) for f in frames] == [b"", big, b"tail"]
    assert b.recv() == ("ready", {}, [])
    sender.join(10)
    assert b.read() == []  # nothing left over: each message was exactly one record


def test_one_read_hands_back_every_whole_record_waiting() -> None:
    a, b = _pair()
    a.send_many([("result", {"i": i}, [bytes([i]) * 10]) for i in range(50)])
    got: list[pipes.Record] = []
    while len(got) < 50:
        got += b.read()
    assert [(k, f["i"], bytes(fr[0])) for k, f, fr in got] == [("result", i, bytes([i]) * 10) for i in range(50)]


def test_records_larger_than_a_read_and_shared_ones_interleave_in_order() -> None:
    a, b = _pair()
    mid = b"m" * 200_000  # under SHARED_MIN, over one read: arrives in pieces
    huge = b"h" * (pipes.SHARED_MIN + 1)
    messages: list[tuple[str, dict[str, object] | None, list[object] | None]] = []
    for i in range(6):
        messages.append(("small", {"i": i}, [b"s"]))
        messages.append(("big", {"i": i}, [huge if i % 2 else mid]))
    sender = threading.Thread(target=a.send_many, args=(messages,))
    sender.start()
    got = [b.recv() for _ in range(12)]
    sender.join(10)
    assert [(k, f["i"]) for k, f, _ in got] == [(k, f["i"]) for k, f, _ in messages]  # type: ignore[index]
    for (_, _, frames), (_, _, sent) in zip(got, messages, strict=True):
        assert bytes(frames[0]) == bytes(sent[0])  # type: ignore[index]


def test_the_end_of_the_channel_is_eof_after_the_last_record() -> None:
    a, b = _pair()
    a.send("result", {"job_id": "j"})
    a.close()
    records: list[pipes.Record] = []
    with pytest.raises(EOFError):
        while True:
            records += b.read()
    assert [k for k, _, _ in records] == ["result"]


def _round(a: pipes.Channel, b: pipes.Channel, payload: bytes) -> pipes.Record:
    """``a`` sends one shared record, ``b`` takes it and answers (the answer carries back the
    files ``b`` is done with), ``a`` takes the answer; ``b``'s record is returned."""
    a.send("job", {}, [payload])
    record = b.recv()
    b.send("result")
    assert a.recv()[0] == "result"
    return record


def test_a_memory_file_is_filled_again_once_the_reader_dropped_its_frames() -> None:
    a, b = _pair()
    files: set[int] = set()
    for i in range(6):
        payload = bytes([i]) * (pipes.SHARED_MIN + i)
        record = _round(a, b, payload)
        assert bytes(record[2][0]) == payload
        del record  # the reader's last view: the file goes back with the reader's next record
        files |= {*a._lent.values(), *a._spares}
    assert len(files) == 2  # two files take turns (one is back only after the next was sent)
    assert b.read() == []  # the give-back record is never handed out


def test_frames_a_reader_still_holds_are_never_overwritten() -> None:
    a, b = _pair()
    held = [_round(a, b, bytes([i]) * (pipes.SHARED_MIN + i)) for i in range(pipes.LENT_MAX + 5)]
    for i, (_, _, frames) in enumerate(held):  # each as sent: later records went to other files
        assert bytes(frames[0]) == bytes([i]) * (pipes.SHARED_MIN + i)
    assert len(a._lent) == pipes.LENT_MAX  # past that many, files are not lent but closed
    del held, frames
    _round(a, b, b"x" * pipes.SHARED_MIN)
    assert len(a._spares) <= pipes.SPARES_MAX and len(a._lent) <= 1


def test_a_record_larger_than_the_spare_limit_is_not_kept() -> None:
    a, b = _pair()
    big = b"b" * (pipes.SPARE_MAX + 1)
    sender = threading.Thread(target=a.send, args=("job", {}, [big]))
    sender.start()
    assert bytes(b.recv()[2][0]) == big
    sender.join(10)
    assert a._lent == {} and a._spares == []


def test_closing_a_channel_closes_the_files_it_kept() -> None:
    import os

    a, b = _pair()
    record = _round(a, b, b"k" * pipes.SHARED_MIN)
    fds = list(a._lent.values())
    assert fds
    a.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    assert bytes(record[2][0]) == b"k" * pipes.SHARED_MIN  # the reader's mapping outlives it
