"""Recovering the jobs of a client that died: ``recover_file=`` and ``gridlib.recover_jobs``.

Run: ``python examples/recover.py``.

Part 1 runs in a child process (this same file, started as
``python examples/recover.py client JOURNAL``): a ``JobCluster`` with
``recover_file=JOURNAL`` submits 12 jobs and prints a line per result. After
4 results this process kills it with SIGKILL, as a crash would: no
``close()``, no clean-up.

Part 2 runs here: ``gridlib.recover_jobs(JOURNAL)`` opens the same cluster
again (same id, same computation, same key) and returns every job the
journal holds, with its status and result:

- results the dead client had received were journaled before it acknowledged
  them: they are restored from the journal and not run again;
- results that nodes still hold (running jobs, or results spooled on the node
  and never acknowledged) are handed over by the node that has them;
- jobs that no node reports within 3 heartbeat intervals (6 s by default) are
  run again.

This example uses the embedded default (``nodes=None``): unless a ``gridlib
node`` already listens on this host, the cluster starts a private local node,
and that node exits when its parent, the client, dies,
killing the jobs it was running. So here nothing is left on a node: the
unfinished jobs (the ones that were running included) run again, on a new
private node that ``recover_jobs`` starts (the old node says
``event=parent_gone`` on stderr as it leaves). With node daemons you run
yourself (``gridlib node`` and ``nodes=[...]``), the nodes keep running the
jobs of a client that died and ``recover_jobs`` collects their results
instead; there a job runs twice only if its node died too or did not come
back within the grace. Each job's result is delivered once, but its side
effects may happen twice: make jobs that write outside their result safe to
repeat.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gridlib


def compute(n):
    # executed on a node: import what you use inside the function
    import time

    time.sleep(0.5)
    return n * n


def client(journal):
    """Part 1 (child process): submit 12 jobs, report each result, wait to be killed."""

    def report(job):
        print(f"result {job.id} {job.result}", flush=True)

    cluster = gridlib.JobCluster(compute, recover_file=journal, job_status=report)
    for i in range(12):
        cluster.submit_job_id(f"job-{i}", i)
    cluster.wait()  # killed before it gets here
    cluster.close()


def run_and_kill(journal, results_before_kill=4):
    """Start part 1 in a child process and SIGKILL it once a few results are in."""
    child = subprocess.Popen([sys.executable, __file__, "client", journal],
                             stdout=subprocess.PIPE, text=True)
    try:
        seen = 0
        for line in child.stdout:
            print(f"  client: {line.strip()}")
            seen += line.startswith("result ")
            if seen >= results_before_kill:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    print(f"client process {child.pid} killed with SIGKILL after {seen} results")


def main():
    directory = tempfile.mkdtemp(prefix="gridlib-recover-example-")
    journal = str(Path(directory) / "journal.sqlite")
    try:
        print("part 1: a client with recover_file= runs 12 jobs and is killed midway")
        run_and_kill(journal)
        print("part 2: recover_jobs(journal)")
        started = time.monotonic()
        jobs = gridlib.recover_jobs(journal, timeout=120)
        for job in jobs:
            print(f"  {job.id:7} {job.status.name:10} {job.result}")
        print(f"{len(jobs)} jobs recovered in {time.monotonic() - started:.1f} s")
    finally:
        for name in os.listdir(directory):  # the journal and its WAL files
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        main()
