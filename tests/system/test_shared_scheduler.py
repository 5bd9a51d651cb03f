"""The shared scheduler daemon with SharedJobCluster clients (docs/operations.md §12)."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

import gridlib
from gridlib import JobStatus
from gridlib.protocol.codec import decode, encode, new_message, split_envelope
from gridlib.protocol.keys import allow_key, load_keypair, write_keypair
from gridlib.protocol.sockets import curve_client_socket
from tests.helpers import NodeProcess, SchedulerProcess, wait_for


def nap(seconds):  # type: ignore[no-untyped-def]
    import time
    time.sleep(seconds)
    return seconds


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[tuple[SchedulerProcess, NodeProcess]]:
    node = NodeProcess(tmp_path, "--cpus", "2")  # first: the scheduler is told its port
    scheduler = SchedulerProcess(tmp_path, nodes=[node.address])
    yield scheduler, node
    node.stop()
    scheduler.stop()
    assert not node.orphans


def test_shared_cluster_runs_jobs_with_the_jobcluster_api(grid) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    seen = []
    with gridlib.SharedJobCluster(lambda x: x * x, scheduler=scheduler.address,
                                  job_status=lambda j: seen.append(j.id)) as cluster:
        jobs = [cluster.submit(i) for i in range(10)]
        assert [j(timeout=60) for j in jobs] == [i * i for i in range(10)]
        assert sorted(seen) == list(range(10))
        assert cluster.status().nodes and cluster.status().nodes[0].jobs_done == 10


def test_two_client_processes_share_the_nodes(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    scheduler, _ = grid
    script = tmp_path / "client.py"
    script.write_text(
        "import sys, gridlib\n"
        "with gridlib.SharedJobCluster(lambda x, t=sys.argv[2]: f'{t}{x}', scheduler=sys.argv[1]) as c:\n"
        "    print(','.join(j() for j in [c.submit(i) for i in range(5)]))\n")
    procs = [subprocess.Popen([sys.executable, str(script), scheduler.address, tag],
                              stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["a0,a1,a2,a3,a4", "b0,b1,b2,b3,b4"]
    assert all(p.returncode == 0 for p in procs)


def test_gridlib_scheduler_in_the_environment_names_the_grid(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """As RAY_ADDRESS does: a program and the CLI find the shared scheduler from the environment."""
    import os
    import subprocess
    import sys

    scheduler, _ = grid
    script = tmp_path / "client.py"
    script.write_text("import gridlib\n"
                      "with gridlib.SharedJobCluster(lambda x: x + 1) as c:\n"
                      "    print(c.submit(41)(timeout=60))\n")
    env = {**os.environ, "GRIDLIB_SCHEDULER": scheduler.address}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    status = subprocess.run([str(Path(sys.executable).parent / "gridlib"), "status", "--json"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0 and '"nodes"' in status.stdout, status.stderr
    bad = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         check=False, env={**env, "GRIDLIB_SCHEDULER_KEY": "not-a-key"})
    assert bad.returncode != 0 and "GRIDLIB_SCHEDULER_KEY" in bad.stderr


def queued(cluster: gridlib.SharedJobCluster) -> int:
    """Jobs of ``cluster`` waiting at the scheduler, as it reports them."""
    answer = cluster._conn.request(new_message("STATUS"))
    return sum(c["queued"] for c in answer.fields["clusters"] if c["cluster_id"] == cluster.cluster_id)


def run_order(tmp_path: Path, policy: str) -> list[str]:
    """Three clusters queue jobs while the 1-CPU node is busy; the order they run in."""
    node = NodeProcess(tmp_path, "--cpus", "1")
    scheduler = SchedulerProcess(tmp_path, "--policy", policy, nodes=[node.address])
    clusters = []
    try:
        blocker = gridlib.SharedJobCluster(nap, scheduler=scheduler.address)
        clusters.append(blocker)
        for _ in range(3):
            clusters.append(gridlib.SharedJobCluster(lambda t: (t, __import__("time").sleep(0.05))[0],
                                                     scheduler=scheduler.address))
        a, b, c = clusters[1:]
        for cl in clusters:
            assert wait_for(lambda cl=cl: bool(cl.status().nodes), 30)
        first = blocker.submit(1.5)
        assert wait_for(lambda: first.status == JobStatus.Running, 30)
        pad = blocker.submit(0.0)  # takes the node's one prefetch slot: the rest wait in order
        assert wait_for(lambda: queued(blocker) == 0 and len(blocker._jobs) == 2, 30)
        jobs = []
        for cl, args, priority in ((a, "a0", 0), (a, "a1", 0), (b, "b0", 0), (b, "b1", 0),
                                   (c, "c0", 0), (a, "a2", 5)):
            jobs.append(cl.submit_job((args,), priority=priority))
            # clients have their own connections: let each submission land before the next
            want = sum(1 for j in jobs if j in cl._jobs.values())
            assert wait_for(lambda cl=cl, n=want: queued(cl) == n, 30)
        for job in [first, pad, *jobs]:
            job(timeout=60)
        return [j.result for j in sorted(jobs, key=lambda j: j.start_time)]
    finally:
        for cl in clusters:
            cl.close(terminate=True)
        node.stop()
        scheduler.stop()


@pytest.mark.parametrize("policy, expected", [
    ("fifo", ["a2", "a0", "a1", "b0", "b1", "c0"]),   # earliest submitted first; priority first
    ("early", ["a2", "a0", "a1", "b0", "b1", "c0"]),  # earliest created cluster first
    ("fair", ["a2", "b0", "c0", "a0", "b1", "a1"]),   # least recently served cluster first
])
def test_policies_order_the_queue(tmp_path: Path, policy: str, expected: list[str]) -> None:
    assert run_order(tmp_path, policy) == expected


def test_exclusive_cluster_runs_alone(grid) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    with gridlib.SharedJobCluster(nap, scheduler=scheduler.address, exclusive=True) as alone, \
            gridlib.SharedJobCluster(nap, scheduler=scheduler.address) as other:
        for cl in (alone, other):
            assert wait_for(lambda cl=cl: bool(cl.status().nodes), 30)
        mine = [alone.submit(0.3) for _ in range(3)]
        # (two clients: the scheduler must have the exclusive cluster's jobs before the others')
        assert wait_for(lambda: any(j.status == gridlib.JobStatus.Running for j in mine), 60)
        theirs = [other.submit(0.1) for _ in range(3)]
        for job in mine + theirs:
            job(timeout=60)
        assert max(j.end_time for j in mine) <= min(j.start_time for j in theirs)


def make_keys(root: Path) -> dict[str, Path]:
    """Key directories for a scheduler, a node and two clients that trust as they should."""
    dirs = {name: root / name for name in ("sched", "node", "alice", "bob")}
    pairs = {name: write_keypair(path, "identity") for name, path in dirs.items()}
    for client in ("alice", "bob"):
        allow_key(dirs["sched"], "client", pairs[client].public, client)
    (dirs["sched"] / "nodes").mkdir()
    (dirs["sched"] / "nodes" / "node.key").write_text((dirs["node"] / "identity.key").read_text())
    (dirs["node"] / "clients").mkdir()
    (dirs["node"] / "clients" / "sched.key").write_text((dirs["sched"] / "identity.key").read_text())
    return dirs


def test_a_client_sees_and_cancels_only_its_own_jobs(tmp_path: Path) -> None:
    dirs = make_keys(tmp_path / "keys")
    node = NodeProcess(tmp_path, "--keys", str(dirs["node"]), "--cpus", "1")
    scheduler = SchedulerProcess(tmp_path, "--keys", str(dirs["sched"]), nodes=[node.address])
    sched_key = load_keypair(dirs["sched"] / "identity.key_secret").public
    try:
        with gridlib.SharedJobCluster(nap, scheduler=scheduler.address, keys=str(dirs["alice"]),
                                      scheduler_key=sched_key) as alice:
            job = alice.submit(1.0)
            assert wait_for(lambda: job.status == JobStatus.Running, 60)
            bob = load_keypair(dirs["bob"] / "identity.key_secret")
            ctx = zmq.Context()
            sock = curve_client_socket(ctx, zmq.DEALER, bob, sched_key)
            sock.connect(f"tcp://{scheduler.address}")
            sock.send_multipart([b"", *encode(new_message("HELLO", {"name": "bob"}))])
            sock.send_multipart([b"", *encode(new_message("JOB_CANCEL", {"job_ids": [job.uid]}))])
            sock.send_multipart([b"", *encode(new_message("STATUS"))])
            replies = {}
            deadline = time.monotonic() + 30
            while len(replies) < 3 and time.monotonic() < deadline:
                if sock.poll(1000):
                    msg = decode(split_envelope(sock.recv_multipart())[1])
                    replies[msg.type] = msg
            sock.close(0)
            ctx.destroy(linger=0)
            assert replies["ERROR"].fields["code"] == 404
            assert replies["STATUS"].fields["clusters"] == []  # alice's cluster is not bob's
            assert job(timeout=60) == 1.0 and job.status == JobStatus.Finished
        stranger = tmp_path / "keys" / "stranger"
        write_keypair(stranger, "identity")
        started = time.monotonic()
        with pytest.raises(gridlib.AuthenticationFailed, match="refused this client's key") as refused:
            gridlib.SharedJobCluster(nap, scheduler=scheduler.address, keys=str(stranger),
                                     scheduler_key=sched_key)
        assert "gridlib keys allow" in str(refused.value)
        assert time.monotonic() - started < 8  # at the handshake, not at the HELLO's 10 s timeout
        # a client that has the scheduler's key wrong is told to check it, also at once
        with pytest.raises(gridlib.AuthenticationFailed, match="scheduler_key"):
            gridlib.SharedJobCluster(nap, scheduler=scheduler.address, keys=str(dirs["alice"]),
                                     scheduler_key=load_keypair(dirs["bob"] / "identity.key_secret").public)
    finally:
        node.stop()
        scheduler.stop()


@pytest.mark.serial  # 300 jobs through a kill -9 and a restart, 0.5 s heartbeats
def test_scheduler_killed_and_restarted_with_its_journal(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "2")
    scheduler = SchedulerProcess(tmp_path, "--heartbeat", "0.5", nodes=[node.address],
                                 journal=tmp_path / "journal.sqlite")
    finals: Counter[str] = Counter()
    lock = threading.Lock()

    def count(job):  # type: ignore[no-untyped-def]
        if job.status != JobStatus.ProvisionalResult:
            with lock:
                finals[job.uid] += 1

    try:
        with gridlib.SharedJobCluster(lambda i: (__import__("time").sleep(0.02), i)[1],
                                      scheduler=scheduler.address, job_status=count,
                                      pulse_interval=0.5) as cluster:
            jobs = [cluster.submit(i) for i in range(300)]
            assert wait_for(lambda: sum(j.finished for j in jobs) >= 40, 120)
            scheduler.kill()  # kill -9 with most jobs queued or running
            killed = time.monotonic()
            scheduler.restart()
            assert cluster.wait(240)
            print(f"restart to all done: {time.monotonic() - killed:.1f} s")
            assert [j.result for j in jobs] == list(range(300))
            assert all(j.status == JobStatus.Finished for j in jobs)
        assert len(finals) == 300 and set(finals.values()) == {1}
        assert "event=journal_restored clusters=1" in scheduler.log()
    finally:
        node.stop()
        scheduler.stop()


class CuttableProxy:
    """A TCP forwarder on loopback whose connections the test can cut."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns.clear()

    def close(self) -> None:
        self.running = False
        self.listener.close()
        self.cut()


def test_client_disconnect_and_reconnect_while_jobs_run(grid) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    proxy = CuttableProxy(scheduler.port)
    finals: Counter[str] = Counter()
    try:
        with gridlib.SharedJobCluster(nap, scheduler=f"127.0.0.1:{proxy.port}", pulse_interval=0.5,
                                      job_status=lambda j: finals.update([j.uid])) as cluster:
            jobs = [cluster.submit(0.2) for _ in range(20)]
            assert wait_for(lambda: sum(j.finished for j in jobs) >= 3, 60)
            proxy.cut()  # the network drops; libzmq reconnects through the proxy
            more = [cluster.submit(0.05) for _ in range(5)]
            for job in jobs + more:
                job(timeout=120)
            assert all(j.status == JobStatus.Finished for j in jobs + more)
        assert len(finals) == 25 and set(finals.values()) == {1}
    finally:
        proxy.close()


def test_the_scheduler_passes_payloads_without_unpickling_them(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    marker = tmp_path / "unpickled"

    class Canary:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    with gridlib.SharedJobCluster(nap, scheduler=scheduler.address, nodes=["192.0.2.1"]) as cluster:
        job = cluster.submit(Canary())  # no node of this cluster's: it stays at the scheduler
        assert wait_for(lambda: cluster._conn.request(new_message("STATUS")).fields["clusters"][0]["queued"] == 1, 30)
        assert not marker.exists()
        cluster.cancel(job)
        job(timeout=30)
    assert job.status == JobStatus.Cancelled and not marker.exists()
