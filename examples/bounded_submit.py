"""A bounded window of jobs in flight, refilled from ``job_status`` (ports dispy's ``bounded_submit.py``).

Submitting a million jobs at once keeps a million argument sets (and ``Job``
objects) in the client's memory until they are done. Here at most ``WINDOW``
jobs exist at any time: the program submits the first ``WINDOW``, and the
``job_status`` callback, which runs in the client when a job ends, submits
one more job for each one that ended, until ``TOTAL`` jobs have run. Results
are folded into a running total as they arrive and then dropped.

dispy's version has the main thread sleep on a condition variable between a
lower and an upper bound; submitting from the callback does the same with one
bound. ``cluster.submit`` may be called from a callback: it does not wait for
the network. Make ``WINDOW`` a few times the number of CPUs of the grid (see
``cluster.status().nodes``, or use ``cluster_status`` to adjust it as nodes
come and go).

Run: ``.venv/bin/python examples/bounded_submit.py`` (embedded local grid).
"""

import random
import threading

import gridlib
from gridlib import JobStatus

TOTAL = 60  # jobs to run in all
WINDOW = 6  # jobs submitted but not yet done, at most


def compute(n):
    # executed on a node
    import time

    time.sleep(n)
    return n


class BoundedSubmitter:
    """Keeps ``window`` jobs in flight until ``total`` have been submitted."""

    def __init__(self, total, window):
        self.total, self.window = total, window
        self.cluster = None
        self.lock = threading.Lock()  # the callback thread and the main thread share the counters
        self.submitted = self.in_flight = self.most_in_flight = self.done = self.failed = 0
        self.sum_of_results = 0.0
        self.finished = threading.Event()

    def fill(self):
        """Submit jobs until the window is full or every job was submitted (holds ``lock``)."""
        while self.in_flight < self.window and self.submitted < self.total:
            self.cluster.submit(round(random.uniform(0.02, 0.1), 3))
            self.submitted += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def job_status(self, job):
        # executed in the client, on gridlib's callback thread, for every job that ends
        if job.status == JobStatus.ProvisionalResult:
            return  # not the end of the job (this example sends none)
        with self.lock:
            self.in_flight -= 1
            self.done += 1
            if job.status == JobStatus.Finished:
                self.sum_of_results += job.result
            else:
                self.failed += 1
                print(f"job {job.id} {job.status.name}: {job.exception}")
            job.result = None  # the result is used: let it go (the Job may live on elsewhere)
            self.fill()
            if self.done == self.total:
                self.finished.set()


def main():
    bounded = BoundedSubmitter(TOTAL, WINDOW)
    with gridlib.JobCluster(compute, job_status=bounded.job_status) as cluster:
        bounded.cluster = cluster
        with bounded.lock:
            bounded.fill()
        if not bounded.finished.wait(120):
            raise SystemExit(f"only {bounded.done} of {TOTAL} jobs ended within 120 s")
        cluster.wait()
        cluster.print_status()
    print(f"{bounded.done} jobs done ({bounded.failed} failed), "
          f"at most {bounded.most_in_flight} in flight; sum of results {bounded.sum_of_results:.3f}")


if __name__ == "__main__":
    main()
