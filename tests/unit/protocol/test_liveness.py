"""Peer liveness and reconnect backoff (docs/reliability.md §2), with a fake clock."""

from __future__ import annotations

import pytest

from gridlib.protocol.liveness import Backoff, Liveness, LivenessPolicy, LivenessTracker

T0 = 1000.0


@pytest.fixture
def tracker() -> LivenessTracker:
    t = LivenessTracker(LivenessPolicy())  # 2 s interval, suspect 3, lost 5
    t.touch("node-a", T0)
    return t


def test_defaults_match_the_design() -> None:
    assert LivenessPolicy().to_map() == {"heartbeat": 2.0, "suspect_after": 3, "lost_after": 5}


@pytest.mark.parametrize(
    ("silent_for", "expected"),
    [
        (0.0, Liveness.ALIVE),
        (2.0, Liveness.ALIVE),
        (5.99, Liveness.ALIVE),
        (6.0, Liveness.SUSPECT),  # 3 intervals
        (9.99, Liveness.SUSPECT),
        (10.0, Liveness.LOST),  # 5 intervals
        (3600.0, Liveness.LOST),
    ],
)
def test_state_after_silence(tracker: LivenessTracker, silent_for: float, expected: Liveness) -> None:
    assert tracker.state("node-a", T0 + silent_for) is expected


def test_any_message_brings_a_suspect_peer_back(tracker: LivenessTracker) -> None:
    assert tracker.state("node-a", T0 + 8) is Liveness.SUSPECT

    tracker.touch("node-a", T0 + 8)

    assert tracker.state("node-a", T0 + 8) is Liveness.ALIVE
    assert tracker.state("node-a", T0 + 13.9) is Liveness.ALIVE
    assert tracker.state("node-a", T0 + 18) is Liveness.LOST


def test_an_unknown_or_forgotten_peer_is_lost(tracker: LivenessTracker) -> None:
    assert tracker.state("never-seen", T0) is Liveness.LOST

    tracker.forget("node-a")

    assert tracker.state("node-a", T0) is Liveness.LOST
    assert tracker.lost(T0 + 100) == []
    tracker.forget("node-a")  # forgetting twice is harmless


def test_lost_lists_only_peers_silent_for_five_intervals(tracker: LivenessTracker) -> None:
    tracker.touch("node-b", T0 + 4)

    assert tracker.lost(T0 + 9.99) == []
    assert tracker.lost(T0 + 10) == ["node-a"]
    assert sorted(tracker.lost(T0 + 14)) == ["node-a", "node-b"]
    assert tracker.lost(T0 + 10) == ["node-a"]  # lost peers stay tracked until forgotten


def test_policy_knobs_are_honoured() -> None:
    tracker = LivenessTracker(LivenessPolicy(interval=0.5, suspect_after=2, lost_after=4))
    tracker.touch(("relay", "node"), T0)

    assert tracker.state(("relay", "node"), T0 + 0.9) is Liveness.ALIVE
    assert tracker.state(("relay", "node"), T0 + 1.0) is Liveness.SUSPECT
    assert tracker.state(("relay", "node"), T0 + 2.0) is Liveness.LOST


# -- backoff -------------------------------------------------------------------------

NOMINAL = [1, 2, 4, 8, 16, 32, 32, 32]


def test_backoff_doubles_from_1_to_32_seconds_within_25_percent() -> None:
    for _ in range(200):
        backoff = Backoff()
        for nominal in NOMINAL:
            assert nominal * 0.75 <= backoff.next() <= nominal * 1.25


def test_backoff_is_jittered() -> None:
    firsts = [Backoff().next() for _ in range(300)]

    assert min(firsts) < 0.9
    assert max(firsts) > 1.1
    assert len(set(firsts)) > 250  # reconnecting nodes do not stampede in lockstep


def test_backoff_reset_starts_again_at_one_second() -> None:
    backoff = Backoff()
    for _ in range(10):
        backoff.next()

    backoff.reset()

    assert 0.75 <= backoff.next() <= 1.25
    assert 1.5 <= backoff.next() <= 2.5


def test_backoff_without_jitter_is_exact() -> None:
    backoff = Backoff(first=0.5, cap=3.0, jitter=0.0)

    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
