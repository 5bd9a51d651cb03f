"""Jobs ahead (daemons/node/jobs.py, claims.py): a worker of a short-job cluster holds a few jobs
behind the one it runs, and nothing is lost, run twice or left waiting when one is cancelled,
times out, is fenced or its worker dies.

The shell here models a worker as a real one behaves: its pipe is a FIFO of job records, it
claims a job (by sequence number, unless the node took it back) before it runs it, and it
writes a job's result before it claims the next.  Tests step it by hand to reach each race.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridlib.daemons.node import events as ev
from gridlib.daemons.node.jobs import AHEAD_BYTES, LOOKAHEAD, SHORT_JOB
from tests.unit.node.test_core import World


class AheadWorld(World):
    """World whose workers have pipes, claims and revokes."""

    def __init__(self, cpus: int = 1, **rules: Any) -> None:
        super().__init__(cpus, **rules)
        self.runs: list[str] = []  # every job a worker started, in order (a job twice: a bug)

    def perform(self, e: Any) -> Any:
        if isinstance(e, ev.SpawnWorker):
            self.workers[e.wid] = {"cluster": e.cluster_id, "job": None, "stopping": False,
                                   "pipe": [], "claimed": 0, "revoked": 0, "kept": 0}
            return None
        if isinstance(e, ev.WorkerSend) and e.kind == "job":
            if e.wid in self.workers:
                self.workers[e.wid]["pipe"].append(dict(e.fields))
            return None
        if isinstance(e, ev.RevokeAhead):
            worker = self.workers.get(e.wid)
            if worker is None:
                return None
            worker["revoked"] = max(worker["revoked"], e.upto)
            worker["kept"] = e.keep
            return ev.AheadRevoked(e.wid, worker["claimed"], e.upto, e.why)
        return super().perform(e)

    def grant(self, depth: int = 4) -> None:
        """The scheduler grants ``depth`` (it may grant less than the node asked for)."""
        asks = self.of_type("LOOKAHEAD")
        assert asks and asks[-1].fields == {"cluster_id": "c1", "depth": LOOKAHEAD}
        self.message("s1", "LOOKAHEAD_OK", {"cluster_id": "c1", "depth": depth})

    def step(self, wid: int) -> str | None:
        """The worker claims the next job in its pipe it may run (skipping taken-back ones)."""
        worker = self.workers[wid]
        assert worker["job"] is None, "a worker runs one job at a time"
        while worker["pipe"]:
            fields = worker["pipe"].pop(0)
            seq = fields["seq"]
            if seq <= worker["revoked"] and seq != worker["kept"]:
                continue
            worker["claimed"] = seq
            worker["job"] = fields
            self.runs.append(fields["job_id"])
            return str(fields["job_id"])
        return None

    def done(self, wid: int) -> None:
        """The worker writes its job's result (the node reads it now)."""
        job = self.workers[wid]["job"]
        self.finish(job["job_id"])

    def read_late(self, wid: int, job_id: str) -> None:
        """The node reads a result its worker wrote before it claimed the job it runs now."""
        self.handle(ev.WorkerResult(wid, {"status": "finished", "job_id": job_id, "attempt": 1,
                                          "labels": ["result"]}, [b"r"]))

    def run_all(self, limit: int = 1000) -> None:
        """Every live worker runs what it holds, until nothing is left anywhere."""
        for _ in range(limit):
            moved = False
            for wid in list(self.workers):
                worker = self.workers.get(wid)
                if worker is None or worker.get("killed") or not worker.get("ready"):
                    continue
                if worker["job"] is None and self.step(wid) is None:
                    continue
                self.done(wid)
                moved = True
            self.settle()
            self.workers_ready()
            if not moved:
                return
        raise AssertionError("the jobs did not drain")

    def pipe_of(self, wid: int) -> list[str]:
        return [f["job_id"] for f in self.workers[wid]["pipe"]]


def run_to_the_end_each_once(world: AheadWorld, count: int) -> None:
    """Run every job left; then j0 .. j<count-1> have each ended, and each ran exactly once."""
    world.run_all()
    assert set(world.results()) == {f"j{i}" for i in range(count)}
    assert all(world.runs.count(f"j{i}") == 1 for i in range(count))


def short_world(jobs: int = 8, cpus: int = 1, grant: bool = True, timeouts: dict[int, float] | None = None,
                **welcome: Any) -> tuple[AheadWorld, int]:
    """A node whose cluster ran one short job (j0) and holds ``jobs`` more (``timeouts``: the
    time limits of some, by number)."""
    world = AheadWorld(cpus)
    world.link_up(**({"lookahead": True} | welcome))
    world.setup()
    world.workers_ready()
    for i in range(jobs + 1):
        world.assign(f"j{i}", **({"timeout": timeouts[i]} if timeouts and i in timeouts else {}))
    wid = next(iter(world.workers))
    assert world.step(wid) == "j0"
    world.done(wid)  # ran in no time: short
    if grant:
        world.grant()
    return world, wid


def test_jobs_ahead_wait_until_the_scheduler_grants_them() -> None:
    world, wid = short_world(grant=False)
    assert world.pipe_of(wid) == ["j1"]  # one job, as before: nothing granted yet
    world.grant()
    assert world.pipe_of(wid) == ["j1", "j2", "j3", "j4", "j5"]
    world.run_all()
    assert world.runs == [f"j{i}" for i in range(9)]
    assert set(world.results()) == {f"j{i}" for i in range(9)}
    assert world.core.jobs.running == 0


def test_a_full_grant_fills_each_pipe_to_the_depth_and_no_further_than_the_byte_limit() -> None:
    world, wid = short_world(jobs=3 * LOOKAHEAD, grant=False)
    world.grant(LOOKAHEAD)
    assert len(world.pipe_of(wid)) == 1 + LOOKAHEAD
    world.run_all()
    big = AheadWorld(1)
    big.link_up(lookahead=True)
    big.setup()
    big.workers_ready()
    for i in range(10):
        big.message("s1", "JOB_ASSIGN", {"cluster_id": "c1", "job_id": f"b{i}", "attempt": 1},
                    [b"x" * (AHEAD_BYTES // 3 - 100)], ["args"])
    wid = next(iter(big.workers))
    big.step(wid)
    big.done(wid)
    big.grant(LOOKAHEAD)
    assert len(big.pipe_of(wid)) == 1 + 3  # its job, and three jobs' worth of the byte limit
    big.run_all()
    assert set(big.results()) == {f"b{i}" for i in range(10)}


def test_an_older_scheduler_is_not_asked_and_its_node_hands_one_job_at_a_time() -> None:
    world, wid = short_world(grant=False, lookahead=None)
    assert not world.of_type("LOOKAHEAD")
    world.run_all()
    assert set(world.results()) == {f"j{i}" for i in range(9)}


def test_long_jobs_get_no_jobs_ahead() -> None:
    world = AheadWorld(1)
    world.link_up(lookahead=True)
    world.setup()
    world.workers_ready()
    for i in range(4):
        world.assign(f"j{i}")
    wid = next(iter(world.workers))
    world.step(wid)
    world.now += 10 * SHORT_JOB
    world.done(wid)
    assert not world.of_type("LOOKAHEAD")
    assert world.pipe_of(wid) == ["j1"]


def test_a_job_ahead_starts_its_timers_when_it_becomes_the_workers_job() -> None:
    world, wid = short_world(jobs=2, timeouts={1: 5, 2: 5})
    assert world.pipe_of(wid) == ["j1", "j2"]
    assert [k[2] for k in world.timers if k[0] == "timeout"] == ["j1"]  # j2 has not started
    world.step(wid)
    world.done(wid)
    assert [k[2] for k in world.timers if k[0] == "timeout"] == ["j2"]


def test_a_job_ahead_reports_under_its_own_id_once_it_is_the_workers_job() -> None:
    world, wid = short_world()
    world.step(wid)
    world.done(wid)  # j1 ended; j2 is the worker's job now
    assert world.step(wid) == "j2"
    world.handle(ev.WorkerReport(wid, "provisional", {"job_id": "j2", "attempt": 1}, [b"half"]))
    world.handle(ev.WorkerReport(wid, "provisional", {"job_id": "j3", "attempt": 1}, [b"?"]))
    assert [m.fields["job_id"] for m in world.of_type("JOB_PROVISIONAL")] == ["j2"]
    assert [m.fields["job_id"] for m in world.of_type("JOB_STARTED")] == ["j2"]  # running: said first
    world.run_all()
    assert set(world.results()) == {f"j{i}" for i in range(9)}


def test_a_cancelled_job_ahead_is_taken_back_before_it_starts_and_the_rest_still_run() -> None:
    world, wid = short_world()
    assert world.step(wid) == "j1"
    world.message("s1", "JOB_CANCEL", {"job_ids": ["j3"]})
    assert world.results()["j3"].fields["status"] == "cancelled"
    world.run_all()
    assert "j3" not in world.runs
    assert sorted(world.runs) == sorted(f"j{i}" for i in range(9) if i != 3)
    assert len(world.runs) == len(set(world.runs))
    assert {k: m.fields["status"] for k, m in world.results().items() if k != "j3"} == \
        {f"j{i}": "finished" for i in range(9) if i != 3}


def test_a_cancelled_job_ahead_the_worker_already_claimed_is_killed_as_it_becomes_its_job() -> None:
    world, wid = short_world()
    world.step(wid)  # j1 ends: its result is in the pipe, not read yet ...
    written = world.workers[wid]["job"]
    world.workers[wid]["job"] = None
    assert world.step(wid) == "j2"  # ... and the worker has claimed j2
    world.message("s1", "JOB_CANCEL", {"job_ids": ["j2"]})
    assert "j2" not in world.results() and not world.workers[wid].get("killed")
    world.read_late(wid, written["job_id"])
    assert world.workers[wid].get("killed")  # j2 is its job now, and cancelled: stopped
    world.settle()
    assert world.results()["j2"].fields["status"] == "cancelled"
    world.workers_ready()
    run_to_the_end_each_once(world, 9)


def test_a_time_limit_kills_the_worker_and_its_jobs_ahead_run_on_a_new_one() -> None:
    world, wid = short_world(jobs=5, timeouts={1: 2})
    assert world.step(wid) == "j1"  # and it hangs
    world.advance(3)
    assert world.results()["j1"].fields["exception"]["type"] == "TimeoutError"
    assert wid not in world.workers  # killed; its jobs ahead were taken back first
    world.workers_ready()
    run_to_the_end_each_once(world, 6)


def test_a_time_limit_spares_a_worker_that_has_already_moved_past_the_job() -> None:
    world, wid = short_world(jobs=4, timeouts={1: 2})
    world.step(wid)  # j1 ends just as its time runs out: its result is still in the pipe ...
    finished = world.workers[wid]["job"]
    world.workers[wid]["job"] = None
    assert world.step(wid) == "j2"  # ... and the worker has claimed j2
    world.now += 3
    world.handle(ev.TimerFired(("timeout", wid, "j1")))
    assert not world.workers[wid].get("killed")  # j2 runs on
    world.read_late(wid, finished["job_id"])
    assert world.results()["j1"].fields["exception"]["type"] == "TimeoutError"
    run_to_the_end_each_once(world, 5)


def test_jobs_ahead_of_a_job_that_turns_out_slow_go_to_another_worker() -> None:
    world, _ = short_world(cpus=2)
    first = max(world.workers, key=lambda w: len(world.pipe_of(w)))
    second = next(w for w in world.workers if w != first)
    slow = world.step(first)  # it turns out slow; the jobs ahead wait behind it in the pipe
    behind = world.pipe_of(first)
    assert behind
    world.advance(0.05)  # past STARTED_DELAY: announced, and the ones behind it taken back
    assert world.of_type("JOB_STARTED")[-1].fields["job_id"] == slow
    for _ in range(20):  # the other worker runs everything else meanwhile
        if world.workers[second]["job"] is None and world.step(second) is None:
            break
        world.done(second)
    assert set(behind) <= set(world.results())
    assert slow not in world.results()
    world.done(first)
    run_to_the_end_each_once(world, 9)


def test_a_dead_worker_puts_its_jobs_ahead_back_in_line() -> None:
    world, wid = short_world()
    assert world.step(wid) == "j1"
    world.handle(ev.WorkerExited(wid, -11))
    del world.workers[wid]
    assert world.results()["j1"].fields["exception"]["type"] == "WorkerDied"
    world.workers_ready()
    run_to_the_end_each_once(world, 9)


def test_a_fenced_node_takes_back_its_jobs_ahead_and_reports_them_dropped() -> None:
    world, wid = short_world()
    assert world.step(wid) == "j1"
    world.advance(10, ticking=False)  # frozen past the scheduler's patience
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0, "lookahead": True})
    world.setup()  # the scheduler asks what the node holds
    ok = world.of_type("SETUP_OK")[-1].fields
    dropped = {job_id for job_id, _ in ok["dropped"]}
    assert dropped == {f"j{i}" for i in range(2, 9)}  # ahead and waiting alike: not started
    assert [j for j, _ in ok["running"]] == ["j1"]
    world.done(wid)
    world.run_all()
    assert world.runs == ["j0", "j1"]  # nothing it gave back ran here


def test_a_new_registration_forgets_the_grant_and_asks_again() -> None:
    world, wid = short_world()
    world.run_all()
    world.advance(10, ticking=False)
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0, "lookahead": True})
    cluster = world.core.jobs.clusters["c1"]
    assert cluster.ahead == 0 and not cluster.ahead_asked


def test_a_scheduler_that_forgot_the_node_gets_its_jobs_ahead_back_in_line() -> None:
    world, wid = short_world()
    assert world.step(wid) == "j1"
    # the scheduler restarted and no longer knows the node: it registers anew
    world.message("s1", "ERROR", {"code": 409, "reason": "node has not sent READY"})
    world.message("s1", "WELCOME", {"sid": "s1", "heartbeat": 2.0, "lookahead": True})
    held = world.core.jobs.clusters["c1"]
    assert not world.core.jobs.workers[wid].ahead  # taken back: not counted by the new record
    assert [j.job_id for j in held.pending][:4] == ["j2", "j3", "j4", "j5"]
    world.done(wid)
    run_to_the_end_each_once(world, 9)


def test_jobs_ahead_are_reported_as_running_to_a_scheduler_that_asks() -> None:
    world, wid = short_world()
    world.step(wid)
    world.setup()  # the same cluster again (the scheduler reconnected)
    held = [j for j, _ in world.of_type("SETUP_OK")[-1].fields["running"]]
    assert held == [f"j{i}" for i in range(1, 9)]  # its job, the four ahead, the ones waiting
    assert world.core.jobs.jobs_of("c1")[:5] == [[f"j{i}", 1] for i in range(1, 6)]


def test_a_teardown_takes_back_jobs_ahead_and_stops_the_worker() -> None:
    world, wid = short_world()
    world.step(wid)
    world.message("s1", "TEARDOWN", {"cluster_id": "c1"})
    assert world.workers[wid]["revoked"] >= 5 and world.workers[wid]["stopping"]
    world.done(wid)
    assert world.step(wid) is None  # nothing after j1 starts


ACTIONS = st.lists(st.tuples(st.sampled_from(["step", "done", "cancel", "timeout", "die", "exit"]),
                             st.integers(0, 11)), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS, st.integers(1, 2))
def test_every_job_ends_once_and_none_runs_twice_whatever_the_workers_do(actions: Any, cpus: int) -> None:
    world, _ = short_world(jobs=11, cpus=cpus)
    for action, n in actions:
        job_id = f"j{n}"
        live = [w for w, s in world.workers.items() if s.get("ready") and not s.get("killed")]
        if not live:
            world.settle()
            world.workers_ready()
            continue
        wid = live[n % len(live)]
        worker = world.workers[wid]
        if action == "step" and worker["job"] is None:
            world.step(wid)
        elif action == "done" and worker["job"] is not None:
            world.done(wid)
        elif action == "cancel":
            world.message("s1", "JOB_CANCEL", {"job_ids": [job_id]})
        elif action == "timeout" and worker["job"] is not None:
            running = world.core.jobs.workers[wid].job
            if running is not None:
                running.timeout = 1.0
                world.handle(ev.TimerFired(("timeout", wid, running.job_id)))
        elif action == "die":
            world.workers[wid]["killed"] = True
            world.deferred.append(ev.WorkerExited(wid, -9))
        world.settle()
        world.workers_ready()
        assert len(world.runs) == len(set(world.runs)), world.runs
    world.run_all()
    results = world.results()
    assert set(results) == {f"j{i}" for i in range(12)}
    assert len(world.of_type("JOB_RESULT")) == 12  # one answer each
    for job_id, msg in results.items():
        if msg.fields["status"] == "cancelled" or msg.fields.get("exception", {}).get("type") in (
                "TimeoutError", "WorkerDied"):
            continue
        assert job_id in world.runs and msg.fields["status"] == "finished"
    assert len(world.runs) == len(set(world.runs))
    assert world.core.jobs.running == 0
