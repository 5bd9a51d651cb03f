"""The web monitor (docs/monitor.md) over real HTTP on loopback, with real clusters and nodes.

A JobCluster against a ``gridlib node`` process, and the ``gridlib scheduler
--httpd`` daemon with a SharedJobCluster: the token on every request, the
Host check, the JSON shapes, the counts of each cluster's jobs (queued, sent
to a node and not started, running, finished, failed, cancelled), job states
and the user's job numbers, one job's output and traceback
(``/api/jobs/<job_id>``), the task stream's rows, cancelling jobs, node
operations, and bad requests answered 4xx while the server keeps serving.
"""

from __future__ import annotations

import gc
import http.client
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gridlib
from gridlib import JobStatus
from gridlib.httpd import MAX_BODY, DispyHTTPServer, HTTPServer
from tests.helpers import NodeProcess, SchedulerProcess, wait_for


def work(seconds):  # type: ignore[no-untyped-def]
    import time
    print(f"sleeping {seconds} s")
    time.sleep(seconds)  # a negative time raises ValueError: a failed job
    return seconds


PROGRESS = {"queued", "dispatched", "running", "finished", "failed", "cancelled", "abandoned", "done"}


class Monitor:
    """An HTTP client for one monitor: ``call`` returns (status, JSON or text, headers)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def call(self, method: str, path: str, body: Any = None, token: str | None = "default",
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            send = dict(headers or {})
            if token == "default":
                token = self.token
            if token is not None:
                send.setdefault("Authorization", f"Bearer {token}")
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            if data is not None:
                send.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=send)
            answer = conn.getresponse()
            text = answer.read()
            if answer.getheader("Content-Type", "").startswith("application/json"):
                return answer.status, json.loads(text), answer.headers
            return answer.status, text.decode(), answer.headers
        finally:
            conn.close()

    def get(self, path: str) -> Any:
        status, value, _ = self.call("GET", path)
        assert status == 200, (path, status, value)
        return value

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, value, _ = self.call("POST", path, body)
        return status, value


@pytest.fixture(scope="module")
def monitored(node_daemon: NodeProcess) -> Iterator[tuple[gridlib.JobCluster, HTTPServer, Monitor]]:
    cluster = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{node_daemon.port}"])
    server = HTTPServer(cluster, port=0)
    try:
        assert wait_for(lambda: cluster.status().nodes, 30), "the node did not join"
        yield cluster, server, Monitor(server.port, server.token)
    finally:
        server.shutdown()
        cluster.close(terminate=True)


def test_every_request_needs_the_token(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, server, monitor = monitored
    assert DispyHTTPServer is HTTPServer and gridlib.HTTPServer is HTTPServer
    assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"
    assert len(server.token) >= 32
    for path in ("/", "/api/nodes", "/api/jobs", "/api/clusters", "/api/summary", "/api/nope"):
        for how in ({"token": None}, {"token": "wrong-" + server.token},
                    {"token": None, "headers": {"Authorization": "Basic " + server.token}}):
            status, value, headers = monitor.call("GET", path, **how)  # type: ignore[arg-type]
            assert status == 401, (path, how, status)
            assert headers["WWW-Authenticate"].startswith("Bearer")
            if path.startswith("/api/"):
                assert "token" in value["error"]
        status, _, _ = monitor.call("GET", path + "?token=wrong", token=None)
        assert status == 401
    status, value, _ = monitor.call("POST", "/api/jobs/cancel", {"job_ids": ["x"]}, token=None)
    assert status == 401 and "error" in value

    status, page, headers = monitor.call("GET", f"/?token={server.token}", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<canvas" in page and "/api/summary" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page loads nothing"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    assert monitor.call("GET", "/api/nodes", token=None,
                        headers={"Authorization": f"bearer {server.token}"})[0] == 200


def test_host_header_must_name_this_monitor(monitored) -> None:  # type: ignore[no-untyped-def]
    _, server, monitor = monitored
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
        status, value, _ = monitor.call("GET", "/api/nodes", headers={"Host": host})
        assert status == 403 and "DNS-rebinding" in value["error"], host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "localhost:9000"):
        assert monitor.call("GET", "/api/nodes", headers={"Host": host})[0] == 200, host


def test_json_shapes_and_a_finished_job(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, _, monitor = monitored
    job = cluster.submit(0.05)
    assert job(timeout=60) == 0.05
    assert wait_for(lambda: any(j["job_id"] == job.uid for j in monitor.get("/api/jobs")), 10)
    entry = next(j for j in monitor.get("/api/jobs") if j["job_id"] == job.uid)
    assert entry["status"] == "Finished" and entry["final"] is True
    assert entry["id"] == str(job.id) and entry["args"] == "0.05" and entry["node"] == job.node
    assert entry["cluster_id"] == cluster.cluster_id
    assert entry["start_time"] <= entry["end_time"]

    (node,) = monitor.get("/api/nodes")
    expected = {"node_id", "name", "ip_addr", "cpus", "node_cpus", "busy", "jobs_done", "avail",
                "update_time", "status", "state", "running", "platform"}
    assert expected <= set(node), set(node)
    assert node["ip_addr"] == "127.0.0.1" and node["cpus"] == 2 and node["jobs_done"] >= 1
    assert wait_for(lambda: monitor.get("/api/nodes")[0]["avail"] is not None, 10)
    assert set(monitor.get("/api/nodes")[0]["avail"]) == {"cpu", "memory", "disk", "swap"}

    (info,) = monitor.get("/api/clusters")
    assert info["cluster_id"] == cluster.cluster_id and info["finished"] >= 1
    assert {"queued", "running", "done", "nodes", "kind"} <= set(info)

    assert wait_for(lambda: monitor.get("/api/summary")["throughput"]["points"], 5)
    summary = monitor.get("/api/summary")
    assert {"time", "totals", "nodes", "clusters", "running", "queued", "finished",
            "throughput", "node_ops", "source"} <= set(summary)
    assert summary["source"] == "cluster" and summary["node_ops"] is True
    assert summary["totals"]["nodes"] == 1 and summary["totals"]["cpus"] == 2
    t, rate = summary["throughput"]["points"][-1]
    assert t > 0 and rate >= 0


def test_cancel_a_running_job_through_the_api(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, _, monitor = monitored
    job = cluster.submit(120)
    assert wait_for(lambda: job.status == JobStatus.Running, 30)
    assert wait_for(lambda: any(j["job_id"] == job.uid for j in monitor.get("/api/summary")["running"]), 10)
    (node,) = monitor.get("/api/nodes")
    assert [j["job_id"] for j in node["running"]] == [job.uid]

    status, value = monitor.post("/api/jobs/cancel", {"job_ids": [job.uid]})
    assert status == 200 and value["cancelled"] == [job.uid], value
    job(timeout=30)
    assert job.status == JobStatus.Cancelled
    assert wait_for(lambda: any(j["job_id"] == job.uid and j["status"] == "Cancelled"
                                for j in monitor.get("/api/jobs")), 10)
    status, value = monitor.post("/api/jobs/cancel", {"job_ids": [job.uid]})
    assert status == 404 and "no queued or running job" in value["error"]


def _progress(monitor: Monitor) -> dict[str, Any]:
    (cluster,) = monitor.get("/api/clusters")
    return dict(cluster["progress"])


def test_counts_of_queued_sent_and_running_jobs(monitored) -> None:  # type: ignore[no-untyped-def]
    """2 CPUs, 40 long jobs: 2 run, the scheduler's prefetch sends some ahead to the node (not
    running: "dispatched"), the rest stay queued; each state counted apart, and cancelled."""
    cluster, _, monitor = monitored
    before = _progress(monitor)
    assert set(before) == PROGRESS and before["done"] == sum(
        before[k] for k in ("finished", "failed", "cancelled", "abandoned"))
    jobs = [cluster.submit(300) for _ in range(40)]
    try:
        def settled() -> bool:
            now = _progress(monitor)
            return (now["running"] == 2 and now["dispatched"] >= 1 and now["queued"] >= 1
                    and now["queued"] + now["dispatched"] + now["running"] == 40)
        assert wait_for(settled, 60), _progress(monitor)
        counts = _progress(monitor)
        summary = monitor.get("/api/summary")
        assert {k: summary["totals"]["progress"][k] for k in ("queued", "dispatched", "running")} \
            == {k: counts[k] for k in ("queued", "dispatched", "running")}
        assert summary["totals"]["dispatched"] == counts["dispatched"]
        (node,) = summary["nodes"]
        # "busy 3 on a 2-CPU node" is 2 running and the rest waiting there, told apart
        assert node["jobs_running"] == 2 and node["jobs_dispatched"] == counts["dispatched"]
        assert node["jobs_running"] <= node["cpus"]
        states = {j["job_id"]: j for j in summary["running"]}
        assert sorted(j["state"] for j in states.values()) == \
            ["dispatched"] * counts["dispatched"] + ["running"] * 2
        for job in jobs:
            if job.uid in states:
                entry = states[job.uid]
                assert entry["id"] == str(job.id) and entry["args"] == "300"
                assert entry["node"] == node["name"]
                if entry["state"] == "dispatched":  # not started: the client has it as Created
                    assert entry["status"] == "Created" and entry["start_time"] is None
                else:
                    assert entry["status"] == "Running" and entry["start_time"]
        queued = [j for j in summary["queued"] if j["job_id"] in {job.uid for job in jobs}]
        assert queued and all(j["state"] == "queued" and j["node"] is None for j in queued)
        assert len(summary["queued"]) <= 100  # the page lists none of them: it counts them

        status, value = monitor.post("/api/jobs/cancel", {"job_ids": [j.uid for j in jobs]})
        assert status == 200 and sorted(value["cancelled"]) == sorted(j.uid for j in jobs), value
    finally:
        for job in jobs:
            cluster.cancel(job)
    for job in jobs:
        job(timeout=60)
    assert {job.status for job in jobs} == {JobStatus.Cancelled}
    assert wait_for(lambda: _progress(monitor)["cancelled"] == before["cancelled"] + 40, 30)
    after = _progress(monitor)
    assert after["queued"] == after["dispatched"] == after["running"] == 0
    assert after["done"] == before["done"] + 40
    ended = {j["job_id"]: j for j in monitor.get("/api/jobs") if j["final"]}
    assert {ended[job.uid]["state"] for job in jobs} == {"cancelled"}


def test_a_failed_jobs_traceback_and_output_one_request_away(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, server, monitor = monitored
    before = _progress(monitor)
    failed = cluster.submit(-1)
    ok = cluster.submit_job_id("sample-7", 0.01)
    assert failed(timeout=60) is None and ok(timeout=60) == 0.01
    assert failed.status == JobStatus.Terminated and "ValueError" in (failed.exception or "")
    path = f"/api/jobs/{failed.uid}"
    assert wait_for(lambda: monitor.call("GET", path)[0] == 200, 10)
    detail = monitor.get(path)
    assert detail["job_id"] == failed.uid and detail["id"] == str(failed.id)
    assert detail["status"] == "Terminated" and detail["state"] == "failed" and detail["final"]
    assert "Traceback" in detail["traceback"] and "ValueError" in detail["traceback"]
    assert detail["stdout"] == "sleeping -1 s\n" and detail["output"] == "whole"
    assert detail["args"] == "-1" and detail["node"] == failed.node and not detail["stdout_truncated"]
    assert "ValueError" in detail["exception"]  # the list's one line

    good = monitor.get(f"/api/jobs/{ok.uid}")
    assert good["id"] == "sample-7" and good["state"] == "finished" and good["result"] == "0.01"
    assert good["traceback"] is None and good["stdout"] == "sleeping 0.01 s\n"

    summary = monitor.get("/api/summary")
    assert failed.uid in [j["job_id"] for j in summary["failed"]]
    assert ok.uid not in [j["job_id"] for j in summary["failed"]]
    assert summary["totals"]["progress"]["failed"] == before["failed"] + 1
    assert summary["totals"]["failed"] == summary["totals"]["terminated"] >= 1
    assert _progress(monitor)["finished"] == before["finished"] + 1
    # the task stream: which node ran which job, when
    fields = summary["tasks"]["fields"]
    rows = [dict(zip(fields, row, strict=True)) for row in summary["tasks"]["rows"]]
    row = next(r for r in rows if r["job_id"] == ok.uid)
    assert row["id"] == "sample-7" and row["node"] == ok.node and row["state"] == "finished"
    assert row["start_time"] <= row["end_time"] and row["cluster_id"] == cluster.cluster_id
    assert next(r for r in rows if r["job_id"] == failed.uid)["state"] == "failed"

    # the access token guards the output like everything else
    for how in ({"token": None}, {"token": "wrong-" + server.token}):
        status, value, _ = monitor.call("GET", path, **how)  # type: ignore[arg-type]
        assert status == 401 and "token" in value["error"]
    status, _, _ = monitor.call("GET", path + "?token=wrong", token=None)
    assert status == 401
    assert monitor.call("GET", f"{path}?token={server.token}", token=None)[0] == 200
    assert monitor.call("GET", "/api/jobs/no-such-job")[0] == 404
    assert monitor.call("GET", "/api/jobs/" + "x" * 200)[0] == 400
    assert monitor.call("POST", path, {})[0] == 405

    # the program drops the job: what the monitor kept of it is still shown
    uid = failed.uid
    del failed
    assert wait_for(lambda: gc.collect() is not None and monitor.get(f"/api/jobs/{uid}")["output"] == "kept", 10)
    kept = monitor.get(f"/api/jobs/{uid}")
    assert "ValueError" in kept["traceback"] and kept["stdout"] == "sleeping -1 s\n"


def test_a_queued_job_has_a_detail_without_output(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, _, monitor = monitored
    blockers = [cluster.submit(300) for _ in range(2)]
    try:
        assert wait_for(lambda: all(j.status == JobStatus.Running for j in blockers), 30)
        detail = monitor.get(f"/api/jobs/{blockers[0].uid}")
        assert detail["state"] == "running" and not detail["final"] and detail["output"] == "pending"
        assert detail["stdout"] is None and "with its result" in detail["note"]
    finally:
        for job in blockers:
            cluster.cancel(job)
    for job in blockers:
        job(timeout=60)


def test_bad_requests_get_4xx_and_the_server_keeps_serving(monitored) -> None:  # type: ignore[no-untyped-def]
    _, _, monitor = monitored
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/api/jobs/cancel", {"raw": b"{not json"}, 400),
        ("POST", "/api/jobs/cancel", {"raw": b"[1, 2]"}, 400),
        ("POST", "/api/jobs/cancel", {"raw": b"[" * 60_000}, 400),  # nested too deep
        ("POST", "/api/jobs/cancel", {"raw": b"[" * 100_000}, 413),
        ("POST", "/api/jobs/cancel", {"raw": b"\xff\xfe"}, 400),
        ("POST", "/api/jobs/cancel", {"body": {"job_ids": "abc"}}, 400),
        ("POST", "/api/jobs/cancel", {"body": {"job_ids": []}}, 400),
        ("POST", "/api/jobs/cancel", {"body": {"job_ids": [1, 2]}}, 400),
        ("POST", "/api/jobs/cancel", {"body": {}}, 400),
        ("POST", "/api/jobs/cancel", {"body": {"job_ids": ["no-such-job"]}}, 404),
        ("POST", "/api/jobs/cancel", {"raw": b'{"job_ids": ["x"]}',
                                      "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", "/api/jobs/cancel", {"raw": b"x" * (MAX_BODY + 1), "headers": json_type}, 413),
        ("POST", "/api/nodes/cpus", {"body": {"node": "no-such-node", "cpus": 1}}, 404),
        ("POST", "/api/nodes/cpus", {"body": {"node": "127.0.0.1", "cpus": -1}}, 400),
        ("POST", "/api/nodes/cpus", {"body": {"node": "127.0.0.1", "cpus": "two"}}, 400),
        ("POST", "/api/nodes/cpus", {"body": {"node": "127.0.0.1", "cpus": True}}, 400),
        ("POST", "/api/nodes/close", {"body": {"node": 7}}, 400),
        ("POST", "/api/nodes/close", {"body": {"node": "no-such-node"}}, 404),
        ("POST", "/api/nodes/reboot", {"body": {"node": "127.0.0.1"}}, 404),
        ("POST", "/api/nope", {"body": {}}, 404),
        ("GET", "/api/nope", {}, 404),
        ("GET", "/nope.html", {}, 404),
        ("GET", "/api/jobs/cancel", {}, 405),
        ("POST", "/api/summary", {"body": {}}, 405),
        ("DELETE", "/api/jobs", {}, 405),
    ]
    for method, path, how, expected in cases:
        status, value, _ = monitor.call(method, path, **how)
        assert status == expected, (method, path, how.get("body"), status, value)
        if path.startswith("/api/"):
            assert isinstance(value, dict) and value["status"] == expected and value["error"]
        assert monitor.call("GET", "/api/summary")[0] == 200  # still serving

    # no Content-Length; too many headers; and bytes that are not HTTP at all
    auth = b"Authorization: Bearer " + monitor.token.encode() + b"\r\n"
    for raw, expected in (
            (b"POST /api/jobs/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
             + b"Content-Type: application/json\r\n\r\n", b"411"),
            (b"GET /api/nodes HTTP/1.1\r\n" + b"X-Pad: 1\r\n" * 120 + b"\r\n", b"431"),
            (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", None)):
        with socket.create_connection(("127.0.0.1", monitor.port), timeout=10) as sock:
            sock.sendall(raw)
            head = sock.recv(4096)
        if expected is not None:
            assert head.startswith(b"HTTP/1.1 " + expected), head[:80]
        assert monitor.call("GET", "/api/summary")[0] == 200


def test_node_operations(node_daemon: NodeProcess) -> None:
    cluster = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{node_daemon.port}"])
    with HTTPServer(cluster, port=0) as server:
        monitor = Monitor(server.port, server.token)
        try:
            assert wait_for(lambda: cluster.status().nodes, 30)
            (node,) = monitor.get("/api/nodes")
            status, value = monitor.post("/api/nodes/cpus", {"node": node["name"], "cpus": 1})
            assert status == 200 and value["results"][0]["cpus"] == 1, value
            # the node's figures for this cluster follow with its next availability report
            assert wait_for(lambda: monitor.get("/api/nodes")[0]["cpus"] == 1, 15)
            for op, state in (("deallocate", "deallocated"), ("allocate", "in use")):
                status, value = monitor.post(f"/api/nodes/{op}", {"node": node["node_id"]})
                assert status == 200 and value["results"][0]["state"] == state, value
                assert monitor.get("/api/nodes")[0]["state"] == state
            assert cluster.submit(0.01)(timeout=60) == 0.01  # allocated again: it runs jobs
            status, value = monitor.post("/api/nodes/close", {"node": "127.0.0.1"})
            assert status == 200, value
            assert wait_for(lambda: monitor.get("/api/nodes")[0]["status"] == "Closed", 15)
            assert monitor.get("/api/summary")["totals"]["nodes"] == 0
        finally:
            cluster.close(terminate=True)


def test_two_clusters_add_up_and_arguments_can_be_hidden(node_daemon: NodeProcess) -> None:
    first = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{node_daemon.port}"])
    second = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{node_daemon.port}"])
    try:
        with HTTPServer(first, port=0, show_job_args=False) as server:
            server.add_cluster(second)
            monitor = Monitor(server.port, server.token)
            jobs = [first.submit(0.01), first.submit(-1), second.submit(0.02)]
            for job in jobs:
                job(timeout=60)

            def added_up() -> bool:
                summary = monitor.get("/api/summary")
                each = [c["progress"] for c in summary["clusters"]]
                total = summary["totals"]["progress"]
                return len(each) == 2 and total["done"] == 3 and total == {
                    key: sum(p[key] for p in each) for key in PROGRESS}
            assert wait_for(added_up, 15), monitor.get("/api/summary")["totals"]
            summary = monitor.get("/api/summary")
            assert summary["totals"]["progress"]["failed"] == 1
            assert summary["totals"]["clusters"] == 2
            for job in jobs:  # each cluster's jobs from its own source, numbered by it
                detail = monitor.get(f"/api/jobs/{job.uid}")
                assert detail["id"] == str(job.id) and detail["args"] is None
                assert detail["result"] is None and detail["stdout"] == f"sleeping {job.args[0]} s\n"
            assert {j["args"] for j in summary["finished"]} == {None}
    finally:
        first.close(terminate=True)
        second.close(terminate=True)


def test_port_in_use_is_a_clear_error(monitored) -> None:  # type: ignore[no-untyped-def]
    cluster, server, _ = monitored
    hook = cluster.job_status
    with pytest.raises(gridlib.GridError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        HTTPServer(cluster, port=server.port)
    assert cluster.job_status == hook  # the refused server did not take the callback


@pytest.fixture
def shared_grid(tmp_path: Path) -> Iterator[tuple[SchedulerProcess, Monitor]]:
    node = NodeProcess(tmp_path, "--cpus", "2")
    scheduler = SchedulerProcess(tmp_path, "--httpd", nodes=[node.address])  # --http-port 0
    try:
        found = re.search(r"event=httpd_started url=(http://127\.0\.0\.1:(\d+)/\?token=(\S+))",
                          scheduler.log())
        assert found, scheduler.log()
        assert scheduler.http_port and int(found.group(2)) == scheduler.http_port  # its port file's
        yield scheduler, Monitor(scheduler.http_port, found.group(3))
    finally:
        node.stop()
        scheduler.stop()
    assert not node.orphans


def test_the_shared_schedulers_monitor(shared_grid) -> None:  # type: ignore[no-untyped-def]
    scheduler, monitor = shared_grid
    assert monitor.call("GET", "/api/nodes", token=None)[0] == 401
    assert monitor.call("GET", "/", token=None)[0] == 401
    assert wait_for(lambda: monitor.get("/api/nodes"), 30), "the node did not join"
    (node,) = monitor.get("/api/nodes")
    assert node["cpus"] == 2 and node["ip_addr"] == "127.0.0.1" and node["running"] == []

    with gridlib.SharedJobCluster(work, scheduler=scheduler.address) as cluster:
        own = HTTPServer(cluster, port=0)  # the client's own monitor, of a shared cluster
        mine = Monitor(own.port, own.token)
        jobs = [cluster.submit(120) for _ in range(3)]  # 2 CPUs: 2 run, 1 is sent ahead
        try:
            def settled(which: Monitor) -> bool:
                now = which.get("/api/summary")["totals"]["progress"]
                return now["running"] == 2 and now["dispatched"] == 1 and now["queued"] == 0
            assert wait_for(lambda: settled(monitor), 30), monitor.get("/api/summary")["totals"]
            assert wait_for(lambda: settled(mine), 30), mine.get("/api/summary")["totals"]
            summary = monitor.get("/api/summary")
            assert summary["source"] == "scheduler" and summary["node_ops"] is False
            (node,) = summary["nodes"]
            assert node["busy"] == 3 and node["jobs_running"] == 2 and node["jobs_dispatched"] == 1
            (info,) = summary["clusters"]
            assert info["cluster_id"] == cluster.cluster_id and info["running"] == 3  # as before
            assert info["dispatched"] == 1 and info["progress"] == {
                "queued": 0, "dispatched": 1, "running": 2, "done": 0, "finished": None,
                "failed": None, "cancelled": None, "abandoned": None}
            entries = {j["job_id"]: j for j in summary["running"]}
            assert sorted(j["state"] for j in entries.values()) == ["dispatched", "running", "running"]
            for job in jobs:
                entry = entries[job.uid]
                assert entry["cluster_id"] == cluster.cluster_id and entry["node"] == node["name"]
                assert (entry["start_time"] is None) == (entry["state"] == "dispatched")
                assert entry["id"] == str(job.id)  # the number the client knows (the job's label)
            assert [c["cluster_id"] for c in monitor.get("/api/clusters")] == [cluster.cluster_id]
            # the scheduler has no output to show; the client's own monitor has the numbers
            detail = monitor.get(f"/api/jobs/{jobs[0].uid}")
            assert detail["output"] == "none" and detail["stdout"] is None
            assert "HTTPServer(cluster)" in detail["note"]
            assert monitor.call("GET", "/api/jobs/no-such-job")[0] == 404
            assert monitor.call("GET", f"/api/jobs/{jobs[0].uid}", token=None)[0] == 401
            theirs = mine.get("/api/summary")
            assert sorted(j["id"] for j in theirs["running"]) == sorted(str(j.id) for j in jobs)
            assert theirs["nodes"][0]["jobs_dispatched"] == 1

            status, value = monitor.post("/api/nodes/cpus", {"node": node["name"], "cpus": 1})
            assert status == 501 and "shared scheduler" in value["error"]
            job = next(j for j in jobs if entries[j.uid]["state"] == "running")
            status, value = monitor.post("/api/jobs/cancel", {"job_ids": [job.uid, "no-such-job"]})
            assert status == 200 and value == {"ok": True, "cancelled": [job.uid],
                                               "not_found": ["no-such-job"]}
            job(timeout=30)
            assert job.status == JobStatus.Cancelled
            assert wait_for(lambda: any(j["job_id"] == job.uid and j["status"] == "Cancelled"
                                        and j["state"] == "cancelled"
                                        for j in monitor.get("/api/jobs")), 10)
            for other in jobs:
                cluster.cancel(other)
            for other in jobs:
                other(timeout=30)
            # the client cancelled these: the scheduler saw them leave, not why
            assert wait_for(lambda: {j["state"] for j in monitor.get("/api/jobs")
                                     if j["job_id"] in {o.uid for o in jobs if o is not job}}
                            == {"done"}, 10)
        finally:
            own.shutdown()
            for other in jobs:
                cluster.cancel(other)
        assert cluster.submit(0.01)(timeout=60) == 0.01  # the node is still in service
    assert monitor.call("POST", "/api/jobs/cancel", raw=b"{")[0] == 400
    assert monitor.get("/api/summary")["totals"]["nodes"] == 1
