"""Stop early once a provisional result is good enough (ports dispy's ``provisional_results.py``).

Each job looks for a small random value and reports every improvement at
once with ``gridlib.provisional_result((where, value))``; the job goes on
and its final result is its best value. The client sees each report in
``job_status`` (status ``ProvisionalResult``, the value in ``job.result``).
When one is below ``GOOD_ENOUGH`` it cancels every job still queued or
running (``cluster.cancel``): the running ones are killed at once.

Such a search suits optimisation: each job knows its local optimum, the
client the global one, and nobody waits for the slowest job.

Run: ``.venv/bin/python examples/provisional_results.py`` (embedded local grid).
"""

import random
import threading

import gridlib
from gridlib import JobStatus

GOOD_ENOUGH = 0.005


def compute(steps):
    # executed on a node
    import os
    import random
    import time

    import gridlib

    where = f"{gridlib.job_context().node_name}/{os.getpid()}"
    best = 1.0
    for _ in range(steps):
        value = random.uniform(0, 1)
        if value < best:
            best = value
            gridlib.provisional_result((where, best))  # the client sees it now; the job goes on
        time.sleep(0.02)
    return (where, best)


class EarlyStop:
    """Cancels the remaining jobs once any job reports a good enough value."""

    def __init__(self):
        self.cluster = None
        self.jobs = []
        self.lock = threading.Lock()
        self.best = None  # (value, where, job id)
        self.stopped = False

    def job_status(self, job):
        # executed in the client for each provisional and each final result
        if job.status not in (JobStatus.ProvisionalResult, JobStatus.Finished):
            return  # a cancelled job: the end we asked for
        where, value = job.result
        with self.lock:
            if self.best is None or value < self.best[0]:
                self.best = (value, where, job.id)
                print(f"{job.status.name:17} job {job.id} ({where}): best so far {value:.5f}")
            if value >= GOOD_ENOUGH or self.stopped:
                return
            self.stopped = True
            jobs = list(self.jobs)
        print(f"job {job.id} found {value:.5f} < {GOOD_ENOUGH}: cancelling every job not done")
        for other in jobs:
            if other.status in (JobStatus.Created, JobStatus.Running, JobStatus.ProvisionalResult):
                self.cluster.cancel(other)


def main():
    stop = EarlyStop()
    with gridlib.JobCluster(compute, job_status=stop.job_status) as cluster:
        stop.cluster = cluster
        for _ in range(4):
            job = cluster.submit(random.randint(100, 200))
            with stop.lock:
                stop.jobs.append(job)
        cluster.wait()
        cluster.print_status()
    counts = {status.name: sum(job.status == status for job in stop.jobs)
              for status in (JobStatus.Finished, JobStatus.Cancelled)}
    value, where, job_id = stop.best
    how = "stopped early" if stop.stopped else "no value was good enough"
    # every job either finished or, once a good enough value came, was cancelled
    ok = counts["Finished"] + counts["Cancelled"] == len(stop.jobs)
    print(f"{how}: best value {value:.5f} from job {job_id} ({where}); "
          f"{counts['Finished']} jobs finished, {counts['Cancelled']} cancelled "
          f"({'ok' if ok else 'UNEXPECTED'})")


if __name__ == "__main__":
    main()
