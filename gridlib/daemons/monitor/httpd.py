"""The web monitor, served by the process itself (docs/monitor.md; dispy's ``httpd``).

``HTTPServer(cluster)`` serves one page (:mod:`gridlib.daemons.monitor.page`) and a
JSON API on a stdlib ``ThreadingHTTPServer`` in a daemon thread of its own.
Data come from :class:`~gridlib.daemons.monitor.source.MonitorSource` objects: a
:class:`~gridlib.daemons.monitor.source.ClusterSource` per cluster of this process,
or the shared scheduler daemon's source (``gridlib scheduler --httpd``).

Security (docs/monitor.md): binds 127.0.0.1 by default; every request, page
or API, carries the access token (``Authorization: Bearer TOKEN`` or
``?token=TOKEN``, compared in constant time); a ``Host`` header that is not
the bound address or localhost is refused (DNS rebinding); actions are POSTs
with a JSON body of at most 64 KiB.  The page polls ``/api/summary`` once a
second (no server-sent events: a poll needs no thread held per viewer).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gridlib.daemons.monitor.page import page_headers, render_page
from gridlib.daemons.monitor.source import (
    HISTORY,
    NODE_OPS,
    PROGRESS,
    ActionError,
    MonitorSnapshot,
    MonitorSource,
)
from gridlib.protocol.errors import GridError

__all__ = ["HTTPServer", "MAX_BODY"]

MAX_BODY = 64 * 1024  #: largest POST body accepted
DISCARD_LIMIT = 1 << 20  #: a larger refused body is not read: the connection is closed
MAX_JOB_IDS = 1000  #: job ids one cancel request may name
CHART_POINTS = 600  #: throughput samples kept (one a second: 10 minutes)
PAGE_JOBS = 100  #: finished (and queued) jobs the page's summary lists
TASKS = 500  #: jobs in the summary's task stream (running ones, then the latest to end)
TASK_WINDOW = 600.0  #: ... ended at most this many seconds ago
JOB_PATH = "/api/jobs/"  #: GET /api/jobs/<job_id>: one job's detail
#: a row of the summary's ``tasks``
TASK_FIELDS = ("job_id", "id", "cluster_id", "node", "start_time", "end_time", "state")
log = logging.getLogger("gridlib.httpd")
_TOKEN_IN_PATH = re.compile(r"token=[^&\s]*")
_WILDCARDS = ("", "0.0.0.0", "::")


class _Refused(Exception):
    """A request answered with an error status (never leaves this module)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _host_name(header: str) -> str:
    """``Host`` without its port, lower case (``[::1]:8181`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    monitor: HTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (the peer went away): logged, never printed."""
        log.debug("event=httpd_connection_failed peer=%s", client_address[0], exc_info=True)


class HTTPServer:
    """A web page and JSON API showing ``cluster`` (more with :meth:`add_cluster`).

    ``host``/``port``: where to listen (``port=0`` picks a free port; see
    ``.port`` and ``.url``).  ``token``: the access token (default: a fresh
    ``secrets.token_urlsafe(32)``).  ``allowed_hosts``: more names the
    ``Host`` header may carry (a wildcard ``host`` also admits IP literals).
    ``poll_sec``: how often the page refreshes.  ``show_job_args``: list a
    short ``repr`` of each job's arguments.
    """

    def __init__(self, cluster: Any = None, host: str = "127.0.0.1", port: int = 8181,
                 poll_sec: float = 1.0, show_job_args: bool = True, token: str | None = None,
                 allowed_hosts: tuple[str, ...] | list[str] = (), history: int = HISTORY) -> None:
        if token is not None and len(token) < 16:
            raise GridError("the monitor's token must be at least 16 characters")
        self.token = token or secrets.token_urlsafe(32)
        self.host = "0.0.0.0" if host == "" else host
        self.show_job_args, self.history = show_job_args, history
        self.poll_sec = max(0.25, float(poll_sec))
        self._sources: list[MonitorSource] = []
        self._lock = threading.Lock()
        self._throughput: deque[tuple[float, float]] = deque(maxlen=CHART_POINTS)
        self._stop = threading.Event()
        self._allowed = self._allowed_hosts(allowed_hosts)
        if self.host in _WILDCARDS:
            log.warning("event=httpd_open_to_network host=%s hint='plain HTTP: use ssh -L instead'",
                        self.host)
        self._httpd = self._bind(port)  # first: a server that cannot listen takes no cluster's callback
        self.port = int(self._httpd.server_address[1])
        if cluster is not None:
            self.add_cluster(cluster)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gridlib-httpd",
                                        kwargs={"poll_interval": 0.25}, daemon=True)
        self._sampler = threading.Thread(target=self._sample, name="gridlib-httpd-sampler",
                                         daemon=True)
        self._thread.start()
        self._sampler.start()
        log.info("event=httpd_listening host=%s port=%d", self.host, self.port)

    def _bind(self, port: int) -> _Server:
        class Server(_Server):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = Server((self.host, port), _Handler)
        except OSError as exc:
            hint = "; pass port=0 (gridlib scheduler --http-port 0) for a free port" if port else ""
            raise GridError(f"the monitor cannot listen on {self.host}:{port}: {exc.strerror}{hint}") \
                from None
        server.monitor = self
        return server

    def _allowed_hosts(self, extra: tuple[str, ...] | list[str]) -> set[str]:
        names = {"localhost", "127.0.0.1", "::1", _host_name(self.host)}
        names.update(_host_name(h) for h in extra)
        if self.host in _WILDCARDS:  # reached by this host's names too
            names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
        return names

    @property
    def url(self) -> str:
        """The page's address with the token: what to open in a browser."""
        host = "127.0.0.1" if self.host in _WILDCARDS else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/?token={self.token}"

    def add_cluster(self, cluster: Any) -> None:
        """Show another cluster (a ``JobCluster``, or any ``MonitorSource``)."""
        source = self._source_for(cluster)
        with self._lock:
            self._sources = [*self._sources, source]

    def _source_for(self, cluster: Any) -> MonitorSource:
        """What a cluster given to the server is seen through (``gridlib.httpd.HTTPServer``
        also takes a ``JobCluster``)."""
        if not isinstance(cluster, MonitorSource):
            raise GridError(f"the monitor shows MonitorSource objects, not {type(cluster).__name__}")
        return cluster

    def shutdown(self) -> None:
        """Stop serving, close the socket and let go of the clusters."""
        if self._stop.is_set():
            return
        self._stop.set()
        for source in self._sources:  # first: a request waiting on a source gives up at once
            source.close()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        self._sampler.join(5)
        log.info("event=httpd_stopped port=%d", self.port)

    def __enter__(self) -> HTTPServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # -- checks (handler threads) -----------------------------------------------------
    def check_host(self, header: str | None) -> None:
        if not header:
            raise _Refused(400, "a Host header is required")
        name = _host_name(header)
        if name in self._allowed or (self.host in _WILDCARDS and _is_ip(name)):
            return
        raise _Refused(403, f"Host {header!r} is not this monitor's address (DNS-rebinding "
                            "defence); open it by its address, or list the name in allowed_hosts")

    def check_token(self, authorization: str | None, query_token: str | None) -> None:
        offered = query_token or ""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                offered = value.strip()
        if not offered or not hmac.compare_digest(offered.encode(), self.token.encode()):
            raise _Refused(401, "missing or wrong access token: send 'Authorization: Bearer "
                                "TOKEN' or add ?token=TOKEN (shown when the monitor started)")

    # -- data -------------------------------------------------------------------------
    def snapshots(self) -> list[tuple[MonitorSource, MonitorSnapshot]]:
        return [(source, source.snapshot()) for source in self._sources]

    def _sample(self) -> None:
        """Once a second: jobs ended per second, for the throughput chart."""
        last: dict[int, int] = {}
        previous = time.time()
        while not self._stop.wait(1.0):
            now, ended = time.time(), 0
            for source in self._sources:
                try:
                    count = source.done_count()
                except Exception as exc:  # e.g. the scheduler is busy: no point this time
                    log.debug("event=httpd_sample_failed error=%s", exc)
                    continue
                ended += max(0, count - last.get(id(source), count))
                last[id(source)] = count
            self._throughput.append((round(now, 1), round(ended / max(now - previous, 1e-3), 2)))
            previous = now

    def summary(self) -> dict[str, Any]:
        """What the page shows, in one answer."""
        taken = self.snapshots()
        nodes = merge_nodes([snap for _, snap in taken])
        jobs = [job for _, snap in taken for job in snap.jobs]
        clusters = [c for _, snap in taken for c in snap.clusters]
        live = [n for n in nodes if n["status"] != "Closed"]
        totals = {
            "nodes": len(live), "cpus": sum(int(n["cpus"] or 0) for n in live),
            "busy": sum(int(n["busy"] or 0) for n in live),
            **{key: sum(int(c.get(key) or 0) for c in clusters) for key in
               ("queued", "dispatched", "running", "done", "finished", "terminated", "failed",
                "cancelled", "abandoned")},
            "clusters": len(clusters),
            "progress": _sum_progress(clusters),
        }
        now = time.time()
        running = [j for j in jobs if not j["final"] and j.get("state") != "queued"]
        queued = [j for j in jobs if not j["final"] and j.get("state") == "queued"][:PAGE_JOBS]
        ended = sorted((j for j in jobs if j["final"]), key=lambda j: -(j.get("end_time") or 0))
        failed = [j for j in ended if j.get("state") in ("failed", "abandoned")][:PAGE_JOBS]
        kinds = {source.kind for source, _ in taken}
        return {
            "time": round(now, 3), "source": "scheduler" if "scheduler" in kinds else "cluster",
            "node_ops": all(source.node_ops for source, _ in taken) if taken else False,
            "poll_sec": self.poll_sec, "totals": totals, "nodes": nodes, "clusters": clusters,
            "running": running, "queued": queued, "finished": ended[:PAGE_JOBS], "failed": failed,
            "tasks": {"fields": list(TASK_FIELDS), "rows": _tasks(running, ended, now)},
            "throughput": {"interval": 1.0, "points": list(self._throughput)},
        }

    def job_detail(self, job_id: str) -> dict[str, Any]:
        """``GET /api/jobs/<job_id>``: one job, with its output when its cluster is here."""
        if not 0 < len(job_id) <= 128:
            raise _Refused(400, "a job id is 1 to 128 characters")
        for source in self._sources:
            detail = source.job_detail(job_id)
            if detail is not None:
                return detail
        raise _Refused(404, f"no job {job_id!r} here (finished jobs are remembered up to "
                            f"{self.history} per cluster)")

    # -- actions ----------------------------------------------------------------------
    def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("job_ids")
        if (not isinstance(ids, list) or not ids or len(ids) > MAX_JOB_IDS
                or not all(isinstance(i, str) and 0 < len(i) <= 128 for i in ids)):
            raise _Refused(400, f"job_ids must be a list of 1 to {MAX_JOB_IDS} job id strings")
        acted: list[str] = []
        for source in self._sources:
            acted += source.cancel([i for i in ids if i not in acted])
        missing = [i for i in ids if i not in acted]
        if not acted:
            raise _Refused(404, f"no queued or running job with id {', '.join(missing[:5])}")
        return {"ok": True, "cancelled": acted, "not_found": missing}

    def node_op(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        node, cpus = body.get("node"), body.get("cpus")
        if not isinstance(node, str) or not node or len(node) > 256:
            raise _Refused(400, "node must be a node's id, name or address")
        if op == "cpus" and (not isinstance(cpus, int) or isinstance(cpus, bool)
                             or not 0 <= cpus <= 4096):
            raise _Refused(400, "cpus must be an integer from 0 to 4096")
        cluster = body.get("cluster_id")
        results, refusals = [], []
        for source in self._sources:
            if cluster is not None and cluster not in _cluster_ids(source):
                continue
            try:
                results.append(source.node_op(node, op, cpus if op == "cpus" else None))
            except ActionError as exc:
                refusals.append(exc)
        if results:
            return {"ok": True, "op": op, "node": node, "results": results}
        if not refusals:
            raise _Refused(404, f"no cluster {cluster!r} here")
        worst = max(refusals, key=lambda e: (e.status != 404, e.status))  # the most telling one
        raise _Refused(worst.status, worst.message)


def _sum_progress(clusters: list[dict[str, Any]]) -> dict[str, int | None]:
    """Every cluster's ``progress`` added up (a count no cluster knows stays None)."""
    total: dict[str, int | None] = dict.fromkeys(PROGRESS)
    for cluster in clusters:
        for key, value in (cluster.get("progress") or {}).items():
            if key in total and value is not None:
                total[key] = (total[key] or 0) + int(value)
    return total


def _tasks(running: list[dict[str, Any]], ended: list[dict[str, Any]],
           now: float) -> list[list[Any]]:
    """The task stream's rows (:data:`TASK_FIELDS`): jobs that started on a node, running
    ones first, then those that ended in the last :data:`TASK_WINDOW` s, newest first."""
    rows = []
    for job in running + ended:
        start, node = job.get("start_time"), job.get("node")
        end = job.get("end_time") if job["final"] else None
        if not start or not node or (job["final"] and (not end or end < now - TASK_WINDOW)):
            continue
        rows.append([job["job_id"], job.get("id"), job.get("cluster_id"), node, start, end,
                     job.get("state")])
        if len(rows) >= TASKS:
            break
    return rows


def _cluster_ids(source: MonitorSource) -> set[str]:
    cluster_id = getattr(source, "cluster_id", None)
    return {cluster_id} if cluster_id else {c["cluster_id"] for c in source.snapshot().clusters}


def merge_nodes(snapshots: list[MonitorSnapshot]) -> list[dict[str, Any]]:
    """One entry per node: several clusters' figures summed (CPUs: the most any uses)."""
    merged: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        for node in snap.nodes:
            have = merged.get(node["node_id"])
            if have is None:
                merged[node["node_id"]] = {**node, "running": list(node["running"]),
                                           "clusters": list(node.get("clusters") or [])}
                continue
            have["busy"] += node["busy"]
            have["jobs_done"] += node["jobs_done"]
            for key in ("jobs_running", "jobs_dispatched"):
                have[key] = int(have.get(key) or 0) + int(node.get(key) or 0)
            have["cpus"] = max(have["cpus"], node["cpus"])
            have["running"] += node["running"]
            have["clusters"] += node.get("clusters") or []
            have["update_time"] = max(have["update_time"] or 0, node["update_time"] or 0)
            if node["status"] != "Closed":
                have["status"], have["state"] = node["status"], node["state"]
    return sorted(merged.values(), key=lambda n: (n["name"], n["node_id"]))


_GET: dict[str, Callable[[HTTPServer], Any]] = {
    "/api/summary": HTTPServer.summary,
    "/api/nodes": lambda m: merge_nodes([s for _, s in m.snapshots()]),
    "/api/jobs": lambda m: [j for _, s in m.snapshots() for j in s.jobs],
    "/api/clusters": lambda m: [c for _, s in m.snapshots() for c in s.clusters],
}


def _node_op(op: str, monitor: HTTPServer, body: dict[str, Any]) -> Any:
    return monitor.node_op(op, body)


_POST: dict[str, Callable[[HTTPServer, dict[str, Any]], Any]] = {
    "/api/jobs/cancel": HTTPServer.cancel,
    **{f"/api/nodes/{op}": functools.partial(_node_op, op) for op in NODE_OPS},
}


class _Handler(BaseHTTPRequestHandler):
    """One request: Host, token, route; errors answered as JSON on ``/api/``."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "gridlib-monitor"
    sys_version = ""
    timeout = 15  # a client that stops sending mid-request frees its thread

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve("HEAD")

    def _other(self) -> None:
        self._serve(self.command)  # answered 405/404 (and the connection closed: a body may follow)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other  # noqa: N815

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        api = url.path.startswith("/api/")
        monitor = self.server.monitor
        self._body_read = method in ("GET", "HEAD")  # (a body left unread ends the connection)
        try:
            monitor.check_host(self.headers.get("Host"))
            monitor.check_token(self.headers.get("Authorization"),
                                (parse_qs(url.query).get("token") or [""])[0])
            if method == "GET" and url.path in ("/", "/index.html"):
                self._send(200, render_page(monitor.poll_sec).encode(), "text/html; charset=utf-8",
                           page_headers())
            elif method == "GET" and url.path in _GET:
                self._json(200, _GET[url.path](monitor))
            elif method == "POST" and url.path in _POST:
                self._json(200, _POST[url.path](monitor, self._body()))
            elif url.path in _GET or url.path in _POST or url.path in ("/", "/index.html"):
                allow = "POST" if url.path in _POST else "GET"
                raise _Refused(405, f"{url.path} takes {allow} only")
            elif url.path.startswith(JOB_PATH) and len(url.path) > len(JOB_PATH):
                if method != "GET":
                    raise _Refused(405, f"{url.path} takes GET only")
                self._json(200, monitor.job_detail(unquote(url.path[len(JOB_PATH):])))
            else:
                raise _Refused(404, f"no such page or API: {url.path}")
        except _Refused as exc:
            self._error(exc.status, exc.message, api, not self._body_read)
        except ActionError as exc:
            self._error(exc.status, exc.message, api)
        except ConnectionError:  # the client went away mid-answer
            self.close_connection = True
        except Exception:
            log.exception("event=httpd_request_failed path=%s", self._logged_path())
            self._error(500, "internal error (see the monitor's log)", api, not self._body_read)

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(411, "send the body with a Content-Length (no chunked encoding)")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _Refused(411, "a POST needs a Content-Length")
        if int(length) > MAX_BODY:
            self._discard(int(length))
            raise _Refused(413, f"request body larger than {MAX_BODY} bytes")
        data = self.rfile.read(int(length))
        self._body_read = True
        if self.headers.get_content_type() != "application/json":
            raise _Refused(415, "send the body as Content-Type: application/json")
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise _Refused(400, f"malformed JSON: {str(exc)[:100]}") from None
        if not isinstance(body, dict):
            raise _Refused(400, "the body must be a JSON object")
        return body

    def _discard(self, length: int) -> None:
        """Read a refused body of up to 1 MiB (the client then reads our answer, not a reset);
        a larger one ends the connection unread."""
        if length <= DISCARD_LIMIT:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
            self._body_read = True

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value, separators=(",", ":"), default=str).encode()
        self._send(status, body, "application/json", {})

    def _error(self, status: int, message: str, api: bool, close: bool = False) -> None:
        if close:
            self.close_connection = True
        headers = {"WWW-Authenticate": 'Bearer realm="gridlib"'} if status == 401 else {}
        if status == 405:
            headers["Allow"] = "POST" if urlsplit(self.path).path in _POST else "GET"
        if api:
            body = json.dumps({"error": message, "status": status}).encode()
            self._send(status, body, "application/json", headers)
        else:
            self._send(status, f"{status}: {message}\n".encode(), "text/plain; charset=utf-8", headers)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _logged_path(self) -> str:
        return _TOKEN_IN_PATH.sub("token=***", getattr(self, "path", ""))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        text = format % args
        log.debug("event=httpd_request %s", _TOKEN_IN_PATH.sub("token=***", text))


