"""Run a program once on every node, e.g. to install or update software (ports dispy's ``node_update.py``).

The computation is a program, not a function: ``JobCluster(path)`` ships the
file to each node and every job runs it there (a ``.py`` file with the
node's Python, anything else as an executable), with the job's arguments as
its command-line arguments; ``job.result`` is its exit code and
``job.stdout``/``job.stderr`` are bytes. To run it once per node rather than
once per CPU, the program waits for the nodes to join and then submits one
job to each node of ``cluster.status().nodes`` with ``cluster.submit_node``.

The program here is a small Python script written into a temporary
directory (dispy ships a separate ``node_update_script.py``); pass your own
as the first argument. The second argument is how many nodes to wait for
(default 1; with ``nodes=None`` there is one, this host's).

Run: ``.venv/bin/python examples/node_update.py [PROGRAM [NODES]]``
(embedded local grid).
"""

import sys
import tempfile
import threading
import time
from pathlib import Path

import gridlib
from gridlib import JobStatus, NodeStatus

UPDATE_SCRIPT = """\
import os, platform, sys, time
time.sleep(0.3)  # stands for the real update
print(f"{os.environ.get('GRID_NODE_NAME')}: Python {platform.python_version()} "
      f"on {platform.system()}, updated at {time.strftime('%H:%M:%S')} with {sys.argv[1:]}")
sys.exit(0)
"""


def wait_for_nodes(cluster, joined, count, timeout=30.0):
    """The nodes of ``cluster.status()`` once ``count`` of them are ready (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while len(cluster.status().nodes) < count and time.monotonic() < deadline:
        joined.wait(0.2)
        joined.clear()
    return [node for node in cluster.status().nodes if node.status == NodeStatus.Initialized]


def update_nodes(program, count):
    joined = threading.Event()

    def cluster_status(status, node, job):
        if status == NodeStatus.Initialized:
            print(f"node {node.name} ({node.ip_addr}) joined with {node.avail_cpus} CPUs")
            joined.set()

    with gridlib.JobCluster(str(program), cluster_status=cluster_status) as cluster:
        nodes = wait_for_nodes(cluster, joined, count)
        if not nodes:
            raise SystemExit("no node joined within 30 s")
        jobs = [cluster.submit_node(node, "--check", "--quiet") for node in nodes]  # one per node
        updated = 0
        for job in jobs:
            exit_code = job()  # waits; a program's result is its exit code
            if job.status == JobStatus.Finished and exit_code == 0:
                updated += 1
                print(f"node {job.node}: {job.stdout.decode().strip()}")
            else:
                print(f"node {job.node} failed ({job.status.name}, exit code {exit_code}): "
                      f"{job.stderr.decode(errors='replace').strip() or job.exception}")
        cluster.print_status()
    print(f"updated {updated} of {len(nodes)} nodes")


def main():
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    if len(sys.argv) > 1:
        update_nodes(Path(sys.argv[1]), count)
        return
    with tempfile.TemporaryDirectory(prefix="gridlib-node-update-") as tmp:
        program = Path(tmp) / "node_update_script.py"
        program.write_text(UPDATE_SCRIPT)
        update_nodes(program, count)


if __name__ == "__main__":
    main()
