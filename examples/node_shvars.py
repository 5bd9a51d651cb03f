"""A variable shared by all the jobs on a node, set up by ``setup`` (ports dispy's ``node_shvars.py``).

Every job on a node adds a random number to one counter that lives in that
node's memory, under a lock, and returns the new value; the client checks
that no update was lost.

Where the counter lives: gridlib runs ``setup`` once in *each* worker process
of a node (one per CPU the cluster uses there), not once before forking the
workers as dispy does. So a ``multiprocessing.Value`` made in ``setup`` would
be private to one worker. Here ``setup`` maps a small file in the cluster's
directory (every worker's working directory on that node) into memory with
``mmap`` -- shared memory that all the workers of this cluster on the node
see -- and ``fcntl.flock`` on it is the lock. The first worker to get the lock
initialises the counter. The node deletes the cluster's directory, file
included, when the cluster closes. (Named ``multiprocessing.shared_memory``
works too; its segments outlive a node that is killed, a file here does not.)
Module globals that ``setup`` declares ``global`` are visible to the
computation, as in dispy; ``cleanup`` releases them.

Run: ``.venv/bin/python examples/node_shvars.py`` (embedded local grid).
"""

import gridlib
from gridlib import JobStatus

JOBS = 20


def setup():
    # executed once in each worker process of a node, in the cluster's directory
    import fcntl
    import mmap
    import os
    import struct

    global shared, lock_fd
    lock_fd = os.open("shared-counter.bin", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        if os.fstat(lock_fd).st_size == 0:  # the first worker here: the counter starts at 1
            os.write(lock_fd, struct.pack("q", 1))
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
    shared = mmap.mmap(lock_fd, 8)  # MAP_SHARED: one memory for every worker of this node
    return 0


def cleanup():
    # executed once in each worker process when the cluster closes on that node
    import os

    global shared, lock_fd
    shared.close()
    os.close(lock_fd)
    del shared, lock_fd


def compute():
    # executed on a node: `shared` and `lock_fd` are the globals setup() made there
    import fcntl
    import os
    import random
    import struct
    import time

    increment = random.randint(1, 10)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no two jobs of this node update at once
    try:
        (value,) = struct.unpack_from("q", shared)
        time.sleep(0.01)  # widens the window a lost update would need
        value += increment
        struct.pack_into("q", shared, 0, value)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
    time.sleep(0.05)
    return os.getpid(), increment, value


def main():
    with gridlib.JobCluster(compute, setup=setup, cleanup=cleanup) as cluster:
        jobs = [cluster.submit() for _ in range(JOBS)]
        per_node = {}  # node -> [(value, increment, pid)]: each node has its own counter
        for job in jobs:
            job()  # waits for the job
            if job.status != JobStatus.Finished:
                print(f"job {job.id} failed: {job.exception}")
                continue
            pid, increment, value = job.result
            per_node.setdefault(job.node, []).append((value, increment, pid))
            print(f"job {job.id}: worker {pid} on {job.node} added {increment}, counter now {value}")
        cluster.print_status()
    all_ok = True
    for node, results in sorted(per_node.items()):
        values = sorted(value for value, _, _ in results)
        final = 1 + sum(increment for _, increment, _ in results)
        ok = len(set(values)) == len(values) and values[-1] == final  # no update lost
        all_ok = all_ok and ok
        workers = len({pid for _, _, pid in results})
        print(f"shared counter on {node}: {len(results)} updates from {workers} worker processes, "
              f"final value {values[-1]} ({'ok' if ok else 'LOST UPDATES'})")
    print(f"{sum(len(r) for r in per_node.values())} of {JOBS} jobs updated a node's shared "
          f"counter ({'ok' if all_ok else 'LOST UPDATES'})")


if __name__ == "__main__":
    main()
