"""JOB_ASSIGNs to one node travel together, and nothing sent to a node changes order."""

from __future__ import annotations

from gridlib.daemons.scheduler.batching import MAX_JOBS, batch_sends
from gridlib.daemons.scheduler.state import CLIENT, NODE, Send
from gridlib.protocol.codec import decode, encode, new_message
from gridlib.protocol.result_batches import split_results

A, B = (b"node-a",), (b"node-b",)


def assign(route: tuple[bytes, ...], job_id: str, frames: int = 1, timeout: float | None = None,
           label: str | None = None) -> Send:
    return Send(NODE, route, new_message("JOB_ASSIGN", {"cluster_id": "c1", "job_id": job_id,
                                                        "attempt": 1, "timeout": timeout,
                                                        "label": label},
                                         [job_id.encode() * (i + 1) for i in range(frames)],
                                         ["args"] * frames))


def batch_assignments(sends: list[Send]) -> list[Send]:
    """The shell's batching for nodes that read JOBS_ASSIGN (every node here)."""
    return batch_sends(sends, lambda to, route: to == NODE)


def other(route: tuple[bytes, ...], mtype: str = "RESULT_ACK") -> Send:
    return Send(NODE, route, new_message(mtype, {"job_ids": ["x"]}))


def test_a_run_to_one_node_becomes_one_message_with_every_job_and_frame_in_order() -> None:
    out = batch_assignments([assign(A, "j1", 2, 3.5, "7"), assign(A, "j2"), assign(A, "j3", 0)])
    assert len(out) == 1
    msg = decode(encode(out[0].msg))  # as the node reads it
    assert msg.type == "JOBS_ASSIGN"
    assert msg.fields["jobs"] == [["c1", "j1", 1, 3.5, 2, "7"], ["c1", "j2", 1, None, 1, None],
                                  ["c1", "j3", 1, None, 0, None]]
    assert [bytes(f) for f in msg.frames] == [b"j1", b"j1j1", b"j2"]
    assert msg.labels == ["args"] * 3


def test_a_lone_assignment_goes_as_it_is_and_other_sides_are_untouched() -> None:
    client = Send(CLIENT, (b"c",), new_message("OK"))
    sends = [assign(A, "j1"), client, assign(B, "j2")]
    assert batch_assignments(sends) == sends


def test_another_message_to_the_node_ends_the_run_so_its_order_holds() -> None:
    setup = other(A, "TEARDOWN")
    out = batch_assignments([assign(A, "j1"), assign(A, "j2"), setup, assign(A, "j3"),
                             assign(A, "j4")])
    assert [s.msg.type for s in out] == ["JOBS_ASSIGN", "TEARDOWN", "JOBS_ASSIGN"]
    assert [e[1] for e in out[2].msg.fields["jobs"]] == ["j3", "j4"]


def test_runs_to_two_nodes_interleaved_are_batched_per_node() -> None:
    out = batch_assignments([assign(A, "a1"), assign(B, "b1"), assign(A, "a2"), assign(B, "b2")])
    assert [(s.route, [e[1] for e in s.msg.fields["jobs"]]) for s in out] == [
        (A, ["a1", "a2"]), (B, ["b1", "b2"])]


def test_a_batch_holds_at_most_max_jobs() -> None:
    out = batch_assignments([assign(A, f"j{i}") for i in range(MAX_JOBS + 3)])
    assert [len(s.msg.fields["jobs"]) if s.msg.type == "JOBS_ASSIGN" else 1 for s in out] == [MAX_JOBS, 3]


def result(route: tuple[bytes, ...], job_id: str) -> Send:
    return Send(CLIENT, route, new_message("JOB_RESULT", {"job_id": job_id, "status": "finished"},
                                           [job_id.encode()], ["result"]))


def test_results_to_a_client_over_a_socket_travel_together_in_order() -> None:
    remote, local = (b"client-r",), (b"client-l",)
    event = Send(CLIENT, remote, new_message("JOB_EVENT", {"job_id": "j3", "event": "running"}))
    sends = [result(remote, "j1"), result(local, "l1"), result(remote, "j2"), event,
             result(remote, "j3"), result(local, "l2"), assign(A, "a1"), assign(A, "a2")]
    out = batch_sends(sends, lambda to, route: to == NODE or route == remote)
    assert [(s.route, s.msg.type) for s in out] == [
        (remote, "JOBS_RESULT"), (local, "JOB_RESULT"), (remote, "JOB_EVENT"), (remote, "JOB_RESULT"),
        (local, "JOB_RESULT"), (A, "JOBS_ASSIGN")]  # this process's own client gets them one by one
    wire = decode(encode(out[0].msg))
    assert [(m.fields["job_id"], [bytes(f) for f in m.frames]) for m in split_results(wire)] == [
        ("j1", [b"j1"]), ("j2", [b"j2"])]


def test_a_peer_that_did_not_say_it_reads_batches_gets_every_message_alone() -> None:
    sends = [assign(A, "a1"), assign(A, "a2"), result((b"old-client",), "j1"), result((b"old-client",), "j2")]
    assert batch_sends(sends, lambda to, route: False) == sends
