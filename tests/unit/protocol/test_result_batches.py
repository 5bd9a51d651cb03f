"""A node's results travel together (JOBS_RESULT) and come apart as the JOB_RESULTs they were."""

from __future__ import annotations

import pytest

from gridlib.protocol.bodies import JobResult
from gridlib.protocol.codec import decode, encode, new_message
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.result_batches import MAX_BYTES, MAX_RESULTS, merge_results, split_results


def result(job_id: str, frames: list[bytes] | None = None, **fields: object) -> object:
    frames = [job_id.encode()] if frames is None else frames
    return new_message("JOB_RESULT", {"job_id": job_id, "attempt": 1, "status": "finished", **fields},
                       frames, ["result"] * len(frames))


def test_results_merge_into_one_message_and_split_back_in_order_with_their_frames() -> None:
    msgs = [result("j1", [b"a", b"bb"], start_time=1.0), result("j2", []),
            result("j3", status="terminated", exception={"type": "ValueError", "message": "x"})]
    (merged,) = merge_results(msgs)
    wire = decode(encode(merged))  # as the scheduler reads it
    assert wire.type == "JOBS_RESULT"
    back = split_results(wire)
    assert [m.type for m in back] == ["JOB_RESULT"] * 3
    assert [m.as_(JobResult).job_id for m in back] == ["j1", "j2", "j3"]
    assert [[bytes(f) for f in m.frames] for m in back] == [[b"a", b"bb"], [], [b"j3"]]
    assert back[0].labels == ["result", "result"] and back[1].labels == []
    assert back[0].as_(JobResult).start_time == 1.0
    assert back[2].as_(JobResult).exception == {"type": "ValueError", "message": "x"}


def test_a_lone_result_goes_as_it_is() -> None:
    one = result("j1")
    assert merge_results([one]) == [one]
    assert merge_results([]) == []


def test_batches_keep_to_their_limits_and_a_big_result_goes_alone() -> None:
    many = [result(f"j{i}") for i in range(MAX_RESULTS + 1)]
    out = merge_results(many)
    assert [m.type for m in out] == ["JOBS_RESULT", "JOB_RESULT"]
    assert len(out[0].fields["results"]) == MAX_RESULTS
    big = result("big", [b"x" * MAX_BYTES])
    out = merge_results([result("a"), big, result("b"), result("c")])
    assert [m.type for m in out] == ["JOB_RESULT", "JOB_RESULT", "JOBS_RESULT"]
    assert out[1] is big
    assert [e[0]["job_id"] for e in out[2].fields["results"]] == ["b", "c"]


@pytest.mark.parametrize("results", [
    "no list", [["no fields", 1]], [[{"job_id": "j1"}]], [[{"job_id": "j1"}, -1]],
    [[{"job_id": "j1"}, True]], [[{"job_id": "j1"}, 2]],  # two frames claimed, one sent
])
def test_a_malformed_batch_is_refused_whole(results: object) -> None:
    msg = new_message("JOBS_RESULT", {"results": results}, [b"f"], ["result"])
    with pytest.raises(ProtocolError, match="JOBS_RESULT"):
        split_results(msg)


def test_an_entry_with_bad_fields_is_refused_when_it_is_read() -> None:
    msg = new_message("JOBS_RESULT", {"results": [[{"job_id": "j1", "status": 3}, 0]]})
    (one,) = split_results(msg)
    with pytest.raises(ProtocolError, match="status"):
        one.as_(JobResult)
