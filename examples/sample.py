"""The classic dispy tutorial on gridlib: 10 jobs on an embedded local grid.

No node needs to be started by hand: with ``nodes=None`` the cluster starts
a private node on this host using all its CPUs.  Run: ``make demo``.
"""

import random
import time

import gridlib


def compute(n):
    # executed on a node: import what you use inside the function
    import socket
    import time

    time.sleep(n)
    return (socket.gethostname(), n)


if __name__ == "__main__":
    cluster = gridlib.JobCluster(compute)
    jobs = []
    for i in range(10):
        # sleep between 0.1 and 0.5 s; the job id is our own
        job = cluster.submit_job_id(i, round(random.uniform(0.1, 0.5), 2))
        jobs.append(job)
    for job in jobs:
        host, n = job()  # waits for the job
        started = time.strftime("%H:%M:%S", time.localtime(job.start_time))
        print(f"{host} executed job {job.id} at {started}.{int(job.start_time % 1 * 1000):03d} with {n}")
    cluster.print_status()
    cluster.close()
