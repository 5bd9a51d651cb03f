"""When a node takes work: service hours, the SIGINT drain and ``--serve``.

A node that is not in service is *out of the grid*, the way it would be if
it were switched off: it has sent ``DISCONNECT`` to every scheduler it
served, tore its clusters down, ignores beacons and does not dial its
``--scheduler`` -- until service starts again, when it answers the next
beacon (or dials out) and registers afresh, like a node just started.  The
schedulers need no notion of service hours.

Getting out is either a *drain* or a *leave*:

- drain (``--service-stop``, SIGINT): jobs that have not started stay
  unstarted, beacons are ignored, running jobs finish and their results are
  sent; once none runs and every result is acknowledged (or ``ACK_WAIT``
  has passed: the spool keeps them), the node leaves.
- leave (``--service-end``, end of a drain): ``DISCONNECT`` to each
  scheduler, every cluster torn down, running jobs killed.  The schedulers
  settle the node's unfinished jobs as for a lost node: a reentrant
  cluster's run again elsewhere, others are reported ``Abandoned``.

``--serve N`` counts clusters set up here; after the N-th the node takes no
other cluster and exits once the N are closed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

from .service_hours import Phase, ServiceHours

__all__ = ["NodeLifecycle", "ACK_WAIT", "LifecycleHost"]

ACK_WAIT = 5.0  # seconds a drained node waits for the last acknowledgements before leaving


class _Jobs(Protocol):
    @property
    def running(self) -> int: ...

    def pause(self, paused: bool) -> None: ...

    def quiet(self) -> bool: ...


class LifecycleHost(Protocol):
    """What the lifecycle needs of the node core it steers."""

    @property
    def jobs(self) -> _Jobs: ...

    @property
    def parent_pid(self) -> int: ...

    @property
    def stopped(self) -> bool: ...

    @property
    def now(self) -> float: ...

    def leave_grid(self, reason: str, kill: bool) -> None: ...

    def rejoin(self) -> None: ...

    def unacked_results(self) -> int: ...

    def stop(self) -> None: ...


class NodeLifecycle:
    """Whether the node takes links, clusters and jobs now; drains and leaves."""

    def __init__(self, node: LifecycleHost, hours: ServiceHours | None,
                 clock: Callable[[], dt.datetime], serve: int, log: logging.Logger) -> None:
        self.node, self.hours, self.clock, self.serve, self.log = node, hours, clock, serve, log
        self.phase: Phase | None = None
        self.accepting = True  # new links, clusters and job starts
        self.draining = False
        self.out = False  # out of the grid (left, or never joined yet)
        self.exit_requested = False  # SIGINT: exit once out of the grid
        self.served: set[str] = set()  # ids of the clusters set up here (--serve counts them)
        self._reason = ""
        self._ack_deadline: float | None = None
        self._ignored: set[str] = set()  # schedulers whose beacons were ignored (logged once)
        self._poked = False

    # -- questions the service asks ------------------------------------------
    def start(self) -> bool:
        """Initial phase; True when the node may dial its ``--scheduler`` now."""
        if self.hours is None:
            return True
        self.phase = self.hours.phase(self.clock())
        self.log.info("event=service_hours %s phase=%s", self.hours.describe(), self.phase.value)
        if self.phase is not Phase.SERVING:
            self.accepting, self.out = False, True
            self.node.jobs.pause(True)
            self.log.info("event=out_of_service next_start=%s", self.hours.next_start())
        return self.accepting

    def may_link(self, sid: str, known: bool) -> bool:
        """Whether a beacon from scheduler ``sid`` may open (or renew) a link."""
        if self.accepting and (known or not self._serve_full()):
            return True
        if sid not in self._ignored and len(self._ignored) < 1024:  # bounded: sids are cheap
            self._ignored.add(sid)
            reason = "serve_limit" if self.accepting else "out_of_service"
            self.log.info("event=beacon_ignored scheduler=%s reason=%s", sid, reason)
        return False

    def admit_cluster(self, cluster_id: str) -> str | None:
        """Why a cluster this node does not run now is refused, or None to set it up."""
        if not self.accepting:
            return "the node is not in service (draining, or outside its service hours)"
        if self._serve_full() and cluster_id not in self.served:
            return f"the node has served the {self.serve} clusters it was started for (--serve)"
        return None

    def cluster_added(self, cluster_id: str) -> None:
        full = self._serve_full()
        self.served.add(cluster_id)
        if self._serve_full() and not full:
            self.log.info("event=serve_limit_reached clusters=%d", len(self.served))

    def _serve_full(self) -> bool:
        return self.serve > 0 and len(self.served) >= self.serve

    # -- events ---------------------------------------------------------------
    def interrupt(self) -> None:
        """SIGINT: drain, then exit; a second one (or a client's private node): stop now."""
        if self.exit_requested or self.node.parent_pid:
            self.log.warning("event=stopping_now reason=interrupt")
            self.node.stop()
            return
        self.exit_requested = True
        self.log.warning("event=interrupted running=%d hint='running jobs finish, then the node "
                         "exits; interrupt again (or SIGTERM) to stop at once'",
                         self.node.jobs.running)
        if self.out:
            return  # tick() stops the node once its workers are gone
        if not self.draining:
            self._begin_drain("interrupted")

    def poke(self) -> None:
        """A result was sent or acknowledged: a drain may be complete (the core calls
        :meth:`settle` once the event that poked is handled)."""
        self._poked = self.draining

    def settle(self) -> None:
        if self._poked:
            self._poked = False
            self._check_drain()

    def tick(self) -> None:
        if self.hours is not None:
            self._follow_hours(self.hours)
        self._check_drain()
        jobs = self.node.jobs
        if self.node.stopped:
            return
        if self.exit_requested and self.out and jobs.quiet():
            self.log.info("event=drained_exit")
            self.node.stop()
        elif self._serve_full() and jobs.quiet():
            self.log.info("event=serve_done clusters=%d", len(self.served))
            self.node.stop()

    # -- transitions ------------------------------------------------------------
    def _follow_hours(self, hours: ServiceHours) -> None:
        phase = hours.phase(self.clock())
        if phase is self.phase:
            return
        self.log.info("event=service_phase phase=%s was=%s", phase.value,
                      self.phase.value if self.phase else "-")
        self.phase = phase
        if phase is Phase.ENDED:
            self._leave("service ended (--service-end)", kill=True)
        elif self.exit_requested:
            return  # interrupted: exiting, whatever the hours say
        elif phase is Phase.STOPPED:
            if not self.out and not self.draining:
                self._begin_drain("service stopped (--service-stop)")
        else:
            self._resume()

    def _begin_drain(self, reason: str) -> None:
        self.accepting, self.draining, self._reason = False, True, reason
        self.node.jobs.pause(True)
        self.log.info("event=draining reason=%r running=%d", reason, self.node.jobs.running)
        self._check_drain()

    def _check_drain(self) -> None:
        if not self.draining or self.node.jobs.running:
            return
        unacked = self.node.unacked_results()
        if unacked:
            now = self.node.now
            if self._ack_deadline is None:
                self._ack_deadline = now + ACK_WAIT
            if now < self._ack_deadline:
                return
            self.log.warning("event=drain_ack_timeout results=%d hint='kept in the spool'", unacked)
        self._leave(self._reason, kill=False)

    def _leave(self, reason: str, kill: bool) -> None:
        self.accepting, self.draining, self._ack_deadline = False, False, None
        self.node.jobs.pause(True)
        if not self.out:
            self.out = True
            self.node.leave_grid(reason, kill)

    def _resume(self) -> None:
        self.accepting, self.draining, self._ack_deadline = True, False, None
        self._ignored.clear()
        self.node.jobs.pause(False)
        if self.out:
            self.out = False
            self.node.rejoin()
        self.log.info("event=service_started")
