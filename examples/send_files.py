"""Jobs that send files back to the client with ``gridlib.send_file`` (dispy's ``dispy_send_file``).

Results too large for a return value, or produced as files by a tool the job
runs, can travel as files. A job writes a file in its working directory on
the node (the cluster's directory) and calls ``gridlib.send_file(path)``
with a path relative to that directory; the file lands under the *client's*
current working directory at the same relative path (``results/part-03.csv``
here), before the job's result arrives. A job can send several files, and
send them while it runs (e.g. checkpoints; see ``longrun.py``). Paths may not
leave the job's directory. The dispy name ``dispy_send_file`` is an alias.

Because files land in the current directory, this example first changes to a
temporary directory, so running it leaves nothing behind.

Run: ``.venv/bin/python examples/send_files.py`` (embedded local grid).
"""

import csv
import os
import tempfile
from pathlib import Path

import gridlib
from gridlib import JobStatus

PARTS = 6
ROWS = 100


def compute(part, rows):
    # executed on a node, in the cluster's directory (shared by the jobs of this node)
    import csv
    import os
    import random

    import gridlib

    os.makedirs("results", exist_ok=True)
    path = f"results/part-{part:02d}.csv"  # relative to the job's directory
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["part", "row", "value"])
        for row in range(rows):
            writer.writerow([part, row, round(random.gauss(0, 1), 6)])
    gridlib.send_file(path)  # lands in the client's working directory as results/part-NN.csv
    return path, rows


def main():
    start_dir = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="gridlib-send-files-") as tmp:
        os.chdir(tmp)  # received files land in the current directory
        try:
            with gridlib.JobCluster(compute) as cluster:
                jobs = [cluster.submit(part, ROWS) for part in range(PARTS)]
                received = rows = 0
                for job in jobs:
                    job()  # waits for the job; its file arrived before its result
                    if job.status != JobStatus.Finished:
                        print(f"job {job.id} {job.status.name}: {job.exception}")
                        continue
                    path, sent_rows = job.result
                    local = Path(tmp) / path
                    with open(local, newline="") as f:
                        got = sum(1 for _ in csv.DictReader(f))
                    print(f"job {job.id} on {job.node}: received {path} "
                          f"({local.stat().st_size} bytes, {got} rows)")
                    received += 1
                    rows += got if got == sent_rows else 0
                cluster.print_status()
        finally:
            os.chdir(start_dir)
    check = "ok" if received == PARTS and rows == PARTS * ROWS else "MISSING DATA"
    print(f"received {received} files with {rows} rows in all ({check})")


if __name__ == "__main__":
    main()
