"""Replace the data held in nodes' memory with ``resetup_node`` (ports dispy's ``replace_inmem.py``).

``setup`` loads a data set into a global once per worker process, and the
jobs compute checksums of it without reading any file. After the first
batch, the program swaps the data set: it sends the new file to each node
(``cluster.send_file``) and calls ``cluster.resetup_node(node)``. Once the
node's running jobs of this cluster have ended, the node runs ``cleanup``
and then ``setup`` again in fresh worker processes (``cluster_status`` hears
``NodeStatus.Initialized`` again); jobs submitted meanwhile wait for that,
then run on the new data. The client checks every checksum against the data
set it expects.

Difference from dispy: dispy's ``resetup_node`` calls
``NodeAllocate.allocate`` again, whose new ``setup_args``/``depends`` name
the next file. gridlib's runs ``setup`` again with the same arguments and
files as the first time, so the new data arrives with ``send_file`` and
``setup`` picks the newest data set it finds in the cluster's directory.
``setup`` also must not delete the file it loaded (dispy's does): it runs once
in each worker process, and the others still need the file.

Run: ``.venv/bin/python examples/replace_inmem.py`` (embedded local grid).
"""

import hashlib
import os
import tempfile
from pathlib import Path

import gridlib
from gridlib import JobStatus, NodeStatus

ALGORITHMS = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]


def setup():
    # executed once in each worker process of a node, in the cluster's directory
    import glob

    global data, data_name
    data_name = max(glob.glob("dataset-*.bin"))  # the newest data set sent to this node
    with open(data_name, "rb") as f:
        data = f.read()  # in memory from now on: the jobs read no file
    return 0


def cleanup():
    # executed in each worker process before resetup and when the cluster closes
    global data, data_name
    del data, data_name


def compute(i):
    # executed on a node: `data` and `data_name` are the globals setup() set there
    import hashlib
    import time

    algorithm = ALGORITHMS[i % len(ALGORITHMS)]
    time.sleep(0.1)
    return data_name, algorithm, hashlib.new(algorithm, data).hexdigest()


def run_batch(cluster, numbers, datasets):
    """Submit a job per number; returns the data set names the jobs used, or raises."""
    jobs = [cluster.submit_job_id(i, i) for i in numbers]
    used = set()
    for job in jobs:
        job()
        if job.status != JobStatus.Finished:
            raise SystemExit(f"job {job.id} {job.status.name}: {job.exception}")
        name, algorithm, digest = job.result
        expected = hashlib.new(algorithm, datasets[name]).hexdigest()
        check = "ok" if digest == expected else "WRONG"
        print(f"job {job.id} on {job.node}: {algorithm} of {name} = {digest[:16]}... ({check})")
        if digest != expected:
            raise SystemExit(f"job {job.id}: wrong checksum")
        used.add(name)
    return sorted(used)


def main():
    with tempfile.TemporaryDirectory(prefix="gridlib-replace-inmem-") as tmp:
        datasets = {f"dataset-{i}.bin": os.urandom(512 * 1024) for i in range(2)}
        for name, content in datasets.items():
            (Path(tmp) / name).write_bytes(content)

        def cluster_status(status, node, job):
            if status == NodeStatus.Initialized:
                print(f"node {node.name}: setup done, data in memory")

        with gridlib.JobCluster(compute, depends=[str(Path(tmp) / "dataset-0.bin")],
                                setup=setup, cleanup=cleanup,
                                cluster_status=cluster_status) as cluster:
            first = run_batch(cluster, range(6), datasets)
            for node in cluster.status().nodes:
                cluster.send_file(Path(tmp) / "dataset-1.bin", node)
                cluster.resetup_node(node)  # once its jobs end: cleanup, then setup again
                print(f"node {node.name}: new data set sent, resetup requested")
            second = run_batch(cluster, range(6, 12), datasets)  # these wait for the new setup
            cluster.print_status()
    ok = first == ["dataset-0.bin"] and second == ["dataset-1.bin"]
    print(f"before resetup the jobs used {first}, after it {second} ({'ok' if ok else 'WRONG'})")


if __name__ == "__main__":
    main()
