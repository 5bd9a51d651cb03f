"""Watch and manage a cluster in a web browser: ``gridlib.httpd.HTTPServer`` (ports dispy's ``httpd_example.py``).

``HTTPServer(cluster)`` serves a page with the cluster's nodes (CPUs, busy,
jobs done, free CPU/memory/disk, last update) and its jobs, updated live,
with actions: cancel jobs, set a node's CPUs, allocate, deallocate or close
nodes. Actions and the JSON API (``/api/nodes``, ``/api/jobs``,
``/api/clusters``) need the access token the server makes at start
(``server.token``), sent as ``Authorization: Bearer TOKEN`` or as
``?token=TOKEN`` in the page's address. ``server.add_cluster(c)`` adds more
clusters to the same page; ``server.shutdown()`` stops it. dispy's name
``DispyHTTPServer`` is an alias. A shared scheduler serves the same page
with ``gridlib scheduler --httpd``.

The server listens on 127.0.0.1 port 8181 by default. This example asks for
a free port (``port=0``; ``server.port`` is the one it got, ``server.url`` the
page's address with the token) and submits jobs whose arguments are objects
with a ``__repr__``, which is how the page shows them (dispy's page used
``__str__``). While they run, it reads the JSON API as the page does, and
cancels one job the way the page's cancel button does: ``POST
/api/jobs/cancel`` with the job's ``job_id`` from ``/api/jobs``. Give a number
of seconds as argument to keep the page up that long after the jobs end, and
open the address it prints: ``.venv/bin/python examples/web_monitor.py 60``.

Run: ``.venv/bin/python examples/web_monitor.py [SECONDS]`` (embedded local grid).
"""

import json
import random
import sys
import time
import urllib.error
import urllib.request

import gridlib
import gridlib.httpd


class Reading:
    """A sensor reading; the monitor page shows job arguments with ``repr()``."""

    def __init__(self, sensor, value):
        self.sensor, self.value = sensor, value

    def __repr__(self):
        return f"Reading({self.sensor}, {self.value:.3f})"


def compute(reading, seconds=1.0):
    # executed on a node
    import time

    time.sleep(seconds)
    return reading.value * 2


def get_json(url, token=None):
    """GET ``url``; (HTTP status, decoded JSON or None)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def post_json(url, body, token):
    """POST ``body`` as JSON to ``url``; (HTTP status, decoded JSON or None)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def listed(payload, key):
    """The list in an API answer, whether it is the answer or under ``key``."""
    if isinstance(payload, dict):
        payload = payload.get(key, [])
    return payload if isinstance(payload, list) else []


def main():
    linger = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with gridlib.JobCluster(compute, depends=[Reading]) as cluster:
        server = gridlib.httpd.HTTPServer(cluster, host="127.0.0.1", port=0)
        try:
            base = f"http://127.0.0.1:{server.port}"
            print(f"monitor page: {server.url}")
            jobs = [cluster.submit(Reading(f"s{i}", random.uniform(1, 9)),
                                   seconds=round(random.uniform(0.3, 1.0), 2)) for i in range(8)]
            stray = cluster.submit_job_id("stray", Reading("stray", 0.0), seconds=300)
            status, _ = get_json(f"{base}/api/jobs")
            print(f"/api/jobs without the token: HTTP {status}")
            # what the page's "cancel" button does: POST the job's wire id (its "job_id")
            _, payload = get_json(f"{base}/api/jobs", server.token)
            wire_ids = [j["job_id"] for j in listed(payload, "jobs") if j.get("id") == "stray"]
            status, answer = post_json(f"{base}/api/jobs/cancel", {"job_ids": wire_ids},
                                       server.token)
            print(f"cancel the stray job from the monitor: HTTP {status}, {answer}")
            seen_running = 0
            deadline = time.monotonic() + 60
            while not all(job.finished for job in jobs) and time.monotonic() < deadline:
                _, payload = get_json(f"{base}/api/jobs", server.token)
                running = [j for j in listed(payload, "jobs") if j.get("status") == "Running"]
                if running and not seen_running:
                    row = running[0]
                    print(f"/api/jobs lists, e.g.: job {row.get('id')} {row.get('status')} "
                          f"on {row.get('node')} with arguments {row.get('args')}")
                seen_running = max(seen_running, len(running))
                time.sleep(0.3)
            results = [job() for job in jobs]
            print(f"results: {[round(r, 3) for r in results]}")
            stray()
            print(f"the stray job: {stray.status.name}")
            status, payload = get_json(f"{base}/api/nodes", server.token)
            nodes = listed(payload, "nodes")
            print(f"/api/nodes with the token: HTTP {status}, "
                  f"{[node.get('name') for node in nodes]}")
            _, payload = get_json(f"{base}/api/jobs", server.token)
            done = [j for j in listed(payload, "jobs") if j.get("status") == "Finished"]
            if linger > 0:
                print(f"keeping the page up for {linger:.0f} s")
                time.sleep(linger)
        finally:
            server.shutdown()
        cluster.print_status()
    print(f"web monitor: {len(nodes)} node(s), up to {seen_running} jobs seen running, "
          f"{len(done)} listed as finished, stray job {stray.status.name}")


if __name__ == "__main__":
    main()
