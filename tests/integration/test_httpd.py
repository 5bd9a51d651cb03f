"""The web monitor (docs/monitor.md) over real HTTP on loopback, with real clusters and nodes.

A JobCluster against a ``gridlib node`` process, and the ``gridlib scheduler
--httpd`` daemon with a SharedJobCluster: the token on every request, the
Host check, the JSON shapes, cancelling a running job, node operations, and
bad requests answered 4xx while the server keeps serving.
"""

from __future__ import annotations

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
    time.sleep(seconds)
    return seconds


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
        job = cluster.submit(120)
        assert wait_for(lambda: any(j["job_id"] == job.uid for j in monitor.get("/api/jobs")), 30)
        entry = next(j for j in monitor.get("/api/jobs") if j["job_id"] == job.uid)
        assert entry["cluster_id"] == cluster.cluster_id and entry["node"] == node["name"]
        assert [c["cluster_id"] for c in monitor.get("/api/clusters")] == [cluster.cluster_id]
        summary = monitor.get("/api/summary")
        assert summary["source"] == "scheduler" and summary["node_ops"] is False
        assert summary["totals"]["running"] == 1

        status, value = monitor.post("/api/nodes/cpus", {"node": node["name"], "cpus": 1})
        assert status == 501 and "shared scheduler" in value["error"]
        status, value = monitor.post("/api/jobs/cancel", {"job_ids": [job.uid, "no-such-job"]})
        assert status == 200 and value == {"ok": True, "cancelled": [job.uid],
                                           "not_found": ["no-such-job"]}
        job(timeout=30)
        assert job.status == JobStatus.Cancelled
        assert wait_for(lambda: any(j["job_id"] == job.uid and j["status"] == "Cancelled"
                                    for j in monitor.get("/api/jobs")), 10)
        assert cluster.submit(0.01)(timeout=60) == 0.01  # the node is still in service
    assert monitor.call("POST", "/api/jobs/cancel", raw=b"{")[0] == 400
    assert monitor.get("/api/summary")["totals"]["nodes"] == 1
