"""Two clusters share one node through a shared scheduler (``gridlib scheduler``).

A ``SharedJobCluster`` has the ``JobCluster`` API, but its jobs go to a
``gridlib scheduler`` daemon, which queues the jobs of every client program
of the team and runs them on the nodes it manages. Here two clusters are open
at once: ``squares`` runs a batch of jobs, ``urgent`` submits low-priority
jobs and then high-priority ones while the node is busy; the high-priority
jobs jump the scheduler's queue.

Run: ``.venv/bin/python examples/shared_cluster.py``

On one machine and with no set-up, this starts a ``gridlib scheduler`` and a
2-CPU ``gridlib node`` itself, on free ports of 127.0.0.1 (the scheduler
announces itself to the node with ``--node 127.0.0.1:PORT``), and stops both by
PID at the end. All three use your own key, so they trust each other.

Against a real team scheduler, drop ``start_daemons`` and name it:

    gridlib.SharedJobCluster(compute, scheduler="sched.example.org",
                             scheduler_key="<gridlib keys show, on the scheduler host>")

(client port 51350 unless ``"host:port"``). The scheduler must list your key
in its ``clients/`` allowlist (``gridlib keys allow KEY --as client``, then
SIGHUP it). Your program only dials out to the scheduler, so it may be behind
NAT. See docs/operations.md, "Running a shared scheduler for a team".
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gridlib


def square(n):
    import time
    time.sleep(0.1)
    return n * n


def label(name):
    import time
    time.sleep(0.2)
    return name


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(path, text, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{path.name}: no {text!r}; the log says:\n{path.read_text(errors='replace')}")


def start_daemons(workdir):
    """``gridlib scheduler`` and ``gridlib node`` on free loopback ports: (processes, address)."""
    env = dict(os.environ)
    env.pop("GRIDLIB_SECRET", None)  # the clients below use your own key
    client_port, node_port, beacon_port = free_port(), free_port(), free_port()
    # python -m gridlib.daemons.scheduler is `gridlib scheduler`, without relying on PATH
    commands = {
        "scheduler": [sys.executable, "-m", "gridlib.daemons.scheduler", "--host", "127.0.0.1",
                      "--port", str(client_port), "--node-port", str(node_port),
                      "--node", f"127.0.0.1:{beacon_port}", "--policy", "fifo"],
        "node": [sys.executable, "-m", "gridlib.daemons.node", "--host", "127.0.0.1",
                 "--port", str(beacon_port), "--cpus", "2", "--name", "example-node",
                 "--dest-path-prefix", str(workdir / "node")],
    }
    started = {"scheduler": "event=scheduler_started", "node": "event=node_started"}
    procs = []
    try:
        for name, cmd in commands.items():
            log_path = workdir / f"{name}.log"
            with open(log_path, "wb") as log:  # the daemon's log (key=value lines)
                proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_for_line(log_path, started[name], proc)
    except BaseException:
        stop_daemons(procs)
        raise
    return procs, f"127.0.0.1:{client_port}"


def stop_daemons(procs):
    """SIGTERM each daemon by PID; SIGKILL any that is still there 15 s later."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_node(cluster, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cluster.status().nodes:
        if time.monotonic() > deadline:
            raise SystemExit("the node never joined: see scheduler.log and node.log")
        time.sleep(0.05)


def main():
    with tempfile.TemporaryDirectory(prefix="gridlib-shared-example-") as tmp:
        procs, scheduler = start_daemons(Path(tmp))
        try:
            with gridlib.SharedJobCluster(square, scheduler=scheduler) as squares, \
                    gridlib.SharedJobCluster(label, scheduler=scheduler) as urgent:
                wait_for_node(squares)
                wait_for_node(urgent)
                batch = [squares.submit(n) for n in range(8)]  # keeps the node's 2 CPUs busy
                low = [urgent.submit_job((f"low-{i}",)) for i in range(4)]
                high = [urgent.submit_job((f"HIGH-{i}",), priority=10) for i in range(2)]
                print("squares:", [job() for job in batch])
                for job in low + high:
                    job()
                order = sorted(low + high, key=lambda j: j.start_time)
                print("urgent ran in this order (priority 10 before 0, among jobs still queued):",
                      ", ".join(job.result for job in order))
                for job in batch + low + high:
                    assert job.status == gridlib.JobStatus.Finished, (job.id, job.exception)
                print("\nsquares:")
                squares.print_status()
                print("\nurgent:")
                urgent.print_status()
        finally:
            stop_daemons(procs)


if __name__ == "__main__":
    main()
