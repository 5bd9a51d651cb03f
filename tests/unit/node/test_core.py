"""The node's core (daemons/node/core.py) driven with a fake clock: no sockets, processes or files.

A ``World`` plays the shell: it performs the effects the core returns in
memory (links, workers, timers, the spool) and feeds back the events a real
shell would.  Besides directed tests, a property test drives random
sequences of scheduler requests and worker behaviour and checks that every
request got exactly one answer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridlib.daemons.node import events as ev
from gridlib.daemons.node.core import SPOOL_GRACE, NodeCore, NodeFacts, NodeRules
from gridlib.daemons.node.jobs import STARTED_DELAY
from gridlib.protocol.beacon import Beacon
from gridlib.protocol.codec import Message, new_message

KEY = b"k" * 40
OTHER_KEY = b"o" * 40


class World:
    """The core, a fake clock, and an in-memory shell."""

    def __init__(self, cpus: int = 2, **rules: Any) -> None:
        self.now = 100.0
        facts = NodeFacts("node-1", "n1", cpus, python="3.11", protocol="1.0")
        self.core = NodeCore(facts, NodeRules(**rules), frozenset({KEY}), wall=lambda: 1e9 + self.now)
        self.sent: list[tuple[str, Message]] = []
        self.links: set[str] = set()
        self.workers: dict[int, dict[str, Any]] = {}  # wid -> {"cluster", "job", "stopping"}
        self.timers: dict[tuple[Any, ...], float] = {}
        self.spool: dict[str, str] = {}  # job id -> "held" | "disk"
        self.deferred: list[Any] = []  # events a real shell would see later (process exits)
        self.prepare_fails: str | None = None
        self.dead: set[str] = set()  # endpoints where nothing listens
        self.dialed: list[str] = []
        self.stopped = False
        self.apply(self.core.start(self.now))

    # -- the shell's part -------------------------------------------------------------
    def handle(self, event: Any) -> None:
        queue = [event]
        while queue:
            for effect in self.core.handle(queue.pop(0), self.now):
                follow = self.perform(effect)
                if follow is not None:
                    queue.append(follow)

    def apply(self, effects: list[Any]) -> None:
        for effect in effects:
            follow = self.perform(effect)
            if follow is not None:
                self.handle(follow)

    def perform(self, e: Any) -> Any:  # noqa: C901 (one branch per effect, like the shell)
        if isinstance(e, ev.Send):
            assert e.sid in self.links, f"send on a closed link {e.sid}: {e.msg.type}"
            self.sent.append((e.sid, e.msg))
        elif isinstance(e, ev.SendHeartbeat):
            self.sent.append((e.sid, new_message("HEARTBEAT")))
        elif isinstance(e, ev.OpenLink):
            self.links.add(e.sid)
            self.dialed.append(e.sid)
            if e.endpoint in self.dead:  # nothing listens there: the shell says so at once
                self.deferred.append(ev.LinkFailed(e.sid, "nothing listens there"))
            return ev.LinkOpened(e.sid, "192.0.2.9")
        elif isinstance(e, ev.CloseLink):
            self.links.discard(e.sid)
        elif isinstance(e, ev.PrepareCluster):
            if self.prepare_fails:
                return ev.ClusterPrepareFailed(e.cluster_id, self.prepare_fails)
            return ev.ClusterPrepared(e.cluster_id, f"/prefix/clusters/{e.dest_path}")
        elif isinstance(e, ev.SpawnWorker):
            self.workers[e.wid] = {"cluster": e.cluster_id, "job": None, "stopping": False}
        elif isinstance(e, ev.WorkerSend):
            if e.wid in self.workers:
                if e.kind == "job":
                    self.workers[e.wid]["job"] = dict(e.fields)
                elif e.kind == "stop":
                    self.workers[e.wid]["stopping"] = True
                    self.deferred.append(ev.WorkerExited(e.wid, 0))
        elif isinstance(e, ev.KillWorker):
            if e.wid in self.workers and not self.workers[e.wid].get("killed"):
                self.workers[e.wid]["killed"] = True
                self.deferred.append(ev.WorkerExited(e.wid, -9))
        elif isinstance(e, ev.SetTimer):
            self.timers[e.key] = e.at
        elif isinstance(e, ev.CancelTimer):
            self.timers.pop(e.key, None)
        elif isinstance(e, (ev.SpoolHold, ev.SpoolPut)):
            self.spool[e.job_id] = "held" if isinstance(e, ev.SpoolHold) else "disk"
        elif isinstance(e, ev.SpoolAck):
            for job_id in e.job_ids:
                self.spool.pop(job_id, None)
        elif isinstance(e, ev.WriteClusterFile):
            return ev.FileWritten(e.sid, e.request, size=len(e.data))
        elif isinstance(e, ev.StopNode):
            self.stopped = True
        return None

    def settle(self) -> None:
        """Deliver what a real shell would see next: process exits, then due timers."""
        while self.deferred:
            event = self.deferred.pop(0)
            if isinstance(event, ev.WorkerExited):
                self.workers.pop(event.wid, None)
            if isinstance(event, ev.LinkFailed) and event.sid not in self.core.links:
                continue
            self.handle(event)

    def advance(self, seconds: float, ticking: bool = True, beating: bool = False) -> None:
        """Let time pass: due timers fire and, as in a live node, ticks come twice a second
        (``ticking=False``: the node was frozen that long, as by SIGSTOP)."""
        end = self.now + seconds
        while True:
            step = min(end, self.now + 0.5) if ticking else end
            for key, at in sorted(self.timers.items(), key=lambda kv: kv[1]):
                if at <= step and self.timers.get(key) == at:
                    del self.timers[key]
                    self.now = max(self.now, at)
                    self.handle(ev.TimerFired(key))
            self.now = step
            if beating:  # the schedulers keep sending heartbeats
                for sid, link in list(self.core.links.items()):
                    if link.welcomed:
                        self.message(sid, "HEARTBEAT")
            if ticking:
                self.handle(ev.Tick())
            self.settle()
            if self.now >= end:
                return

    # -- a scheduler's part ------------------------------------------------------------
    def beacon(self, sid: str = "s1", key: bytes = KEY, epoch: int = 1,
               endpoint: str = "tcp://192.0.2.1:5000") -> None:
        self.handle(ev.BeaconHeard(Beacon(sid, epoch, 1, endpoint, key, 2.0)))

    def link_up(self, sid: str = "s1", **welcome: Any) -> None:
        self.beacon(sid)
        self.message(sid, "WELCOME", {"sid": sid, "heartbeat": 2.0, **welcome})

    def message(self, sid: str, mtype: str, fields: dict[str, Any] | None = None,
                frames: list[Any] | None = None, labels: list[str] | None = None) -> Message:
        msg = new_message(mtype, fields, frames or [], labels)
        self.handle(ev.LinkMessage(sid, msg))
        return msg

    def setup(self, cluster_id: str = "c1", sid: str = "s1", files: list[tuple[str, bytes]] = (),
              **fields: Any) -> Message:
        specs = [{"name": name, "mode": 0o600} for name, _ in files]
        return self.message(sid, "SETUP", {"cluster_id": cluster_id, "kind": "function",
                                           "files": specs, **fields},
                            [b"blob", *(data for _, data in files)],
                            ["computation", *(["file"] * len(files))])

    def assign(self, job_id: str, attempt: int = 1, cluster_id: str = "c1", sid: str = "s1",
               **fields: Any) -> None:
        self.message(sid, "JOB_ASSIGN", {"cluster_id": cluster_id, "job_id": job_id,
                                         "attempt": attempt, **fields}, [b"args"], ["args"])

    # -- workers' part ------------------------------------------------------------------
    def workers_ready(self) -> None:
        for wid, worker in list(self.workers.items()):
            if not worker.get("ready") and not worker.get("killed"):
                worker["ready"] = True
                self.handle(ev.WorkerReady(wid))

    def busy(self) -> dict[str, int]:
        """job id -> the worker running it."""
        return {w["job"]["job_id"]: wid for wid, w in self.workers.items()
                if w["job"] is not None and not w.get("killed")}

    def finish(self, job_id: str, value: bytes = b"result") -> None:
        wid = self.busy()[job_id]
        job = self.workers[wid]["job"]
        self.workers[wid]["job"] = None
        self.handle(ev.WorkerResult(wid, {"status": "finished", "job_id": job_id,
                                          "attempt": job["attempt"], "start_time": 1.0,
                                          "end_time": 2.0, "labels": ["result"]}, [value]))

    # -- what was said --------------------------------------------------------------------
    def of_type(self, mtype: str, sid: str | None = None) -> list[Message]:
        return [m for s, m in self.sent if m.type == mtype and (sid is None or s == sid)]

    def results(self) -> dict[str, Message]:
        return {m.fields["job_id"]: m for m in self.of_type("JOB_RESULT")}


def ready_world(cpus: int = 2, **rules: Any) -> World:
    world = World(cpus, **rules)
    world.link_up()
    world.setup()
    world.workers_ready()
    return world


# -- links -------------------------------------------------------------------------------------

def test_a_trusted_beacon_opens_a_link_that_registers_with_ready() -> None:
    world = World()
    world.beacon()
    ready = world.of_type("READY")
    assert len(ready) == 1
    assert ready[0].fields["ip_addr"] == "192.0.2.9" and ready[0].fields["python"] == "3.11"
    assert ready[0].fields["batches"] is True  # it reads JOBS_ASSIGN
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0, "max_msg_size": 1 << 20})
    assert world.core.links["s1"].welcomed and world.core.links["s1"].max_msg_size == 1 << 20
    assert not world.core.links["s1"].batches  # a scheduler that did not say it reads JOBS_RESULT
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0, "batches": True})
    assert world.core.links["s1"].batches


def test_ready_is_retried_with_backoff_until_welcome_and_a_silent_scheduler_is_dropped() -> None:
    world = World()
    world.beacon()
    for _ in range(8):
        world.advance(5.0)
        world.handle(ev.Tick())
    assert len(world.of_type("READY")) >= 3
    world.advance(31.0)
    world.handle(ev.Tick())
    assert "s1" not in world.core.links and "s1" not in world.links


def test_a_live_link_sends_heartbeats_and_is_closed_when_the_scheduler_goes_silent() -> None:
    world = ready_world()
    for _ in range(3):
        world.advance(2.0)
        world.handle(ev.Tick())
    assert len(world.of_type("HEARTBEAT")) >= 2
    world.advance(11.0)
    world.handle(ev.Tick())
    assert "s1" not in world.core.links
    cluster = world.core.jobs.clusters["c1"]
    assert cluster.orphaned_since is not None  # kept for zombie_interval, in case it comes back


def test_a_scheduler_that_says_goodbye_is_not_reported_lost(caplog: Any) -> None:
    world = ready_world()
    world.message("s1", "DISCONNECT", {"reason": "the scheduler closed"})
    assert "s1" not in world.core.links
    assert not [r for r in caplog.records if "scheduler_lost" in r.getMessage()]


def test_an_untrusted_reload_closes_the_link() -> None:
    world = ready_world()
    world.handle(ev.Reload(frozenset({OTHER_KEY})))
    assert "s1" not in world.core.links


# -- setup ---------------------------------------------------------------------------------

def test_setup_answers_once_when_the_first_worker_is_ready() -> None:
    world = World()
    world.link_up()
    world.setup(files=[("data.txt", b"hello")])
    assert len(world.workers) == 2 and not world.of_type("SETUP_OK")
    world.workers_ready()
    assert len(world.of_type("SETUP_OK")) == 1


def test_a_refused_dest_path_fails_the_setup_and_every_job_with_the_reason() -> None:
    world = World()
    world.link_up()
    world.prepare_fails = "dest_path '../../x' is refused"
    world.setup(dest_path="../../x")
    fails = world.of_type("SETUP_FAIL")
    assert len(fails) == 1 and "../../x" in fails[0].fields["reason"]
    world.assign("j1")
    result = world.results()["j1"]
    assert result.fields["status"] == "terminated"
    assert "../../x" in result.fields["exception"]["message"]
    world.setup(dest_path="../../x")  # asked again: answered again
    assert len(world.of_type("SETUP_FAIL")) == 2


def test_setup_that_raises_fails_the_cluster_and_its_waiting_jobs() -> None:
    world = World()
    world.link_up()
    world.setup()
    world.assign("j1")
    wid = next(iter(world.workers))
    world.handle(ev.WorkerSetupFailed(wid, "setup raised ValueError: no data"))
    assert world.of_type("SETUP_FAIL")[0].fields["reason"] == "setup raised ValueError: no data"
    assert "no data" in world.results()["j1"].fields["exception"]["message"]
    world.settle()
    assert not world.core.jobs.running


def test_workers_that_die_before_setup_fail_the_cluster_after_three_tries() -> None:
    world = World(cpus=1)
    world.link_up()
    world.setup()
    world.assign("j1")
    for _ in range(3):
        wid = next(iter(world.workers))
        world.workers.pop(wid)
        world.handle(ev.WorkerExited(wid, 1))
    fail = world.of_type("SETUP_FAIL")
    assert len(fail) == 1 and "exit code 1" in fail[0].fields["reason"]
    assert world.results()["j1"].fields["status"] == "terminated"
    assert not world.workers  # no endless respawning


def test_another_python_minor_version_is_refused_naming_both() -> None:
    world = World()
    world.link_up()
    world.setup(python="3.10")
    reason = world.of_type("SETUP_FAIL")[0].fields["reason"]
    assert "Python 3.10" in reason and "Python 3.11" in reason
    assert not world.workers


def test_another_protocol_version_is_refused() -> None:
    world = World()
    world.link_up()
    world.setup(protocol="2.0")
    assert "protocol 2.0" in world.of_type("SETUP_FAIL")[0].fields["reason"]


def test_a_setup_whose_files_do_not_match_its_frames_is_refused() -> None:
    world = World()
    world.link_up()
    world.message("s1", "SETUP", {"cluster_id": "c1", "kind": "function",
                                  "files": [{"name": "a"}, {"name": "b"}]},
                  [b"blob", b"only one"], ["computation", "file"])
    assert "one file entry per file frame" in world.of_type("SETUP_FAIL")[0].fields["reason"]


def test_a_reconnected_scheduler_adopts_its_cluster_and_hears_what_runs_and_what_is_spooled() -> None:
    world = ready_world()
    world.assign("j1")
    world.assign("j2")
    world.finish("j1")
    world.setup()  # e.g. after the scheduler restarted
    ok = world.of_type("SETUP_OK")[-1]
    assert ok.fields["running"] == [["j2", 1]] and ok.fields["results"] == [["j1", 1]]


# -- jobs --------------------------------------------------------------------------------------

def test_jobs_run_on_idle_workers_and_results_are_held_until_acknowledged() -> None:
    world = ready_world()
    world.assign("j1")
    world.assign("j2")
    world.assign("j3")
    assert set(world.busy()) == {"j1", "j2"}  # 2 CPUs
    world.finish("j1")
    assert set(world.busy()) == {"j2", "j3"}
    assert world.spool["j1"] == "held"
    world.message("s1", "RESULT_ACK", {"job_ids": ["j1"]})
    assert "j1" not in world.spool and "j1" not in world.core.spooled


def test_unacknowledged_results_are_written_after_the_grace() -> None:
    world = ready_world()
    world.assign("j1")
    world.finish("j1")
    world.advance(SPOOL_GRACE + 0.1)
    assert world.core.spooled["j1"].held_since is None


def test_a_long_job_is_announced_a_short_one_is_not() -> None:
    world = ready_world()
    world.assign("short")
    world.finish("short")
    world.assign("long")
    world.advance(STARTED_DELAY * 2)
    started = world.of_type("JOB_STARTED")
    assert [m.fields["job_id"] for m in started] == ["long"]


def test_a_timeout_kills_the_job_and_says_so() -> None:
    world = ready_world()
    world.assign("j1", timeout=1.5)
    world.advance(1.6)
    result = world.results()["j1"]
    assert result.fields["exception"]["type"] == "TimeoutError"
    assert len(world.workers) == 2  # a fresh worker replaced the killed one


@pytest.mark.parametrize("ending", ["timeout", "cancel"])
def test_a_result_that_comes_after_the_kill_was_decided_loses_to_it(ending: str) -> None:
    """The worker finished just as its time ran out (or it was cancelled): the node already
    decided to kill it, so that decision is the answer, and the doomed worker gets no new job."""
    world = ready_world(cpus=1)
    world.assign("j1", timeout=1.5)
    wid = world.busy()["j1"]
    if ending == "timeout":
        key = next(k for k in world.timers if k[0] == "timeout")
        del world.timers[key]
        world.handle(ev.TimerFired(key))
    else:
        world.message("s1", "JOB_CANCEL", {"job_ids": ["j1"], "attempts": [1]})
    assert world.workers[wid]["killed"]  # the kill is on its way; the result arrives first
    world.workers[wid]["job"] = None
    world.handle(ev.WorkerResult(wid, {"status": "finished", "job_id": "j1", "attempt": 1,
                                       "start_time": 1.0, "end_time": 2.0, "labels": ["result"]},
                                 [b"late"]))
    world.assign("j2")
    assert world.workers[wid]["job"] is None, "a job was given to a worker being killed"
    world.settle()
    world.workers_ready()
    result = world.results()["j1"]
    if ending == "timeout":
        assert result.fields["status"] == "terminated"
        assert result.fields["exception"]["type"] == "TimeoutError"
    else:
        assert result.fields["status"] == "cancelled"
    assert Counter(m.fields["job_id"] for m in world.of_type("JOB_RESULT")) == {"j1": 1}
    world.finish("j2")
    assert world.results()["j2"].fields["status"] == "finished"


def test_start_times_sent_to_clients_are_wall_clock_times() -> None:
    """The core runs on a monotonic clock; what it tells clients is wall time."""
    world = ready_world()
    world.assign("j1", timeout=30.0)
    started_at = world.now
    world.advance(1.0)
    started = world.of_type("JOB_STARTED")[0]
    assert started.fields["start_time"] == pytest.approx(1e9 + started_at)
    world.message("s1", "JOB_CANCEL", {"job_ids": ["j1"], "attempts": [1]})
    world.settle()
    result = world.results()["j1"]
    assert result.fields["start_time"] == pytest.approx(1e9 + started_at)
    assert result.fields["end_time"] >= result.fields["start_time"]


def test_cancel_of_a_running_a_waiting_and_an_unknown_job_each_answer_once() -> None:
    world = ready_world(cpus=1)
    world.assign("run")
    world.assign("wait")
    world.message("s1", "JOB_CANCEL", {"job_ids": ["run", "wait", "ghost"], "attempts": [1, 1, 4]})
    world.settle()
    results = world.results()
    assert results["run"].fields["status"] == "cancelled"
    assert results["wait"].fields["status"] == "cancelled"
    assert results["ghost"].fields["status"] == "cancelled" and results["ghost"].fields["attempt"] == 4
    assert Counter(m.fields["job_id"] for m in world.of_type("JOB_RESULT")) == {"run": 1, "wait": 1, "ghost": 1}


def test_a_dead_worker_ends_its_job_with_the_exit_code() -> None:
    world = ready_world()
    world.assign("j1")
    wid = world.busy()["j1"]
    world.workers.pop(wid)
    world.handle(ev.WorkerExited(wid, -11))
    exc = world.results()["j1"].fields["exception"]
    assert exc["type"] == "WorkerDied" and "-11" in exc["message"]


def test_a_result_over_the_schedulers_limit_ends_the_job_with_payload_too_large() -> None:
    world = World()
    world.link_up(max_msg_size=200_000)
    world.setup()
    world.workers_ready()
    world.assign("big")
    world.finish("big", b"x" * 300_000)
    fields = world.results()["big"].fields
    assert fields["exception"]["type"] == "PayloadTooLarge"
    assert "300000 bytes" in fields["exception"]["message"]
    assert "s1" in world.core.links  # the link stays up


def test_file_put_is_answered_and_refused_for_an_unknown_cluster() -> None:
    world = ready_world()
    ok = world.message("s1", "FILE_PUT", {"cluster_id": "c1", "name": "in.txt"}, [b"data"], ["file"])
    bad = world.message("s1", "FILE_PUT", {"cluster_id": "nope", "name": "in.txt"}, [b"data"], ["file"])
    answers = {m.ref: m.type for _, m in world.sent if m.ref in (ok.mid, bad.mid)}
    assert answers == {ok.mid: "OK", bad.mid: "ERROR"}


def test_teardown_stops_workers_and_removes_the_directory_after_the_last() -> None:
    world = ready_world()
    world.message("s1", "TEARDOWN", {"cluster_id": "c1"})
    assert all(w["stopping"] for w in world.workers.values())
    world.settle()
    assert not world.core.jobs.retired and not world.workers


def test_a_spool_failure_is_reported_to_the_scheduler() -> None:
    world = ready_world()
    world.handle(ev.SpoolFailed("No space left on device"))
    alert = world.of_type("NODE_ALERT")
    assert len(alert) == 1 and "No space left" in alert[0].fields["reason"]


def test_terminate_kills_workers_says_goodbye_and_stops() -> None:
    world = ready_world()
    world.assign("j1")
    world.handle(ev.Terminate())
    assert world.of_type("DISCONNECT") and world.stopped
    assert all(w.get("killed") for w in world.workers.values())


# -- the property: every request gets exactly one answer ---------------------------------------

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("assign"), st.integers(0, 11)),
    st.tuples(st.just("cancel"), st.integers(0, 11)),
    st.tuples(st.just("finish"), st.integers(0, 11)),
    st.tuples(st.just("crash"), st.integers(0, 11)),
    st.tuples(st.just("ready"), st.just(0)),
    st.tuples(st.just("setup_fails"), st.just(0)),
    st.tuples(st.just("file"), st.just(0)),
    st.tuples(st.just("time"), st.sampled_from([0.005, 0.5, 2.0])),
    st.tuples(st.just("resetup"), st.just(0)),
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS, st.integers(1, 3))
def test_every_request_gets_exactly_one_answer(actions: list[tuple[str, Any]], cpus: int) -> None:
    world = World(cpus)
    world.link_up()
    setups = [world.setup()]
    files: list[Message] = []
    assigned: set[str] = set()
    for action, arg in actions:
        job_id = f"j{arg}"
        if action == "assign" and job_id not in assigned:
            assigned.add(job_id)
            world.assign(job_id, timeout=1.0 if arg % 3 == 0 else None)
        elif action == "cancel" and job_id in assigned:
            world.message("s1", "JOB_CANCEL", {"job_ids": [job_id], "attempts": [1]})
        elif action == "finish" and job_id in world.busy():
            world.finish(job_id)
        elif action == "crash" and world.workers:
            wid = sorted(world.workers)[arg % len(world.workers)]
            world.workers.pop(wid)
            world.handle(ev.WorkerExited(wid, -9))
        elif action == "ready":
            world.workers_ready()
        elif action == "setup_fails":
            starting = [wid for wid, w in world.workers.items() if not w.get("ready")]
            if starting:
                world.handle(ev.WorkerSetupFailed(starting[0], "setup raised"))
        elif action == "file":
            files.append(world.message("s1", "FILE_PUT", {"cluster_id": "c1", "name": "f"}, [b"x"],
                                       ["file"]))
        elif action == "time":
            world.advance(arg, beating=True)
        elif action == "resetup":
            setups.append(world.setup())
        world.settle()
    # run what is left to the end: workers come up, running jobs finish, timers fire
    for _ in range(50):
        world.workers_ready()
        for job_id in list(world.busy()):
            world.finish(job_id)
        world.advance(1.0, beating=True)
        if not world.busy() and not any(c.pending for c in world.core.jobs.clusters.values()):
            break
    # each job assigned got one result; a cancel of a finished job adds none
    counts = Counter(m.fields["job_id"] for m in world.of_type("JOB_RESULT"))
    assert set(counts) == assigned and set(counts.values()) <= {1}, counts
    # each SETUP got one answer (a repeated SETUP is answered again)
    answers = world.of_type("SETUP_OK") + world.of_type("SETUP_FAIL")
    assert len(answers) == len(setups), (len(answers), len(setups))
    replies = Counter(m.ref for _, m in world.sent if m.ref in {f.mid for f in files})
    assert all(replies[f.mid] == 1 for f in files)


def test_a_frozen_node_drops_its_queued_jobs_and_registers_again() -> None:
    world = ready_world(cpus=1)
    world.assign("running")
    world.assign("queued-1")
    world.assign("queued-2")
    assert set(world.busy()) == {"running"}
    readies = len(world.of_type("READY"))
    world.advance(12.0, ticking=False)  # SIGSTOP: the scheduler has declared the node lost
    world.finish("running")  # the first thing the node sees after SIGCONT: its worker is free
    assert world.busy() == {}  # nothing queued starts: it was given to other nodes meanwhile
    assert len(world.of_type("READY")) == readies + 1  # registers again
    world.setup()  # the scheduler sets the cluster up again
    ok = world.of_type("SETUP_OK")[-1]
    assert ok.fields["dropped"] == [["queued-1", 1], ["queued-2", 1]] and ok.fields["running"] == []
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0})
    world.assign("queued-1", attempt=2)  # run once, where the scheduler says
    assert set(world.busy()) == {"queued-1"}


def test_a_short_stall_fences_nothing() -> None:
    world = ready_world(cpus=1)
    world.assign("a")
    world.assign("b")
    world.advance(2.5, ticking=False)
    world.finish("a")
    assert set(world.busy()) == {"b"}


# -- forged beacons ----------------------------------------------------------------------------

def flood(world: World, per_second: int, seconds: float, real_every: float | None) -> float | None:
    """Forged beacons (a trusted key, dead endpoints, a fresh id each) at ``per_second``, and a
    real scheduler's beacon every ``real_every`` s; returns when the real one was dialed."""
    step = 1.0 / per_second
    next_real = 0.0
    start = world.now
    dialed_at = None
    n = 0
    while world.now - start < seconds:
        n += 1
        world.dead.add(f"tcp://192.0.2.66:{1000 + n % 60000}")
        world.beacon(f"forged-{n}", endpoint=f"tcp://192.0.2.66:{1000 + n % 60000}")
        if real_every is not None and world.now - start >= next_real:
            next_real += real_every
            world.beacon("real", endpoint="tcp://192.0.2.1:5000")
        if dialed_at is None and "real" in world.dialed:
            dialed_at = world.now - start
        world.now += step
        world.settle()
        if int((world.now - start) / 0.5) != int((world.now - start - step) / 0.5):
            world.handle(ev.Tick())
    return dialed_at


def test_a_flood_of_forged_beacons_does_not_keep_a_real_scheduler_from_being_dialed() -> None:
    for rate in (20, 1000):
        world = World()
        flood(world, rate, 2.0, None)  # the flood is on before the real client starts
        when = flood(world, rate, 3.0, 0.1)  # then it beacons ten times a second
        assert when is not None and when < 1.5, (rate, when)
        world.message("real", "WELCOME", {"sid": "real", "heartbeat": 2.0})
        pending = [lk for lk in world.core.links.values() if not lk.welcomed]
        assert len(pending) <= 16


def test_a_linked_scheduler_is_not_disturbed_by_a_flood() -> None:
    world = ready_world()
    flood(world, 1000, 2.0, None)
    assert world.core.links["s1"].welcomed
    world.assign("j1")
    assert "j1" in world.busy()


def test_several_jobs_in_one_message_run_as_if_each_had_come_alone() -> None:
    world = ready_world(cpus=2)
    world.message("s1", "JOBS_ASSIGN", {"jobs": [["c1", "j1", 1, None, 1, "7"], ["c1", "j2", 2, 5.0, 1],
                                                 ["c9", "j3", 1, None, 0], ["c1", "j4", 1, None, 0]]},
                  [b"a1", b"a2"], ["args", "args"])
    busy = world.busy()
    assert set(busy) == {"j1", "j2"}  # two CPUs: j4 waits, j3's cluster is unknown here
    assert world.workers[busy["j2"]]["job"]["attempt"] == 2
    assert world.workers[busy["j1"]]["job"]["label"] == "7"  # the user's id, for GRID_JOB_ID
    world.finish("j1")
    world.finish("j2")
    world.finish("j4")
    assert {m.fields["job_id"]: m.fields["status"] for m in world.of_type("JOB_RESULT")} == {
        "j1": "finished", "j2": "finished", "j4": "finished", "j3": "terminated"}  # as alone


def test_a_batch_whose_frames_do_not_add_up_is_refused_whole() -> None:
    world = ready_world(cpus=2)
    world.message("s1", "JOBS_ASSIGN", {"jobs": [["c1", "j1", 1, None, 2]]}, [b"a1"], ["args"])
    assert world.busy() == {}
    assert "add up" in world.of_type("ERROR")[0].fields["reason"]
