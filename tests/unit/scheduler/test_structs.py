"""The scheduler core reads every message through its struct (``Message.as_``).

A message that crossed a socket had its struct checked when it was decoded;
one passed in-process (the embedded scheduler's own client) is checked on the
handler's first read.  One that fails the check is a bad message like any
other: the sender gets ``ERROR 400`` naming the message and the field, and
nothing else happens -- no record changes, no job is left waiting.
"""

from __future__ import annotations

from typing import Any

import pytest

from gridlib.daemons.scheduler.core import Peer
from gridlib.protocol.codec import decode, encode, new_message
from gridlib.protocol.errors import BAD_REQUEST, ProtocolError
from tests.unit.scheduler.test_core import ALICE, NODE_A, Grid, assigned, sent, the

REFUSED: list[tuple[Peer, str, dict[str, Any], str]] = [
    # the client's messages (in-process: a tuple is not the list the struct asks for)
    (ALICE, "HELLO", {}, "HELLO: missing field 'name'"),
    (ALICE, "CLUSTER_OPEN", {"cluster_id": "c2", "kind": "function", "setup_args": ("a",)},
     "CLUSTER_OPEN: field 'setup_args' must be a list"),
    (ALICE, "CLUSTER_OPEN", {"cluster_id": "c2", "kind": "function", "node_wait": "10"},
     "CLUSTER_OPEN: field 'node_wait' must be a number"),
    (ALICE, "JOB_SUBMIT", {"cluster_id": "c1", "jobs": ({"id": "j9", "n": 0},)},
     "JOB_SUBMIT: field 'jobs' must be a list"),
    (ALICE, "JOB_SUBMIT", {"cluster_id": 1, "jobs": [{"id": "j9", "n": 0}]},
     "JOB_SUBMIT: field 'cluster_id' must be a string"),
    (ALICE, "JOB_CANCEL", {"job_ids": ("j1",)}, "JOB_CANCEL: field 'job_ids' must be a list of str"),
    (ALICE, "RESULT_ACK", {"job_ids": ["j1", 5]}, "RESULT_ACK: field 'job_ids' must be a list of str"),
    (ALICE, "CLUSTER_CLOSE", {}, "CLUSTER_CLOSE: missing field 'cluster_id'"),
    (ALICE, "NODE_ALLOCATE", {"cluster_id": "c1", "node_id": "id-node-b", "cpus": "2"},
     "NODE_ALLOCATE: field 'cpus' must be an integer"),
    (ALICE, "NODE_CONTROL", {"cluster_id": "c1", "node": "node-a", "op": "cpus", "cpus": 1.5},
     "NODE_CONTROL: field 'cpus' must be an integer"),
    (ALICE, "NODE_CONTROL", {"cluster_id": "c1", "node": "node-a", "op": "closing", "terminate": "yes"},
     "NODE_CONTROL: field 'terminate' must be a boolean"),
    (ALICE, "FILE_PUT", {"cluster_id": "c1", "node": "node-a", "name": "f", "mode": "rw"},
     "FILE_PUT: field 'mode' must be an integer"),
    (ALICE, "FILE_PUT", {"cluster_id": "c1", "name": "f"}, "FILE_PUT: missing field 'node'"),
    # a node's (over a socket the codec refuses them first, with the same reason)
    (NODE_A, "READY", {"node_id": "id-node-a", "name": "node-a", "cpus": 1, "port": "80"},
     "READY: field 'port' must be an integer"),
    (NODE_A, "SETUP_OK", {"cluster_id": 3}, "SETUP_OK: field 'cluster_id' must be a string"),
    (NODE_A, "SETUP_FAIL", {"cluster_id": "c1"}, "SETUP_FAIL: missing field 'reason'"),
    (NODE_A, "NODE_ALERT", {}, "NODE_ALERT: missing field 'reason'"),
    (NODE_A, "HEARTBEAT", {"avail": [1]}, "HEARTBEAT: field 'avail' must be a map"),
    (NODE_A, "JOB_STARTED", {"job_id": "j1", "attempt": "1"}, "JOB_STARTED: field 'attempt' must be an integer"),
    (NODE_A, "JOB_PROVISIONAL", {"job_id": "j1"}, "JOB_PROVISIONAL: missing field 'attempt'"),
    (NODE_A, "JOB_FILE", {"job_id": "j1", "attempt": 1}, "JOB_FILE: missing field 'path'"),
    (NODE_A, "JOB_RESULT", {"job_id": "j1", "status": "finished", "attempt": 1, "end_time": "x"},
     "JOB_RESULT: field 'end_time' must be a number"),
    (NODE_A, "JOB_RESULT", {"job_id": "j1", "attempt": 1}, "JOB_RESULT: missing field 'status'"),
    (NODE_A, "ERROR", {"code": "x", "reason": "r"}, "ERROR: field 'code' must be an integer"),
]


def _state(grid: Grid) -> Any:
    core = grid.core
    return (core.snapshot(grid.now), len(core.persist), sorted(core.jobs), sorted(core.clients),
            {n.node_id: (dict(n.setup), dict(n.cluster_cpus), dict(n.inflight)) for n in core.nodes.values()},
            {c.cluster_id: (c.queued, c.done, dict(c.options)) for c in core.clusters.values()})


@pytest.mark.parametrize(("peer", "mtype", "fields", "reason"), REFUSED,
                         ids=[f"{m}-{r.split(': ', 1)[1]}" for _, m, _, r in REFUSED])
def test_a_message_its_struct_refuses_gets_an_error_and_leaves_no_trace(
        peer: Peer, mtype: str, fields: dict[str, Any], reason: str) -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    assert assigned(grid.submit("j1", "j2"), NODE_A) == ["j1", "j2"]  # one running, one prefetched
    before = _state(grid)
    msg = new_message(mtype, fields)

    out = grid.core.handle(peer, msg, grid.now)

    error = the(sent(out, "ERROR", peer))
    assert (error.ref, error.fields) == (msg.mid, {"code": BAD_REQUEST, "reason": reason})
    assert [s.msg.type for s in out] == ["ERROR"]
    assert _state(grid) == before
    # nothing waits for ever: the jobs in flight end, and new work still runs
    result = the(sent(grid.result(NODE_A, "j1"), "JOB_RESULT", ALICE))
    assert result.fields["job_id"] == "j1"
    assert assigned(grid.submit("j3"), NODE_A) == ["j3"]
    assert the(sent(grid.result(NODE_A, "j2"), "JOB_RESULT", ALICE)).fields["job_id"] == "j2"


# over a socket: a tuple crosses msgpack as a list, and FILE_PUT's node is the core's own rule
OVER_THE_WIRE = [(mtype, fields, reason) for _, mtype, fields, reason in REFUSED
                 if not any(isinstance(v, tuple) for v in fields.values())
                 and reason != "FILE_PUT: missing field 'node'"]


@pytest.mark.parametrize(("mtype", "fields", "reason"), OVER_THE_WIRE,
                         ids=[f"{m}-{r.split(': ', 1)[1]}" for m, _, r in OVER_THE_WIRE])
def test_over_a_socket_the_codec_refuses_them_with_the_same_reason(
        mtype: str, fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode(encode(new_message(mtype, fields)))
    assert (refused.value.code, refused.value.reason) == (BAD_REQUEST, reason)


def test_a_file_put_without_a_node_is_refused_not_crashed_on() -> None:
    """FILE_PUT's node is optional in its struct (a node's FILE_PUT has none), required from a client."""
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    msg = decode(encode(new_message("FILE_PUT", {"cluster_id": "c1", "name": "f"}, [b"data"], ["file"])))

    out = grid.core.handle(ALICE, msg, grid.now)

    assert the(sent(out, "ERROR", ALICE)).fields == {"code": BAD_REQUEST,
                                                     "reason": "FILE_PUT: missing field 'node'"}
    assert not sent(out, "FILE_PUT")


def test_nil_optional_fields_read_as_absent_and_a_nodes_nil_info_is_relayed_as_sent() -> None:
    grid = Grid(auto_allocate=False)
    grid.hello()
    ready = decode(encode(new_message("READY", {"node_id": "id-n", "name": "n", "cpus": 2,
                                                "ip_addr": None, "platform": None, "port": 9})))
    grid.core.handle(Peer(NODE_A.kind, NODE_A.route, NODE_A.user, "198.51.100.7"), ready, grid.now)
    offer = the(sent(grid.open(), "NODE_EVENT", ALICE))
    node = offer.fields["node"]
    assert node["ip_addr"] == "198.51.100.7"  # nil: the address the socket saw
    assert "platform" in node and node["platform"] is None and node["port"] == 9 and "pid" not in node

    out = grid.send(ALICE, "NODE_ALLOCATE", {"cluster_id": "c1", "node_id": "id-n", "cpus": 2,
                                             "files": None, "setup_args": None})

    setup = the(sent(out, "SETUP", NODE_A))
    assert setup.fields["files"] == [] and "setup_args" not in setup.fields
    control = grid.send(ALICE, "NODE_CONTROL", {"cluster_id": "c1", "node": "n", "op": "cpus", "cpus": None})
    assert the(sent(control, "OK", ALICE)).fields["cpus"] == 0
