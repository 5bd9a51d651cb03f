"""A node the client cannot reach dials the client instead (ports dispy's ``sshportfw.py``).

dispy reaches a node in a cloud or behind NAT through an SSH tunnel
(``ssh -R 9700:localhost:9700 NODE``) and ``dispynode --ext_host``. In
gridlib the node makes the connection itself, so nothing needs to be
forwarded to the node:

- the client listens on a fixed port: ``JobCluster(compute, nodes=[],
  scheduler_port=PORT)`` (``nodes=[]``: announce to no one, and start no
  private node);
- the node dials it: ``gridlib node --port 0 --scheduler CLIENT:PORT
  --scheduler-key KEY`` (``--port 0``: it listens for no announcements;
  ``--scheduler-key``: the client's public key from ``gridlib keys show``,
  which may be left out when the node trusts exactly one key).

The link is CurveZMQ-encrypted and both sides check each other's key, so
unlike dispy's plain TCP, no SSH tunnel is needed for privacy. If the client
is behind NAT itself, forward its ``scheduler_port`` to it; see
docs/operations.md section 5.

On one machine and with no set-up, this example starts such a node itself
on 127.0.0.1 (it uses your own key, as the client does) and stops it by PID
at the end. On a real cloud VM run the ``gridlib node`` command above there,
with the client's public address.

Run: ``.venv/bin/python examples/cloud_node.py``.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import gridlib
from gridlib import NodeStatus


def compute(n):
    # executed on the node that dialed in
    import time

    import gridlib

    time.sleep(n / 10)
    return gridlib.job_context().node_name, n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dialing_node(port, workdir):
    """``gridlib node --port 0 --scheduler 127.0.0.1:PORT``, logging to a file: the process."""
    env = dict(os.environ)
    env.pop("GRIDLIB_SECRET", None)  # node and client use your own key
    # python -m gridlib.daemons.node is `gridlib node`, without relying on PATH
    cmd = [sys.executable, "-m", "gridlib.daemons.node", "--port", "0",
           "--scheduler", f"127.0.0.1:{port}", "--cpus", "2", "--name", "cloud-node",
           "--dest-path-prefix", str(workdir / "node"), "--log-level", "warning"]
    with open(workdir / "node.log", "wb") as log:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    port = free_port()
    joined = threading.Event()

    def cluster_status(status, node, job):
        if status == NodeStatus.Initialized:
            print(f"node {node.name} dialed in from {node.ip_addr} with {node.cpus} CPUs")
            joined.set()

    with tempfile.TemporaryDirectory(prefix="gridlib-cloud-node-") as tmp:
        workdir = Path(tmp)
        # the client listens on 127.0.0.1 here; on a real network host="0.0.0.0" or its address
        with gridlib.JobCluster(compute, nodes=[], scheduler_port=port, host="127.0.0.1",
                                cluster_status=cluster_status) as cluster:
            node = start_dialing_node(port, workdir)
            try:
                if not joined.wait(30):
                    raise SystemExit("the node did not dial in within 30 s; its log:\n"
                                     + (workdir / "node.log").read_text(errors="replace"))
                jobs = [cluster.submit(n) for n in range(1, 7)]
                for job in jobs:
                    name, n = job()
                    print(f"job {job.id}: {n} computed on {name}")
                cluster.print_status()
            finally:
                cluster.close()  # before the node goes, so its jobs are not lost
                stop(node)
    print(f"{sum(job.status == gridlib.JobStatus.Finished for job in jobs)} jobs ran on a node "
          "that dialed in")


if __name__ == "__main__":
    main()
