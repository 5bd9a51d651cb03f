"""The node's result log: every unacknowledged result survives a restart, nothing else does."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gridlib.daemons.node import spool as spool_module
from gridlib.daemons.node.spool import ResultSpool


def put(spool: ResultSpool, job_id: str, cluster: str = "c1", data: bytes = b"value") -> None:
    spool.put(cluster, job_id, {"job_id": job_id, "status": "finished", "attempt": 1},
              [data, b"out", b"err"], ["result", "stdout", "stderr"])


def log_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.spool"))


def test_unacknowledged_results_survive_a_restart(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    put(spool, "j1", data=b"one")
    put(spool, "j2", data=memoryview(b"two"))  # frames may be any buffer
    put(spool, "j3", cluster="c2")
    spool.ack_many(["j2", "unknown"])
    spool.close()

    again = ResultSpool(tmp_path)
    assert sorted(r.job_id for r in again.all()) == ["j1", "j3"]
    assert again.get("j1") is not None and again.get("j1").frames() == [b"one", b"out", b"err"]
    assert again.get("j1").labels == ["result", "stdout", "stderr"]
    assert [r.job_id for r in again.of_cluster("c2")] == ["j3"]
    again.drop_cluster("c2")
    assert "j3" not in again and len(again) == 1


def test_files_are_private_and_emptied_when_nothing_is_pending(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    put(spool, "j1")
    put(spool, "j2")
    files = list(tmp_path.glob("*.spool"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    spool.ack("j1")
    assert log_bytes(tmp_path) > 0
    spool.ack("j2")
    assert log_bytes(tmp_path) == 0
    spool.close()
    assert len(ResultSpool(tmp_path)) == 0


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    put(spool, "j1")
    put(spool, "j2", data=b"x" * 1000)
    spool.close()
    (segment,) = tmp_path.glob("*.spool")
    os.truncate(segment, segment.stat().st_size - 10)  # a crash in the middle of the last write

    again = ResultSpool(tmp_path)
    assert [r.job_id for r in again.all()] == ["j1"]
    put(again, "j3")  # new results go to a fresh segment, after the torn one
    again.close()
    assert sorted(r.job_id for r in ResultSpool(tmp_path).all()) == ["j1", "j3"]


def test_garbage_in_the_directory_does_not_stop_the_node(tmp_path: Path) -> None:
    (tmp_path / "00000001.spool").write_bytes(b"\x00\x00\x00\x05hello" + os.urandom(64))
    (tmp_path / "notes.spool").write_bytes(b"not a segment")
    spool = ResultSpool(tmp_path)
    assert len(spool) == 0
    put(spool, "j1")
    assert spool.get("j1") is not None


def test_a_result_run_again_replaces_the_earlier_one(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    put(spool, "j1", data=b"first")
    put(spool, "j1", data=b"second")
    spool.close()
    again = ResultSpool(tmp_path)
    assert len(again) == 1 and again.get("j1").frames()[0] == b"second"


def test_old_segments_go_once_their_results_are_released(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "_SEGMENT_BYTES", 200)
    spool = ResultSpool(tmp_path)
    for i in range(10):
        put(spool, f"j{i}", data=b"x" * 100)
    assert len(list(tmp_path.glob("*.spool"))) > 3
    spool.ack_many([f"j{i}" for i in range(9)])
    # only the segment holding j9 and the current one are left
    assert len(list(tmp_path.glob("*.spool"))) <= 2
    spool.close()
    again = ResultSpool(tmp_path)
    assert [r.job_id for r in again.all()] == ["j9"]


def test_held_results_touch_the_disk_only_if_unacknowledged_for_long(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.hold("c1", "fast", {"job_id": "fast"}, [b"1"], ["result"], now=10.0)
    spool.hold("c1", "slow", {"job_id": "slow"}, [memoryview(b"2")], ["result"], now=10.02)
    assert len(spool) == 2 and "fast" in spool and spool.get("slow").frames() == [b"2"]
    assert [r.job_id for r in spool.of_cluster("c1")] == ["fast", "slow"]
    spool.ack("fast")  # acknowledged in time: never written
    assert log_bytes(tmp_path) == 0
    assert spool.write_held(before=10.01) == 1  # "slow" is not old enough yet
    assert log_bytes(tmp_path) == 0
    assert spool.write_held(before=10.05) == 0
    assert log_bytes(tmp_path) > 0
    spool.close()
    again = ResultSpool(tmp_path)
    assert [r.job_id for r in again.all()] == ["slow"] and again.get("slow").frames() == [b"2"]


def test_closing_writes_what_is_held(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    spool.hold("c1", "j1", {"job_id": "j1"}, [b"x"], ["result"], now=1.0)
    spool.close()
    assert [r.job_id for r in ResultSpool(tmp_path).all()] == ["j1"]


def test_held_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "HELD_BYTES", 250)
    spool = ResultSpool(tmp_path)
    for i in range(5):
        spool.hold("c1", f"j{i}", {"job_id": f"j{i}"}, [b"x" * 100], ["result"], now=float(i))
    # the oldest went to disk; what is held fits the budget; nothing was lost
    assert log_bytes(tmp_path) > 0
    assert len(spool) == 5 and all(spool.get(f"j{i}").frames() == [b"x" * 100] for i in range(5))
    spool.ack_many([f"j{i}" for i in range(5)])
    assert len(spool) == 0 and log_bytes(tmp_path) == 0
