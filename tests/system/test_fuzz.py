"""Hostile but authenticated peers against live daemons (docs/security.md §6, §7).

Hypothesis generates thousands of malformed, mistyped and out-of-order
messages.  A hostile *node* speaks to a client's embedded scheduler; a
hostile *scheduler* (it holds a key the node trusts) speaks to a node
daemon.  Afterwards each daemon must be alive, serve real jobs, have kept
its memory bounded, and have written nothing outside its directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridlib
from gridlib.protocol.beacon import Beacon, encode_beacon
from gridlib.protocol.codec import SIGNATURE, decode, encode, new_message, split_envelope
from gridlib.protocol.keys import user_keypair
from gridlib.protocol.messages import SCHEMAS
from gridlib.protocol.sockets import curve_client_socket, curve_server_socket
from gridlib.protocol.zap import ZapHandler, ZapPolicy
from tests.helpers import NodeProcess, wait_for

pytestmark = pytest.mark.slow  # thousands of generated messages per test

FIELD_NAMES = sorted({f for schema in SCHEMAS.values() for f in schema} |
                     {"files", "running", "results", "timeout", "priority", "node", "setup_args",
                      "dest_path", "avail", "attempt", "jobs", "n", "id", "exception"})
HOSTILE_NAMES = ["../escape-a", "/tmp/escape-b", "a/../../escape-c", "..", ".", "", "x\x00y",
                 "sub/../../escape-d", "ok.txt", "deep/dir/ok2.txt"]

scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
           | st.text(max_size=16) | st.binary(max_size=16) | st.sampled_from(HOSTILE_NAMES))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@st.composite
def hostile_frames(draw: Any, types: list[str], cluster_ids: list[str]) -> list[bytes]:
    """A gridlib message that is wrong in some way, or raw junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.lists(st.binary(max_size=64), min_size=1, max_size=5))
    mtype = draw(st.sampled_from(types))
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=6))
    if draw(st.booleans()):  # often carry the required fields, so handlers run deeper
        for name, kinds in SCHEMAS.get(mtype, {}).items():
            fields[name] = draw(st.sampled_from(cluster_ids)) if name == "cluster_id" else \
                draw(values.filter(lambda v, k=kinds: isinstance(v, k) and not isinstance(v, bool)))
    if mtype == "SETUP" and draw(st.booleans()):
        fields["files"] = [{"name": draw(st.sampled_from(HOSTILE_NAMES)), "mode": 0o755}]
    payload = draw(st.lists(st.binary(max_size=128), max_size=4))
    labels = draw(st.sampled_from([["computation"] + ["file"] * (len(payload) - 1), ["data"] * len(payload),
                                   ["x"] * (len(payload) + 1)])) if payload else []
    header = {"v": 0, "t": mtype, "mid": os.urandom(16), "ref": None, "frames": labels, **fields}
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        packed = b"\x80"
    return [SIGNATURE, packed, *payload]


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def test_hostile_node_against_the_embedded_scheduler(node_daemon: NodeProcess) -> None:
    with gridlib.JobCluster(lambda x: x + 1, nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        assert cluster.submit(1)(timeout=60) == 2
        me = user_keypair()
        ctx = zmq.Context()
        sock = curve_client_socket(ctx, zmq.DEALER, me, cluster._conn.identity.keypair.public)
        sock.connect(f"tcp://127.0.0.1:{cluster._conn.scheduler.node_port}")
        sock.send_multipart([b"", *encode(new_message("READY", {"node_id": "evil", "name": "evil", "cpus": 1}))])
        before = rss(os.getpid())
        sent = 0
        node_types = sorted(SCHEMAS) + ["NOPE", "READY", "SETUP_OK", "JOB_RESULT", "JOB_STARTED"]

        @settings(max_examples=1500, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(frames=hostile_frames(node_types, [cluster.cluster_id, "other"]))
        def send(frames: list[bytes]) -> None:
            nonlocal sent
            sock.send_multipart([b"", *frames])
            sent += 1
            while sock.poll(0):
                sock.recv_multipart()  # drain the ERROR replies

        send()
        sock.send_multipart([b"", *encode(new_message("STATUS"))])
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and (answer is None or answer.type != "STATUS"):
            if sock.poll(1000):
                answer = decode(split_envelope(sock.recv_multipart())[1])
        sock.close(0)
        ctx.destroy(linger=0)
        assert answer is not None and answer.type == "STATUS"  # the scheduler still answers
        assert [cluster.submit(i)(timeout=60) for i in range(5)] == [1, 2, 3, 4, 5]
        assert sent >= 1000
        assert rss(os.getpid()) - before < 150 * 2**20
        core = cluster._conn.scheduler.core
        assert len(core.nodes) <= 2  # the real node and at most one hostile record


def test_hostile_scheduler_against_a_node_daemon(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1", "--max-file-size", "4k")
    me = user_keypair()  # the node trusts it: a trusted scheduler turned hostile
    ctx = zmq.Context()
    policy = ZapPolicy()
    policy.allow("gridlib.nodes", {me.public})
    zap = ZapHandler(ctx, policy)
    server = curve_server_socket(ctx, zmq.ROUTER, me, "gridlib.nodes")
    port = server.bind_to_random_port("tcp://127.0.0.1")
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.connect(f"tcp://127.0.0.1:{node.port}")
    route: list[bytes] = []

    def pump() -> bool:
        beacon = Beacon("evil-scheduler", 1, 1, f"tcp://127.0.0.1:{port}", me.public, 0.5)
        pub.send_multipart(encode_beacon(beacon))
        for sock, handler in ((zap.socket, zap.handle_ready), (server, None)):
            if sock.poll(50):
                if handler:
                    handler()
                else:
                    frames = server.recv_multipart()
                    route[:] = frames[:1]
        return bool(route)

    try:
        assert wait_for(pump, 30, interval=0)
        before = rss(node.pid)
        scheduler_types = ["SETUP", "JOB_ASSIGN", "JOB_CANCEL", "RESULT_ACK", "TEARDOWN", "FILE_PUT",
                           "WELCOME", "HEARTBEAT", "ERROR", "OK", "NOPE", "STATUS"]

        @settings(max_examples=1200, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(frames=hostile_frames(scheduler_types, ["c1", "c2", "c3"]))
        def send(frames: list[bytes]) -> None:
            server.send_multipart([*route, b"", *frames])
            while zap.socket.poll(0):
                zap.handle_ready()
            while server.poll(0):
                server.recv_multipart()

        send()
        assert node.proc.poll() is None  # alive
        assert rss(node.pid) - before < 100 * 2**20
        escaped = [p for p in tmp_path.rglob("escape-*") if node.prefix not in p.parents]
        assert not escaped
        assert not list(Path("/tmp").glob("escape-*"))
    finally:
        pub.close(0)
        server.close(0)
        zap.close()
        ctx.destroy(linger=0)
    try:
        with gridlib.JobCluster(lambda: "still serving", nodes=[f"127.0.0.1:{node.port}"]) as c:
            assert c.submit()(timeout=60) == "still serving"
    finally:
        node.stop()
    assert not node.orphans
