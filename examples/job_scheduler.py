"""Your own scheduling, driven by ``cluster_status`` (ports dispy's ``job_scheduler.py``).

The program decides itself which node runs which job, and when. The
``cluster_status`` callback hears every node and job event: when a node
reports that it is ready (``NodeStatus.Initialized``), the program sends it
one job per CPU; each time a job on a node ends, that CPU is free again and
the node gets the next job. So no job ever waits in a queue, and each job's
input file goes to the node that runs it, just before it runs.

Each job computes the SHA-1 of one data file. dispy's version sends the file
with the job (``submit_node(node, name, dispy_job_depends=[path])``); gridlib
has no per-job ``depends``, so the program copies the file into the cluster's
directory on that node with ``cluster.send_file(path, node)`` and then submits
the job there (``cluster.submit_node(node, name)``, or ``submit_job(...,
node=node, job_id=name)`` to name the job too).

Run: ``.venv/bin/python examples/job_scheduler.py`` (embedded local grid; with
``nodes=[...]`` every node found is fed the same way).
"""

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import gridlib
from gridlib import JobStatus, NodeStatus

FILES = 8


def compute(name):
    # executed on a node, in the cluster's directory, where send_file put the file
    import hashlib
    import time

    with open(name, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    time.sleep(0.3)  # stands for a longer computation
    return digest


class FileScheduler:
    """Hands the data files out, one per free CPU of each node."""

    def __init__(self, paths):
        self.todo = list(paths)
        self.expected = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in paths}
        self.results = {}
        self.cluster = None
        self.cluster_ready = threading.Event()
        self.lock = threading.Lock()
        self.all_done = threading.Event()

    def cluster_status(self, status, node, job):
        # executed in the client, on gridlib's callback thread, one event after the other
        self.cluster_ready.wait()  # a node may be ready before JobCluster() has returned
        if status == NodeStatus.Initialized:
            print(f"node {node.name} ({node.ip_addr}) is ready with {node.cpus} CPUs")
            for _ in range(node.cpus):
                self.submit_next(node.name)
        elif status in (JobStatus.Finished, JobStatus.Terminated, JobStatus.Abandoned):
            self.job_ended(job)
            if status != JobStatus.Abandoned:  # that node is still there: its CPU is free
                self.submit_next(job.node)

    def submit_next(self, node_name):
        with self.lock:
            if not self.todo:
                return
            path = self.todo.pop(0)
        self.cluster.send_file(path, node_name)  # into this cluster's directory on that node
        # submit_node(node_name, path.name), with the file's name as the job's id from the start
        self.cluster.submit_job((path.name,), node=node_name, job_id=path.name)

    def job_ended(self, job):
        if job.status == JobStatus.Finished:
            check = "ok" if job.result == self.expected[job.id] else "WRONG"
            print(f"sha1 of {job.id} on {job.node}: {job.result} ({check})")
        else:
            print(f"{job.id} {job.status.name}: {job.exception}")
        with self.lock:
            self.results[job.id] = job.result
            if len(self.results) == len(self.expected):
                self.all_done.set()


def main():
    with tempfile.TemporaryDirectory(prefix="gridlib-job-scheduler-") as tmp:
        paths = []
        for i in range(FILES):
            path = Path(tmp) / f"data{i:03d}"
            path.write_bytes(os.urandom(256 * 1024))
            paths.append(path)
        scheduler = FileScheduler(paths)
        with gridlib.JobCluster(compute, cluster_status=scheduler.cluster_status) as cluster:
            scheduler.cluster = cluster
            scheduler.cluster_ready.set()
            if not scheduler.all_done.wait(120):
                raise SystemExit(f"only {len(scheduler.results)} of {FILES} files done in 120 s")
            cluster.wait()
            cluster.print_status()
        good = sum(scheduler.results[name] == digest for name, digest in scheduler.expected.items())
        print(f"{FILES} files hashed where a CPU was free, {good} checksums match")


if __name__ == "__main__":
    main()
