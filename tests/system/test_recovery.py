"""Results that are never lost (docs/reliability.md §3-§5): a node restarted with spooled results, and a
client killed with SIGKILL whose jobs are recovered from its journal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import NodeProcess, wait_for

# 0.5 s heartbeats and a node that gives up on its client after 5 s: run alone (make test)
pytestmark = pytest.mark.serial

CLIENT = '''
import json, sys, time
import gridlib

port, marker, journal, count = int(sys.argv[1]), sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
first = float(sys.argv[5])

def work(i, seconds):
    import time
    time.sleep(seconds)
    with open({marker!r}, "a") as f:
        f.write(f"{{i}}\\n")
    return i * 10

cluster = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{{port}}"], reentrant=True,
                             pulse_interval=0.5, recover_file=journal)
jobs = [cluster.submit_job_id(f"job-{{i}}", i, first if i == 0 else 0.3) for i in range(count)]
done = 0
while True:
    finished = sum(j.finished for j in jobs)
    running = [j.id for j in jobs if j.status == gridlib.JobStatus.Running]
    print(json.dumps({{"finished": finished, "running": running}}), flush=True)
    if finished == count:
        break
    time.sleep(0.1)
print(json.dumps({{"results": [[j.id, j.result, j.attempts, int(j.status)] for j in jobs]}}), flush=True)
cluster.close()
'''


def start_client(tmp_path: Path, port: int, journal: str, count: int,
                 first: float = 2.0) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "ran.txt"
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(marker=str(marker)))
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(marker), journal, str(count),
                             str(first)],
                            stdout=subprocess.PIPE, text=True)
    return proc, marker


def read_until(proc: subprocess.Popen[str], predicate, timeout: float = 120) -> dict:  # type: ignore[no-untyped-def]
    box: dict = {}

    def got() -> bool:
        line = proc.stdout.readline() if proc.stdout else ""
        if line:
            box.update(json.loads(line))
        return bool(box) and predicate(box)

    assert wait_for(got, timeout, interval=0), box
    return box


def _spooled_bytes(spool: Path) -> int:
    """Bytes in the node's result log (its segments are emptied once every result is released)."""
    return sum(p.stat().st_size for p in spool.glob("*.spool"))


def test_node_restarted_with_a_spooled_result_delivers_it_once(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1", "--zombie-interval", "5")
    client, marker = start_client(tmp_path, node.port, "", 1, first=4.0)
    try:
        read_until(client, lambda s: s.get("running") == ["job-0"])
        client.send_signal(signal.SIGSTOP)  # the scheduler (in the client) freezes
        spool = node.prefix / "spool"
        # the node gives up on its silent scheduler, then the job finishes: spooled, unsent
        assert wait_for(lambda: "event=scheduler_lost" in node.log(), 60)
        assert not marker.exists()
        assert wait_for(lambda: marker.exists() and _spooled_bytes(spool) > 0, 60)
        node.restart()  # a new node process, same id and spool
        assert "event=spool_loaded results=1" in node.log()
        client.send_signal(signal.SIGCONT)
        final = read_until(client, lambda s: "results" in s)
        assert final["results"] == [["job-0", 0, 1, int(JobStatus.Finished)]]
        assert marker.read_text() == "0\n"  # it ran once: the result came from the spool
        assert client.wait(30) == 0
        # acknowledged (or, if the client closed before the node set up again, expired)
        assert wait_for(lambda: _spooled_bytes(spool) == 0, 30)
    finally:
        if client.poll() is None:
            client.send_signal(signal.SIGCONT)
            client.kill()
            client.wait()
        node.stop()
    assert not node.orphans


def test_client_killed_and_every_job_recovered(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "2")
    journal = str(tmp_path / "journal.sqlite")
    count = 12
    client, marker = start_client(tmp_path, node.port, journal, count)
    try:
        # kill -9 once some results are in and job-0 (2 s) still runs
        read_until(client, lambda s: s.get("finished", 0) >= 3 and "job-0" in s.get("running", []))
        client.kill()
        client.wait()
        jobs = gridlib.recover_jobs(journal, timeout=120, pulse_interval=0.5)
        assert [j.id for j in jobs] == [f"job-{i}" for i in range(count)]
        assert [j.args[0] for j in jobs] == list(range(count))
        assert all(j.status == JobStatus.Finished for j in jobs), [(j.id, j.status) for j in jobs]
        assert [j.result for j in jobs] == [i * 10 for i in range(count)]
        ran = marker.read_text().split()
        assert ran.count("0") == 1  # job-0 kept running on the node and was adopted
        assert sorted(set(ran)) == sorted(str(i) for i in range(count))
        assert gridlib.recover_jobs(journal, timeout=10) == []  # the journal is closed now
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        node.stop()
    assert not node.orphans
