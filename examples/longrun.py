"""Jobs that never end by themselves: provisional results, then cancel (ports dispy's ``longrun.py``).

Each job searches for a value as close to 1 as it can and would go on for
ever; whenever it finds a better value it reports it with
``gridlib.provisional_result(value)`` and keeps going. The client watches
those reports in ``job_status`` (status ``ProvisionalResult``) and, as soon
as one is within 1% of 1 -- or when its time budget runs out, where dispy's
version waits for the user to type "quit" -- cancels every job and keeps
the best value reported.

Jobs are started from ``cluster_status``: when a node is ready
(``NodeStatus.Initialized``) it gets one job per CPU this cluster may use
there, which a ``NodeAllocate`` limits to 2 (``allocate`` returns how many
CPUs to use; a ``NodeAllocate`` naming this host keeps the embedded local
node).

Difference from dispy: there, a cancelled job first gets a
``KeyboardInterrupt`` and 5 s to return a final value. In gridlib
``cluster.cancel(job)`` kills the job's process at once and the job ends
``Cancelled``: what counts is what it reported before, so report progress
as you go (``provisional_result``; ``send_file`` for state to resume from).
gridlib also calls ``job_status``, not ``cluster_status``, with provisional
results.

Run: ``.venv/bin/python examples/longrun.py`` (embedded local grid).
"""

import threading

import gridlib
from gridlib import JobStatus, NodeStatus

BUDGET = 12.0  # seconds to search before settling for the best value so far


def compute():
    # executed on a node: runs until cancelled (or, as a safety net, for 5 minutes)
    import random
    import time

    import gridlib

    best, reported, started = 0.0, 0.0, time.time()
    while time.time() - started < 300:
        value = random.uniform(0, 1)
        if value > best:
            best = value
            if time.time() - reported > 0.1 or 1 - best < 0.01:  # not too often, but the good ones now
                gridlib.provisional_result(best)
                reported = time.time()
        time.sleep(0.02)  # stands for a long computation step
    return best


class AtMostTwoCPUs(gridlib.NodeAllocate):
    def allocate(self, cluster, ip_addr, name, cpus, avail_info=None, platform=""):
        # executed in the client for each node found: how many of its CPUs to use
        return min(cpus, 2)


class Search:
    """Starts a job per CPU of each node and keeps the best value any of them reports."""

    def __init__(self):
        self.cluster = None
        self.cluster_ready = threading.Event()
        self.jobs = []
        self.lock = threading.Lock()
        self.best, self.reports = 0.0, 0
        self.good_enough = threading.Event()

    def cluster_status(self, status, node, job):
        self.cluster_ready.wait()  # a node may be ready before JobCluster() has returned
        if status == NodeStatus.Initialized:
            print(f"node {node.name} ready: starting {node.cpus} searches there")
            for _ in range(node.cpus):
                job = self.cluster.submit_node(node)
                with self.lock:
                    self.jobs.append(job)
        elif status in (JobStatus.Terminated, JobStatus.Abandoned):
            print(f"a search on {job.node} failed: {job.exception}")

    def job_status(self, job):
        if job.status == JobStatus.ProvisionalResult:
            with self.lock:
                self.reports += 1
                if job.result > self.best:
                    self.best = job.result
                    print(f"job {job.id} on {job.node}: best so far {job.result:.5f}")
            if 1 - job.result < 0.01:
                self.good_enough.set()


def main():
    search = Search()
    with gridlib.JobCluster(compute, nodes=[AtMostTwoCPUs("127.0.0.1")],
                            cluster_status=search.cluster_status,
                            job_status=search.job_status) as cluster:
        search.cluster = cluster
        search.cluster_ready.set()
        if search.good_enough.wait(BUDGET):
            print("a value within 1% of 1 arrived: cancelling the searches")
        else:
            print(f"time budget of {BUDGET:.0f} s used up: cancelling the searches")
        with search.lock:
            jobs = list(search.jobs)
        for job in jobs:
            cluster.cancel(job)  # the job's process is killed
        for job in jobs:
            last = job()  # waits; a cancelled job keeps its last provisional result
            reported = "nothing" if last is None else f"{last:.5f}"
            print(f"job {job.id} on {job.node}: {job.status.name}, last reported {reported}")
        cluster.print_status()
    cancelled = sum(job.status == JobStatus.Cancelled for job in jobs)
    check = "ok" if jobs and cancelled == len(jobs) and search.reports else "UNEXPECTED"
    print(f"best estimate {search.best:.5f} from {search.reports} provisional results; "
          f"{cancelled} of {len(jobs)} jobs cancelled ({check})")


if __name__ == "__main__":
    main()
