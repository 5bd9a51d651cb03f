"""A different function per job, passed as an argument (ports dispy's ``delegate.py``).

The cluster's computation is ``delegate(func, n)``: it calls whatever
function the job brings. dispy's version sends each job's function with the
job (``submit(..., dispy_job_depends=[func])``) and looks it up by name on the
node. gridlib has no per-job ``depends``: ``cluster.submit_job(depends=...)``
raises ``GridError``. Pass the function itself as an argument instead: your
own functions ship by value (code, defaults, closures, the globals they use),
so a lambda or a closure works too, and nothing is left on the node after the
job. To send a function once for all jobs, list it in the cluster's
``depends=[...]``.

``gridlib.job_context()`` tells where a job runs, from any function the job
calls. The dispy-style globals (``dispy_node_name`` ...) are set in the
cluster's computation only, not in functions that arrive as arguments.

Run: ``.venv/bin/python examples/delegate.py`` (embedded local grid).
"""

import random

import gridlib


def delegate(func, n):
    # the cluster's computation: run the function this job brought
    import gridlib

    return gridlib.job_context().node_name, func.__name__, func(n)


def square(n):
    import time

    time.sleep(0.2)
    return n * n


def cube(n):
    import time

    time.sleep(0.2)
    return n**3


def main():
    offset = random.randint(1, 9)
    functions = [square, cube, lambda n: n + offset]  # the lambda closes over `offset`
    with gridlib.JobCluster(delegate) as cluster:
        try:
            cluster.submit_job((square, 2), depends=[square])
        except gridlib.GridError as exc:
            print(f"per-job depends are refused, as expected: {exc}")
        jobs = []
        for i in range(6):
            func = functions[i % len(functions)]
            jobs.append((cluster.submit(func, i), func(i)))  # the job, and what it should return
        correct = 0
        for job, expected in jobs:
            node, name, value = job()  # waits for the job
            correct += value == expected
            print(f"job {job.id}: {name}({job.args[1]}) = {value} on {node}")
        cluster.print_status()
    print(f"{correct} of {len(jobs)} delegated functions returned the expected value")


if __name__ == "__main__":
    main()
