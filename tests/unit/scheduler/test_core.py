"""The scheduler core driven with a fake clock and no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from gridlib.daemons.scheduler.core import CLIENT, NODE, Peer, SchedulerCore, Send
from gridlib.protocol.codec import Message, new_message
from gridlib.protocol.errors import BAD_REQUEST, NOT_FOUND

ALICE = Peer(CLIENT, (b"client-alice",), "alice-key")
BOB = Peer(CLIENT, (b"client-bob",), "bob-key")
NODE_A = Peer(NODE, (b"node-a",), "node-key-a")
NODE_B = Peer(NODE, (b"relay-1", b"node-b"), "node-key-b")  # behind a relay: a route stack


class Grid:
    """A scheduler core, a fake clock and shortcuts for the messages peers send."""

    def __init__(self, auto_allocate: bool = True, **options: Any) -> None:
        self.core = SchedulerCore("sched-1", **options)
        self.now = 1000.0
        self.auto_allocate = auto_allocate  # clients take every node offered, all its CPUs
        self.clients: dict[tuple[bytes, ...], Peer] = {}

    def send(self, peer: Peer, mtype: str, fields: dict[str, Any] | None = None,
             frames: list[Any] | None = None, labels: list[str] | None = None) -> list[Send]:
        if peer.kind == CLIENT:
            self.clients[peer.route] = peer
        msg = new_message(mtype, fields, frames or [], labels)
        out = self.core.handle(peer, msg, self.now)
        if self.auto_allocate:
            for offer in [s for s in out if s.msg.type == "NODE_EVENT"
                          and s.msg.fields["event"] == "discovered"]:
                node = offer.msg.fields["node"]
                out += self.core.handle(self.clients[offer.route], new_message("NODE_ALLOCATE", {
                    "cluster_id": offer.msg.fields["cluster_id"], "node_id": node["node_id"],
                    "cpus": node["cpus"]}), self.now)
        self.check_invariants()
        return out

    def tick(self) -> list[Send]:
        out = self.core.tick(self.now)
        self.check_invariants()
        return out

    def check_invariants(self) -> None:
        """Bookkeeping that must hold after every step."""
        from gridlib.daemons.scheduler.records import JobState
        for cluster in self.core.clusters.values():
            queued = sum(1 for j in cluster.jobs if self.core.jobs[j].state is JobState.QUEUED)
            assert cluster.queued == queued, (cluster.cluster_id, cluster.queued, queued)
        for node in self.core.nodes.values():
            for job_id, attempt in node.inflight.items():
                job = self.core.jobs.get(job_id)
                assert job is None or job.state is JobState.DONE or (
                    job.node_id == node.node_id and job.attempt == attempt), (job_id, node.name)
        # dispatch looks only at the hungry set: every node with room must be in it
        store, seen = self.core.store, self.core.dispatcher.credit_seen
        if not store.rescan:
            for node in self.core.nodes.values():
                room = node.cpus not in seen or len(node.inflight) < seen[node.cpus]
                assert not room or node.suspect or node.node_id in store.hungry, node.name

    # -- conversations ----------------------------------------------------------------
    def hello(self, client: Peer = ALICE) -> list[Send]:
        return self.send(client, "HELLO", {"name": client.route[0].decode()})

    def open(self, cluster_id: str = "c1", client: Peer = ALICE, frames: list[Any] | None = None,
             **options: Any) -> list[Send]:
        return self.send(client, "CLUSTER_OPEN", {"cluster_id": cluster_id, "kind": "function", **options},
                         frames=frames)

    def ready(self, node: Peer, cpus: int = 1) -> list[Send]:
        name = node.route[-1].decode()
        return self.send(node, "READY", {"node_id": f"id-{name}", "name": name, "cpus": cpus,
                                         "ip_addr": f"192.0.2.{len(name)}"})

    def setup_ok(self, node: Peer, cluster_id: str = "c1") -> list[Send]:
        return self.send(node, "SETUP_OK", {"cluster_id": cluster_id})

    def submit(self, *job_ids: str, client: Peer = ALICE, cluster_id: str = "c1",
               frames: dict[str, Any] | None = None, **spec: Any) -> list[Send]:
        frames = frames or {}
        jobs, payload = [], []
        for job_id in job_ids:
            own = [frames[job_id]] if job_id in frames else []
            jobs.append({"id": job_id, "n": len(own), **spec})
            payload += own
        return self.send(client, "JOB_SUBMIT", {"cluster_id": cluster_id, "jobs": jobs}, frames=payload)

    def result(self, node: Peer, job_id: str, attempt: int = 1, status: str = "finished",
               frames: list[Any] | None = None) -> list[Send]:
        return self.send(node, "JOB_RESULT", {"job_id": job_id, "status": status, "attempt": attempt},
                         frames=frames)

    def running_cluster(self, *nodes: tuple[Peer, int], **options: Any) -> None:
        """Alice's cluster ``c1`` set up on every node in ``nodes`` (peer, cpus)."""
        self.hello()
        for node, cpus in nodes:
            self.ready(node, cpus)
        self.open(**options)
        for node, _ in nodes:
            self.setup_ok(node)


def sent(sends: list[Send], mtype: str, to: Peer | None = None) -> list[Message]:
    return [s.msg for s in sends if s.msg.type == mtype and (to is None or s.route == to.route)]


def assigned(sends: list[Send], node: Peer | None = None) -> list[str]:
    return [m.fields["job_id"] for m in sent(sends, "JOB_ASSIGN", node)]


def the(messages: list[Message]) -> Message:
    assert len(messages) == 1, messages
    return messages[0]


@pytest.fixture
def grid() -> Grid:
    return Grid()


# -- registration -------------------------------------------------------------------------


def test_hello_is_welcomed_with_the_liveness_settings(grid: Grid) -> None:
    hello = new_message("HELLO", {"name": "alice"})

    out = grid.core.handle(ALICE, hello, grid.now)

    welcome = the(sent(out, "WELCOME", ALICE))
    assert welcome.ref == hello.mid
    assert welcome.fields["sid"] == "sched-1"
    assert welcome.fields["heartbeat"] == 2.0
    assert (welcome.fields["suspect_after"], welcome.fields["lost_after"]) == (3, 5)
    assert all(s.to == CLIENT for s in out)


def test_ready_is_welcomed_and_the_node_is_announced_to_later_clients(grid: Grid) -> None:
    out = grid.ready(NODE_B, cpus=4)

    assert the(sent(out, "WELCOME", NODE_B)).fields["sid"] == "sched-1"
    assert all(s.to == NODE and s.route == (b"relay-1", b"node-b") for s in out)
    nodes = the(sent(grid.hello(), "WELCOME", ALICE)).fields["nodes"]
    assert [(n["name"], n["cpus"]) for n in nodes] == [("node-b", 4)]


def test_cluster_open_replies_ok_and_sends_setup_to_every_node(grid: Grid) -> None:
    computation = bytearray(b"dill-pickled function")
    grid.hello()
    grid.ready(NODE_A)
    grid.ready(NODE_B)

    out = grid.open(frames=[computation], reentrant=True)

    assert the(sent(out, "OK", ALICE)).fields["cluster_id"] == "c1"
    for node in (NODE_A, NODE_B):
        setup = the(sent(out, "SETUP", node))
        assert setup.fields["cluster_id"] == "c1"
        assert setup.fields["kind"] == "function"
        assert setup.fields["reentrant"] is True
        assert setup.frames[0] is computation  # shipped once, never re-serialized


def test_node_ready_after_cluster_open_also_gets_setup(grid: Grid) -> None:
    computation = bytearray(b"computation")
    grid.hello()
    grid.open(frames=[computation])

    out = grid.ready(NODE_A)

    assert the(sent(out, "WELCOME", NODE_A))
    setup = the(sent(out, "SETUP", NODE_A))
    assert setup.fields["cluster_id"] == "c1"
    assert setup.frames[0] is computation


def test_cluster_open_before_hello_is_an_error(grid: Grid) -> None:
    error = the(sent(grid.open(), "ERROR", ALICE))

    assert error.fields["code"] == 409


# -- dispatch ---------------------------------------------------------------------------------


def test_no_job_is_assigned_before_setup_ok(grid: Grid) -> None:
    grid.hello()
    grid.ready(NODE_A, cpus=2)
    grid.open()

    assert assigned(grid.submit("j1", "j2")) == []

    out = grid.setup_ok(NODE_A)

    assert assigned(out, NODE_A) == ["j1", "j2"]
    event = the(sent(out, "NODE_EVENT", ALICE))
    assert (event.fields["event"], event.fields["node"]["name"]) == ("initialized", "node-a")


def test_a_node_that_failed_setup_gets_no_jobs(grid: Grid) -> None:
    grid.hello()
    grid.ready(NODE_A)
    grid.ready(NODE_B)
    grid.open()
    out = grid.send(NODE_A, "SETUP_FAIL", {"cluster_id": "c1", "reason": "ImportError: numpy"})
    assert the(sent(out, "NODE_EVENT", ALICE)).fields["event"] == "setup_failed"
    grid.setup_ok(NODE_B)

    out = grid.submit("j1", "j2", "j3")

    assert assigned(out, NODE_A) == []
    assert assigned(out, NODE_B) == ["j1", "j2"]


def test_credit_is_cpus_plus_one_prefetch_per_node(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2), (NODE_B, 1))

    out = grid.submit(*[f"j{i}" for i in range(10)])

    assert len(assigned(out, NODE_A)) == 3
    assert len(assigned(out, NODE_B)) == 2
    assert sorted(assigned(out)) == sorted(f"j{i}" for i in range(5))
    assert all(m.fields["attempt"] == 1 and m.fields["cluster_id"] == "c1"
               for m in sent(out, "JOB_ASSIGN"))


def test_prefetch_is_configurable() -> None:
    grid = Grid(prefetch=0)
    grid.running_cluster((NODE_A, 2))

    assert len(assigned(grid.submit("j1", "j2", "j3"))) == 2


def test_least_loaded_node_gets_the_next_job(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2), (NODE_B, 2))

    order = [the(sent(grid.submit(f"j{i}"), "JOB_ASSIGN")) for i in range(4)]
    chosen = [grid.core.nodes[grid.core.jobs[m.fields["job_id"]].node_id].name for m in order]

    assert chosen[0] != chosen[1] and chosen[2] != chosen[3]
    assert sorted(chosen) == ["node-a", "node-a", "node-b", "node-b"]


def test_least_load_is_relative_to_cpus(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 4), (NODE_B, 1))
    grid.submit("j0", "j1")  # one each: A is 1/4 busy, B is 1/1 busy

    out = grid.submit("j2")

    assert assigned(out, NODE_A) == ["j2"]


def test_job_frames_reach_the_node_as_the_same_objects(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))
    args = memoryview(bytearray(b"args for j1"))

    out = grid.submit("j1", frames={"j1": args})

    assign = the(sent(out, "JOB_ASSIGN", NODE_A))
    assert assign.frames[0] is args


# -- job life cycle ---------------------------------------------------------------------------


def test_job_started_is_reported_to_the_client_as_running(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")

    out = grid.send(NODE_A, "JOB_STARTED", {"job_id": "j1", "attempt": 1, "start_time": 1.5})

    event = the(sent(out, "JOB_EVENT", ALICE))
    assert event.fields["job_id"] == "j1"
    assert event.fields["event"] == "running"
    assert event.fields["node"] == "node-a"


def test_job_result_goes_to_the_client_and_frees_credit(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))  # credit 2
    grid.submit("j1", "j2", "j3")
    result_frame = bytearray(b"pickled result")

    out = grid.result(NODE_A, "j1", frames=[result_frame])

    result = the(sent(out, "JOB_RESULT", ALICE))
    assert result.fields["job_id"] == "j1"
    assert result.fields["status"] == "finished"
    assert result.fields["node"] == "node-a"
    assert result.fields["attempts"] == 1
    assert result.frames[0] is result_frame  # forwarded, never unpickled or copied
    assert assigned(out, NODE_A) == ["j3"]


def test_results_from_a_node_in_one_message_each_count_as_if_they_came_alone(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2))
    grid.submit("j1", "j2", "j3")
    entries = [[{"job_id": "j1", "attempt": 1, "status": "finished"}, 1],
               [{"job_id": "j2", "attempt": 1, "status": 7}, 0],  # a bad one is answered alone
               [{"job_id": "j3", "attempt": 9, "status": "finished"}, 0]]  # a stale one is dropped
    out = grid.send(NODE_A, "JOBS_RESULT", {"results": entries}, frames=[b"r1"], labels=["result"])
    (result,) = sent(out, "JOB_RESULT", ALICE)
    assert result.fields["job_id"] == "j1" and [bytes(f) for f in result.frames] == [b"r1"]
    assert "status" in the(sent(out, "ERROR", NODE_A)).fields["reason"]
    assert grid.core.duplicates == 1
    assert grid.core.jobs["j3"].state.value != "done"

    out = grid.send(NODE_A, "JOBS_RESULT", {"results": [[{"job_id": "j2"}, 1]]})  # frames missing
    assert "JOBS_RESULT" in the(sent(out, "ERROR", NODE_A)).fields["reason"]


def test_acknowledgements_to_a_busy_node_travel_in_batches(grid: Grid) -> None:
    from gridlib.daemons.scheduler.state import ACK_BATCH, ACK_BYTES, PendingAcks
    grid.running_cluster((NODE_A, 1))  # 1 CPU and a prefetch of 1: two jobs in flight
    grid.submit("j1", "j2", "j3")
    grid.result(NODE_A, "j1")
    out = grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1"]})
    assert sent(out, "RESULT_ACK", NODE_A) == []  # node-a still runs jobs: the ack waits
    ack = the(sent(grid.core.check(grid.now), "RESULT_ACK", NODE_A))  # the check sends it
    assert ack.fields["job_ids"] == ["j1"]
    grid.result(NODE_A, "j2")
    assert sent(grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j2"]}), "RESULT_ACK", NODE_A) == []
    out = grid.result(NODE_A, "j3")  # node-a's last job ends: nothing to wait for, the ack goes
    assert the(sent(out, "RESULT_ACK", NODE_A)).fields["job_ids"] == ["j2"]

    grid.submit("j4", "j5")
    grid.result(NODE_A, "j4")
    grid.core.store.node_acks["id-node-a"] = PendingAcks([f"x{i}" for i in range(ACK_BATCH - 1)])
    out = grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j4"]})
    assert len(the(sent(out, "RESULT_ACK", NODE_A)).fields["job_ids"]) == ACK_BATCH  # a full batch goes

    grid.submit("j6")
    grid.result(NODE_A, "j5", frames=[b"x" * ACK_BYTES])  # big results are not held back
    out = grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j5"]})
    assert the(sent(out, "RESULT_ACK", NODE_A)).fields["job_ids"] == ["j5"]


def test_result_ack_from_the_client_is_passed_to_the_node(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2))
    grid.submit("j1", "j2")
    grid.result(NODE_A, "j1")
    grid.result(NODE_A, "j2")

    out = grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1", "j2"]})

    ack = the(sent(out, "RESULT_ACK", NODE_A))
    assert sorted(ack.fields["job_ids"]) == ["j1", "j2"]
    assert sent(grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1"]}), "RESULT_ACK") == []


def test_result_with_a_stale_attempt_is_not_delivered(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")

    out = grid.result(NODE_A, "j1", attempt=7)

    assert sent(out, "JOB_RESULT") == []
    assert grid.core.duplicates == 1
    assert the(sent(grid.result(NODE_A, "j1", attempt=1), "JOB_RESULT", ALICE)).fields["job_id"] == "j1"


def test_a_repeated_result_is_delivered_only_once(grid: Grid) -> None:
    """A node resends a spooled result it has no ack for (e.g. after reconnecting)."""
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")
    first = grid.result(NODE_A, "j1")
    assert len(sent(first, "JOB_RESULT", ALICE)) == 1

    again = grid.result(NODE_A, "j1")

    assert sent(again, "JOB_RESULT", ALICE) == []
    assert grid.core.duplicates == 1
    assert grid.core.nodes["id-node-a"].jobs_done == 1


def test_a_result_from_a_node_the_job_was_taken_from_is_dropped() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1), reentrant=True)
    grid.submit("j1")  # to node-a, the first of two idle nodes
    grid.now += 8
    grid.send(NODE_B, "HEARTBEAT")
    grid.now += 2
    out = grid.tick()  # node-a lost: j1 goes to node-b as attempt 2
    assert the(sent(out, "JOB_ASSIGN", NODE_B)).fields["attempt"] == 2
    grid.ready(NODE_A)  # node-a comes back and reports its old attempt

    late = grid.result(NODE_A, "j1", attempt=1)

    assert sent(late, "JOB_RESULT") == []
    assert grid.core.duplicates == 1
    final = the(sent(grid.result(NODE_B, "j1", attempt=2), "JOB_RESULT", ALICE))
    assert (final.fields["node"], final.fields["attempts"]) == ("node-b", 2)


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_of_a_queued_job_reports_it_cancelled_and_never_runs_it(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))  # credit 2: j3 stays queued
    grid.submit("j1", "j2", "j3")

    out = grid.send(ALICE, "JOB_CANCEL", {"job_ids": ["j3"]})

    result = the(sent(out, "JOB_RESULT", ALICE))
    assert (result.fields["job_id"], result.fields["status"]) == ("j3", "cancelled")
    assert sent(out, "JOB_CANCEL") == []
    assert assigned(grid.result(NODE_A, "j1")) == []


def test_cancel_of_a_running_job_asks_its_node_to_kill_it(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))
    grid.submit("j1", "j2")
    node = NODE_A if grid.core.jobs["j2"].node_id == "id-node-a" else NODE_B
    grid.send(node, "JOB_STARTED", {"job_id": "j2", "attempt": 1})

    out = grid.send(ALICE, "JOB_CANCEL", {"job_ids": ["j2"]})

    cancel = the(sent(out, "JOB_CANCEL"))
    assert cancel.fields["job_ids"] == ["j2"]
    assert [s.route for s in out if s.msg is cancel] == [node.route]
    assert sent(out, "JOB_RESULT") == []  # the node reports the outcome
    done = the(sent(grid.result(node, "j2", status="cancelled"), "JOB_RESULT", ALICE))
    assert done.fields["status"] == "cancelled"


def test_a_client_cannot_cancel_another_users_job(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))  # credit 2
    grid.submit("j1", "j2", "j3")
    grid.hello(BOB)

    out = grid.send(BOB, "JOB_CANCEL", {"job_ids": ["j1", "j3"]})

    assert sent(out, "JOB_CANCEL") == [] and sent(out, "JOB_RESULT") == []
    assert assigned(grid.result(NODE_A, "j1")) == ["j3"]


# -- ordering and placement -----------------------------------------------------------------


def test_higher_priority_first_then_first_submitted(grid: Grid) -> None:
    grid.hello()
    grid.ready(NODE_A, cpus=9)
    grid.open()
    grid.submit("low-1", priority=0)
    grid.submit("mid-1", priority=1)
    grid.submit("high", priority=5)
    grid.submit("low-2")
    grid.submit("mid-2", "mid-3", priority=1)
    grid.submit("negative", priority=-3)

    out = grid.setup_ok(NODE_A)

    assert assigned(out) == ["high", "mid-1", "mid-2", "mid-3", "low-1", "low-2", "negative"]


def test_a_pinned_job_goes_only_to_its_node(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2), (NODE_B, 2))

    out = grid.submit("p1", "p2", "p3", node="node-b")

    assert assigned(out, NODE_A) == []
    assert assigned(out, NODE_B) == ["p1", "p2", "p3"]
    out = grid.submit("free")
    assert assigned(out, NODE_A) == ["free"]


def test_a_job_can_be_pinned_by_node_id(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))

    out = grid.submit("p1", node="id-node-b")

    assert assigned(out, NODE_B) == ["p1"]


def test_a_job_pinned_to_a_busy_node_waits_for_it(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))  # credit 2 each

    out = grid.submit("p1", "p2", "p3", node="node-b")

    assert assigned(out, NODE_B) == ["p1", "p2"]
    assert assigned(grid.tick(), NODE_A) == []  # node-a is idle, yet p3 waits for node-b
    assert assigned(grid.result(NODE_B, "p1")) == ["p3"]


# -- users ---------------------------------------------------------------------------------------


def test_another_users_client_cannot_see_the_cluster(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))
    grid.hello(BOB)

    for mtype, fields in [("JOB_SUBMIT", {"cluster_id": "c1", "jobs": [{"id": "evil"}]}),
                          ("CLUSTER_CLOSE", {"cluster_id": "c1"})]:
        error = the(sent(grid.send(BOB, mtype, fields), "ERROR", BOB))
        assert error.fields["code"] == NOT_FOUND == 404
    assert "evil" not in grid.core.jobs
    assert "c1" in grid.core.clusters


def test_the_same_user_from_another_connection_may_use_the_cluster(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))
    laptop = Peer(CLIENT, (b"client-alice-2",), ALICE.user)

    out = grid.submit("j1", client=laptop)

    assert assigned(out, NODE_A) == ["j1"]


# -- failures -------------------------------------------------------------------------------------


def silence_node_a(grid: Grid) -> list[Send]:
    """Let node-a miss 5 heartbeat intervals while node-b keeps talking; returns the tick."""
    grid.now += 6
    grid.send(NODE_B, "HEARTBEAT")
    grid.now += 3.9
    early = grid.tick()
    assert "id-node-a" in grid.core.nodes  # 4.95 intervals: suspect, not lost
    assert sent(early, "JOB_RESULT") == [] and sent(early, "NODE_EVENT") == []
    grid.now += 0.1
    return grid.tick()


def test_lost_node_job_of_a_reentrant_cluster_runs_again_elsewhere() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1), reentrant=True)
    grid.submit("j1", "j2")  # one each
    moved = "j1" if grid.core.jobs["j1"].node_id == "id-node-a" else "j2"

    out = silence_node_a(grid)

    assign = the(sent(out, "JOB_ASSIGN", NODE_B))
    assert (assign.fields["job_id"], assign.fields["attempt"]) == (moved, 2)
    assert sent(out, "JOB_RESULT") == []
    closed = the(sent(out, "NODE_EVENT", ALICE))
    assert (closed.fields["event"], closed.fields["node"]["name"]) == ("closed", "node-a")
    assert sent(out, "HEARTBEAT", NODE_A) == []
    assert "id-node-a" not in grid.core.nodes


def test_lost_node_job_of_a_plain_cluster_is_abandoned() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))
    grid.submit("j1", "j2")
    lost = "j1" if grid.core.jobs["j1"].node_id == "id-node-a" else "j2"

    out = silence_node_a(grid)

    result = the(sent(out, "JOB_RESULT", ALICE))
    assert (result.fields["job_id"], result.fields["status"]) == (lost, "abandoned")
    assert "node-a" in result.fields["reason"]
    assert assigned(out) == []


def test_a_reentrant_job_that_kept_losing_its_node_is_terminated_and_named() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), reentrant=True, max_attempts=1)
    grid.submit("j1")

    grid.now += 10
    out = grid.tick()

    result = the(sent(out, "JOB_RESULT", ALICE))
    assert (result.fields["job_id"], result.fields["status"]) == ("j1", "terminated")
    assert result.fields["exception"]["type"] == "JobLostNodes"
    assert "all 1 attempts" in result.fields["exception"]["message"]


def test_tick_sends_heartbeats_to_every_peer(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))

    out = grid.tick()

    assert {s.route for s in out if s.msg.type == "HEARTBEAT"} == {ALICE.route, NODE_A.route, NODE_B.route}


def test_a_suspect_node_gets_no_new_work() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1), (NODE_B, 1))
    grid.now += 6
    grid.send(NODE_B, "HEARTBEAT")
    grid.tick()  # node-a silent for 3 intervals

    out = grid.submit("j1", "j2", "j3")

    assert assigned(out, NODE_A) == []
    assert assigned(out, NODE_B) == ["j1", "j2"]


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "mtype", "fields"),
    [
        (ALICE, "READY", {"node_id": "n", "name": "n", "cpus": 1}),
        (ALICE, "JOB_RESULT", {"job_id": "j1", "status": "finished"}),
        (ALICE, "SETUP_OK", {"cluster_id": "c1"}),
        (NODE_A, "JOB_SUBMIT", {"cluster_id": "c1", "jobs": [{"id": "x"}]}),
        (NODE_A, "CLUSTER_OPEN", {"cluster_id": "c2", "kind": "function"}),
        (NODE_A, "WELCOME", {"sid": "fake", "heartbeat": 1.0}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_message_the_peer_may_not_send_gets_an_error(
    grid: Grid, peer: Peer, mtype: str, fields: dict[str, Any]
) -> None:
    grid.running_cluster((NODE_A, 1))
    msg = new_message(mtype, fields)

    out = grid.core.handle(peer, msg, grid.now)

    error = the(sent(out, "ERROR", peer))
    assert error.ref == msg.mid
    assert error.fields["code"] == BAD_REQUEST
    assert [s.msg.type for s in out] == ["ERROR"]
    assert assigned(grid.submit("j1"), NODE_A) == ["j1"]  # the core keeps working


def test_a_node_must_send_ready_first(grid: Grid) -> None:
    error = the(sent(grid.send(NODE_A, "SETUP_OK", {"cluster_id": "c1"}), "ERROR", NODE_A))

    assert error.fields["code"] == 409


@pytest.mark.parametrize(
    "bad_spec",
    [{"priority": "high"}, {"priority": [1]}, {"node": 7}],
    ids=["priority-str", "priority-list", "node-int"],
)
def test_a_refused_job_spec_gets_an_error_and_leaves_no_trace(grid: Grid, bad_spec: dict[str, Any]) -> None:
    grid.running_cluster((NODE_A, 1))

    out = grid.submit("j1", **bad_spec)

    assert the(sent(out, "ERROR", ALICE)).fields["code"] == BAD_REQUEST
    assert assigned(grid.submit("j1")) == ["j1"]  # corrected and resubmitted: it runs


def test_job_submit_with_frame_counts_that_do_not_add_up_is_refused(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 1))

    out = grid.send(ALICE, "JOB_SUBMIT", {"cluster_id": "c1", "jobs": [{"id": "j1", "n": 2}]},
                    frames=[b"only one"])

    assert the(sent(out, "ERROR", ALICE)).fields["code"] == BAD_REQUEST
    assert assigned(out) == []


def test_duplicate_submit_of_a_job_id_is_idempotent(grid: Grid) -> None:
    grid.running_cluster((NODE_A, 2))
    first, second = bytearray(b"first"), bytearray(b"second")
    out1 = grid.submit("j1", frames={"j1": first})

    out2 = grid.submit("j1", frames={"j1": second})

    assert the(sent(out1, "JOB_ASSIGN", NODE_A)).frames[0] is first
    assert assigned(out2) == [] and sent(out2, "ERROR") == []
    assert grid.core.duplicates == 1
    assert len(sent(grid.result(NODE_A, "j1"), "JOB_RESULT", ALICE)) == 1
    assert assigned(grid.submit("j1")) == []


def test_short_jobs_deepen_the_prefetch() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    out = grid.submit(*[f"j{i}" for i in range(100)])
    assert len(assigned(out, NODE_A)) == 3  # 2 CPUs + 1 while nothing is known of the jobs
    for i in range(3):
        grid.send(NODE_A, "JOB_RESULT", {"job_id": f"j{i}", "status": "finished", "attempt": 1,
                                         "start_time": 100.0, "end_time": 100.001})
    # 1 ms jobs: 2 CPUs + 5 ms of work per CPU (10 jobs)
    assert len(grid.core.nodes["id-node-a"].inflight) == 12
    for i in range(3, 15):
        grid.send(NODE_A, "JOB_RESULT", {"job_id": f"j{i}", "status": "finished", "attempt": 1,
                                         "start_time": 100.0, "end_time": 100.00001})
    assert len(grid.core.nodes["id-node-a"].inflight) == 2 + 32  # capped: 16 per CPU


def test_long_jobs_keep_the_minimum_prefetch() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    grid.submit(*[f"j{i}" for i in range(20)])
    grid.send(NODE_A, "JOB_RESULT", {"job_id": "j0", "status": "finished", "attempt": 1,
                                     "start_time": 100.0, "end_time": 101.0})
    assert len(grid.core.nodes["id-node-a"].inflight) == 3  # 2 CPUs + 1


def test_status_names_only_the_askers_clusters_and_jobs() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 2))
    grid.hello(BOB)
    grid.open("c2", client=BOB)
    grid.setup_ok(NODE_A, "c2")
    grid.submit("a1", "a2", "a3", "a4")
    grid.submit("b1", client=BOB, cluster_id="c2")
    grid.result(NODE_A, "a1")
    grid.now += 2.5

    answer = the(sent(grid.send(BOB, "STATUS"), "STATUS", BOB)).fields
    (node,) = answer["nodes"]
    assert node["name"] == "node-a" and node["cpus"] == 2 and node["jobs_done"] == 1
    assert node["last_heard"] == 2.5 and node["suspect"] is False
    (mine,) = answer["clusters"]
    assert mine["cluster_id"] == "c2" and mine["queued"] + mine["running"] == 1
    others = answer["others"]  # Alice's cluster: counted, not named
    assert others["clusters"] == 1 and others["done"] == 1
    assert others["queued"] + others["running"] == 3
    assert node["busy"] == others["running"] + mine["running"]
    assert {j["cluster_id"] for j in node["running"]} <= {"c2"}  # never Alice's job ids
    everything = grid.core.snapshot(grid.now)  # the scheduler's own monitor sees all
    assert len(everything["clusters"]) == 2 and everything["others"]["clusters"] == 0
    assert len(everything["nodes"][0]["running"]) == node["busy"]


def test_unacknowledged_results_are_resent_only_while_the_client_is_heard() -> None:
    grid = Grid()
    grid.running_cluster((NODE_A, 1))
    grid.submit("j1")
    first = sent(grid.result(NODE_A, "j1"), "JOB_RESULT", ALICE)
    assert len(first) == 1
    interval = grid.core.policy.interval

    grid.now += 3 * interval + 0.1  # no ack, but Alice's heartbeats keep coming
    grid.send(ALICE, "HEARTBEAT")
    again = sent(grid.core.check(grid.now), "JOB_RESULT", ALICE)
    assert [m.fields["job_id"] for m in again] == ["j1"]

    grid.now += 20 * interval  # Alice falls silent: nothing is sent into the void
    assert sent(grid.core.check(grid.now), "JOB_RESULT", ALICE) == []
    grid.send(ALICE, "HEARTBEAT")  # she is back: the result comes within 3 intervals
    grid.now += 3 * interval + 0.1
    grid.send(ALICE, "HEARTBEAT")
    assert [m.fields["job_id"] for m in sent(grid.core.check(grid.now), "JOB_RESULT", ALICE)] == ["j1"]
    grid.send(ALICE, "RESULT_ACK", {"job_ids": ["j1"]})
    grid.now += 10 * interval
    grid.send(ALICE, "HEARTBEAT")
    assert sent(grid.core.check(grid.now), "JOB_RESULT", ALICE) == []
