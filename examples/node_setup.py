"""Per-node data: each node gets its own data file and setup arguments (NodeAllocate).

A ``NodeAllocate`` subclass decides, for every node the cluster meets, how
many CPUs to use, which files to send to that node only (``depends``) and what
``setup`` receives there (``setup_args``). Here each node gets one shard of a
list of numbers; ``setup`` loads the shard into a global once per worker
process; the jobs sum powers of that node's numbers; the client adds the
partial sums up and checks them.

Run: ``.venv/bin/python examples/node_setup.py``

The private node that ``JobCluster(nodes=None)`` starts takes no
``NodeAllocate``: allocation applies to the nodes named in ``nodes=``. So on
one machine this example starts two ``gridlib node`` daemons itself, on free
ports of 127.0.0.1, and stops them (by PID) at the end. They use your own key,
as the client does, so no key set-up is needed. On real machines, drop
``start_nodes`` and list your nodes instead, e.g.
``Shards("192.168.1.*")`` or ``Shards("10.0.0.0/24")``.
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
from gridlib import NodeAllocate, NodeStatus

NUMBERS = list(range(1, 1001))


class Shards(NodeAllocate):
    """Gives each node its own shard file and tells its setup which shard it has."""

    def __init__(self, host, port=None, workdir=".", shards=2, given=None):
        super().__init__(host, port)
        self.workdir, self.shards = Path(workdir), shards
        self.given = {} if given is None else given  # node name -> shard number (shared)

    def allocate(self, cluster, ip_addr, name, cpus, avail_info=None, platform=""):
        # runs in the client, once per node offered to this cluster
        if len(self.given) >= self.shards and name not in self.given:
            return 0  # every shard has a node already: refuse this one
        shard = self.given.setdefault(name, len(self.given))
        path = self.workdir / f"shard-{shard}.txt"  # one file per node...
        path.write_text("\n".join(str(n) for n in NUMBERS[shard::self.shards]))
        self.depends = [str(path)]  # ...sent to that node only
        self.setup_args = (path.name, shard)  # what setup() gets on that node
        return 1  # use one CPU of the node


def setup(filename, shard):
    # runs once in each worker process of a node, in the cluster's directory
    global numbers, shard_no
    with open(filename) as f:
        numbers = [int(line) for line in f]
    shard_no = shard
    return 0  # anything else (or an exception) means: do not use this node


def power_sum(power):
    # runs on a node: `numbers` and `shard_no` are the globals setup() set there
    return shard_no, len(numbers), sum(n**power for n in numbers)


def start_nodes(count, workdir):
    """``gridlib node`` daemons on free loopback ports: [(process, port)]."""
    env = dict(os.environ)
    env.pop("GRIDLIB_SECRET", None)  # the client below uses the user's own key
    nodes = []
    for i in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "gridlib.daemons.node", "--host", "127.0.0.1",
               "--port", str(port), "--cpus", "1", "--name", f"shard-node-{i}",
               "--dest-path-prefix", str(workdir / f"node-{i}"), "--log-level", "warning"]
        with open(workdir / f"node-{i}.log", "wb") as log:  # the daemons' logs
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        nodes.append((proc, port))
    return nodes


def node_logs(workdir):
    return "".join(p.read_text() for p in sorted(workdir.glob("node-*.log")))


def stop_nodes(nodes):
    for proc, _ in nodes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in nodes:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    with tempfile.TemporaryDirectory(prefix="gridlib-node-setup-") as tmp:
        workdir = Path(tmp)
        nodes = start_nodes(2, workdir)
        try:
            ports = [port for _, port in nodes]
            # A NodeAllocate names where to announce (host and port) and which nodes it
            # decides for: those whose address or name matches its host and, when it has
            # one, its port. One allocator per node here, sharing who got which shard.
            given = {}
            allocators = [Shards("127.0.0.1", port, workdir=workdir, shards=len(nodes), given=given)
                          for port in ports]
            ready = threading.Event()
            names = []

            def status(st, node, job):
                if st == NodeStatus.Initialized and node is not None:
                    names.append(node.name)
                    if len(names) == len(nodes):
                        ready.set()

            with gridlib.JobCluster(power_sum, nodes=allocators, setup=setup,
                                    cluster_status=status) as cluster:
                if not ready.wait(60):
                    raise SystemExit(f"only {len(names)} of {len(nodes)} nodes joined; "
                                     f"their logs:\n{node_logs(workdir)}")
                jobs = [cluster.submit_node(name, power) for power in (1, 2, 3) for name in names]
                partial = {}
                for job in jobs:
                    shard, count, total = job()
                    power = job.args[0]
                    print(f"{job.node}: shard {shard} ({count} numbers), sum of n**{power} = {total}")
                    partial[power] = partial.get(power, 0) + total
                for power, total in sorted(partial.items()):
                    expected = sum(n**power for n in NUMBERS)
                    check = "ok" if total == expected else f"WRONG, expected {expected}"
                    print(f"sum of n**{power} over all nodes: {total} ({check})")
                cluster.print_status()
        finally:
            stop_nodes(nodes)


if __name__ == "__main__":
    main()
