"""Objects of your own classes as job arguments and results (ports dispy's ``obj_instances.py``).

``Sample`` is a class defined in this script. Its instances are sent to the
nodes as arguments, a method of theirs runs there, and the job returns a new
instance. The class ships by value along with its instances (and comes back
as this script's own ``Sample``), so no node needs this script on disk;
``depends=[Sample]`` (as in dispy) also defines the class once per node, for
code there that names it directly. What the method prints on the node comes
back in ``job.stdout``.

Run: ``.venv/bin/python examples/obj_instances.py`` (embedded local grid:
``JobCluster`` starts a private node on this host).
"""

import random

import gridlib


class Sample:
    """A named series of measurements."""

    def __init__(self, name, values):
        self.name = name
        self.values = values

    def mean(self):
        return sum(self.values) / len(self.values)

    def show(self):
        print(f"{self.name}: {len(self.values)} values, mean {self.mean():.3f}")


def compute(sample):
    # executed on a node: `sample` is a Sample, rebuilt there from what the client sent
    import time

    time.sleep(0.1 + 0.02 * len(sample.values))
    sample.show()  # printed on the node: comes back in job.stdout
    centred = Sample(sample.name + "-centred", [v - sample.mean() for v in sample.values])
    return centred  # an object of the same class travels back


def main():
    samples = [Sample(f"sample-{i}", [random.uniform(0, 10) for _ in range(random.randint(2, 8))])
               for i in range(8)]
    with gridlib.JobCluster(compute, depends=[Sample]) as cluster:
        jobs = []
        for sample in samples:
            job = cluster.submit(sample)
            job.id = sample.name  # any value can be the job's id (dispy: the object itself)
            jobs.append(job)
        ok = 0
        for job, sample in zip(jobs, samples, strict=True):
            centred = job()  # waits for the job; None if it failed
            if job.status != gridlib.JobStatus.Finished:
                print(f"{job.id} failed: {job.exception}")
                continue
            ok += abs(centred.mean()) < 1e-9 and centred.name == sample.name + "-centred"
            print(f"{job.id} on {job.node}: node said {job.stdout.strip()!r}; "
                  f"got back {type(centred).__name__} {centred.name!r}")
        cluster.print_status()
    print(f"{ok} of {len(samples)} objects came back centred")


if __name__ == "__main__":
    main()
