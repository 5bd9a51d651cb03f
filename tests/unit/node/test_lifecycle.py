"""NodeLifecycle against a fake node: service hours, the SIGINT drain and --serve, with an
injected clock (no sockets, no processes)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from gridlib.daemons.node.lifecycle import ACK_WAIT, NodeLifecycle
from gridlib.daemons.node.service_hours import ServiceHours


@dataclass
class FakeExecutor:
    running: int = 0
    paused: bool = False
    idle: bool = True

    def pause(self, paused: bool) -> None:
        self.paused = paused

    def quiet(self) -> bool:
        return self.idle


@dataclass
class FakeNode:
    """What a NodeLifecycle steers (the core's LifecycleHost), recording what it was told."""

    jobs: FakeExecutor = field(default_factory=FakeExecutor)
    parent_pid: int = 0
    now: float = 0.0
    left: list[tuple[str, bool]] = field(default_factory=list)
    rejoined: int = 0
    unacked: int = 0
    stopped: bool = False

    def leave_grid(self, reason: str, kill: bool) -> None:
        self.left.append((reason, kill))

    def rejoin(self) -> None:
        self.rejoined += 1

    def unacked_results(self) -> int:
        return self.unacked

    def stop(self) -> None:
        self.stopped = True


class Clock:
    def __init__(self, hhmm: str) -> None:
        self.set(hhmm)

    def set(self, hhmm: str) -> None:
        hours, minutes = map(int, hhmm.split(":"))
        self.now = dt.datetime(2026, 11, 26, hours, minutes)

    def __call__(self) -> dt.datetime:
        return self.now


def make(hours: ServiceHours | None = None, clock: Clock | None = None,
         serve: int = 0) -> tuple[NodeLifecycle, FakeNode]:
    node = FakeNode()
    life = NodeLifecycle(node, hours, clock or Clock("12:00"), serve,  # type: ignore[arg-type]
                         logging.getLogger("test"))
    return life, node


DAY = ServiceHours.from_options("08:00", "17:00", "18:00")


def test_without_hours_the_node_always_serves() -> None:
    life, node = make()
    assert life.start() is True
    assert life.may_link("s", known=False) and life.admit_cluster("c") is None
    life.tick()
    assert not node.left and not node.stopped


def test_started_outside_service_it_stays_out_until_start() -> None:
    clock = Clock("03:00")
    life, node = make(DAY, clock)
    assert life.start() is False
    assert node.jobs.paused and not node.left  # never joined: nothing to leave
    assert not life.may_link("s", known=False)
    assert "not in service" in (life.admit_cluster("c") or "")
    clock.set("08:00")
    life.tick()
    assert node.rejoined == 1 and not node.jobs.paused and life.may_link("s", known=False)


def test_stop_drains_running_jobs_then_leaves_and_end_kills() -> None:
    clock = Clock("12:00")
    life, node = make(DAY, clock)
    life.start()
    node.jobs.running = 2
    clock.set("17:00")
    life.tick()
    assert life.draining and node.jobs.paused and not node.left
    assert not life.may_link("s", known=True)
    node.jobs.running = 0
    life.poke()
    life.settle()
    assert node.left == [("service stopped (--service-stop)", False)]
    clock.set("18:00")
    life.tick()
    assert node.left == [("service stopped (--service-stop)", False)]  # already out
    clock.set("08:00")
    life.tick()
    assert node.rejoined == 1 and life.accepting


def test_end_during_a_drain_kills_the_running_jobs() -> None:
    clock = Clock("16:59")
    life, node = make(DAY, clock)
    life.start()
    node.jobs.running = 1
    clock.set("17:30")
    life.tick()
    clock.set("18:00")
    life.tick()
    assert node.left == [("service ended (--service-end)", True)] and not life.draining


def test_a_drain_waits_for_acknowledgements_but_not_forever() -> None:
    life, node = make()
    node.now = 100.0
    life.start()
    node.unacked = 1
    node.jobs.idle = False  # workers still running their cleanup
    life.interrupt()
    assert life.draining and not node.left
    node.now += ACK_WAIT / 2
    life.tick()
    assert not node.left
    node.unacked = 0
    life.tick()
    assert node.left and not node.stopped
    node.jobs.idle = True
    life.tick()
    assert node.stopped
    life2, node2 = make()
    node2.now = 100.0
    life2.start()
    node2.unacked = 3
    life2.interrupt()
    node2.now += ACK_WAIT + 1
    life2.tick()
    assert node2.left  # the spool keeps what was not acknowledged


def test_a_second_interrupt_stops_at_once() -> None:
    life, node = make()
    life.start()
    node.jobs.running = 1
    life.interrupt()
    assert life.draining and not node.stopped
    life.interrupt()
    assert node.stopped and not node.left


def test_a_private_node_stops_at_the_first_interrupt() -> None:
    life, node = make()
    node.parent_pid = 1234
    life.start()
    life.interrupt()
    assert node.stopped


def test_an_interrupted_node_does_not_come_back_at_service_start() -> None:
    clock = Clock("03:00")
    life, node = make(DAY, clock)
    life.start()
    node.jobs.idle = False
    life.interrupt()
    clock.set("09:00")
    life.tick()
    assert node.rejoined == 0 and not node.stopped
    node.jobs.idle = True
    life.tick()
    assert node.stopped


def test_serve_takes_n_clusters_then_exits_when_they_are_gone() -> None:
    life, node = make(serve=2)
    life.start()
    for cluster_id in ("a", "b"):
        assert life.admit_cluster(cluster_id) is None
        life.cluster_added(cluster_id)
    assert "--serve" in (life.admit_cluster("c") or "")
    assert life.admit_cluster("a") is None  # set up again (resetup, reconnect): still one of the N
    life.cluster_added("a")
    assert not life.may_link("new", known=False) and life.may_link("old", known=True)
    node.jobs.idle = False
    life.tick()
    assert not node.stopped
    node.jobs.idle = True
    life.tick()
    assert node.stopped
