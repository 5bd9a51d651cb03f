"""Bad input from the network: the scheduler and the node refuse it and keep working."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

import gridlib
from gridlib.protocol.beacon import BEACON_TOPIC
from gridlib.protocol.codec import SIGNATURE, decode, encode, new_message, split_envelope
from gridlib.protocol.keys import generate_keypair, user_keypair
from tests.helpers import NodeProcess, wait_for


class _Canary:
    """Unpickling this creates a marker file: proof that something deserialized it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


@pytest.fixture
def cluster(node_daemon: NodeProcess) -> Iterator[gridlib.JobCluster]:
    with gridlib.JobCluster(lambda x: x * 2, nodes=[f"127.0.0.1:{node_daemon.port}"]) as c:
        assert c.submit(1)(timeout=60) == 2
        yield c


def _scheduler_endpoint(cluster: gridlib.JobCluster) -> tuple[str, bytes]:
    service = cluster._conn.scheduler
    return f"tcp://127.0.0.1:{service.node_port}", cluster._conn.identity.keypair.public


def _still_works(cluster: gridlib.JobCluster) -> None:
    assert cluster.submit(21)(timeout=60) == 42


def test_unknown_key_is_refused_before_any_message_is_read(cluster: gridlib.JobCluster,
                                                           tmp_path: Path) -> None:
    endpoint, server_key = _scheduler_endpoint(cluster)
    stranger = generate_keypair()
    marker = tmp_path / "canary"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = stranger.secret, stranger.public, server_key
    sock.sndtimeo = 2000  # once ZAP refuses, libzmq may drop the pipe: a send would then block
    sock.connect(endpoint)
    payload = pickle.dumps(_Canary(str(marker)))
    try:
        sock.send_multipart([b"", *encode(new_message("READY", {"node_id": "x", "name": "evil",
                                                                "cpus": 1}))])
        sock.send_multipart([b"", *encode(new_message("JOB_RESULT", {"job_id": "x", "status": "finished"},
                                                      [payload], ["result"]))])
    except zmq.Again:
        pass  # refused before we could even queue it: as good
    assert sock.poll(1500) == 0  # no answer: the handshake never completed
    assert wait_for(lambda: cluster._conn.transport._zap.refused >= 1, 10)
    sock.close()
    ctx.destroy(linger=0)
    _still_works(cluster)
    assert not marker.exists()
    assert not any(n.name == "evil" for n in cluster.status().nodes)


def test_plaintext_peer_gets_nothing(cluster: gridlib.JobCluster, tmp_path: Path) -> None:
    endpoint, _ = _scheduler_endpoint(cluster)
    marker = tmp_path / "canary"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndtimeo = 2000  # the handshake fails: libzmq may drop the pipe, and a send then blocks
    sock.connect(endpoint)
    try:
        sock.send_multipart([b"", SIGNATURE, b"garbage"])
        sock.send_multipart([b"", *encode(new_message("JOB_RESULT", {"job_id": "x", "status": "finished"},
                                                      [pickle.dumps(_Canary(str(marker)))], ["result"]))])
    except zmq.Again:
        pass  # refused before it was even queued
    assert sock.poll(1000) == 0
    assert not marker.exists()
    sock.close()
    ctx.destroy(linger=0)
    _still_works(cluster)


@pytest.mark.parametrize("frames, code", [
    ([b"", b"NOPE", b"x"], 400),                      # bad signature
    ([b"", b"GRID\x02", b"x"], 426),                  # another major version
    ([b"", SIGNATURE, b"\xc1\xc1"], 400),             # header is not msgpack
    ([b"", SIGNATURE, msgpack.packb([1, 2])], 400),   # header is not a map
    ([b"", SIGNATURE, b"\x00" * (65 * 1024)], 413),   # header over 64 KiB
    ([b"", *encode(new_message("NO_SUCH_TYPE"[:0] + "READY", {"node_id": "n"}))], 400),  # missing fields
])
def test_authenticated_garbage_gets_a_clear_error(cluster: gridlib.JobCluster, frames: list[bytes],
                                                  code: int) -> None:
    endpoint, server_key = _scheduler_endpoint(cluster)
    me = user_keypair()  # trusted: same user
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = me.secret, me.public, server_key
    sock.connect(endpoint)
    sock.send_multipart(frames)
    assert sock.poll(20000), "no ERROR reply"
    _, body = split_envelope(sock.recv_multipart())
    reply = decode(body)
    assert reply.type == "ERROR" and reply.fields["code"] == code
    sock.send_multipart([b"", b"no", b"delimiter"])  # dropped silently (logged)
    sock.close()
    ctx.destroy(linger=0)
    _still_works(cluster)


def test_unknown_message_type_from_a_trusted_peer(cluster: gridlib.JobCluster) -> None:
    endpoint, server_key = _scheduler_endpoint(cluster)
    me = user_keypair()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = me.secret, me.public, server_key
    sock.connect(endpoint)
    header = msgpack.packb({"v": 0, "t": "LAUNCH_MISSILES", "mid": b"m" * 16, "ref": None, "frames": []})
    sock.send_multipart([b"", SIGNATURE, header])
    assert sock.poll(20000)
    reply = decode(split_envelope(sock.recv_multipart())[1])
    assert reply.type == "ERROR" and "unknown message type" in reply.fields["reason"]
    sock.close()
    ctx.destroy(linger=0)
    _still_works(cluster)


def test_node_survives_junk_beacons_and_ignores_untrusted_schedulers(node_daemon: NodeProcess) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.connect(f"tcp://127.0.0.1:{node_daemon.port}")
    stranger = generate_keypair()
    untrusted = msgpack.packb({"sid": "evil", "epoch": 1, "seq": 1, "ep": "tcp://127.0.0.1:9",
                               "key": stranger.public.decode(), "hb": 2.0})

    def logged() -> bool:
        for body in (b"\xff\xfe junk", msgpack.packb({"sid": 5}), untrusted):
            try:
                pub.send_multipart([BEACON_TOPIC, body], zmq.NOBLOCK)
            except zmq.Again:
                pass
        log = node_daemon.log()
        return "event=bad_beacon" in log and "event=beacon_untrusted_key" in log

    assert wait_for(logged, 30, interval=0.2)
    pub.send_multipart([BEACON_TOPIC, b"x" * 5000])  # over MAXMSGSIZE: libzmq drops the connection
    pub.close()
    ctx.destroy(linger=0)
    assert "scheduler=evil" not in node_daemon.log()  # it never dialed the untrusted scheduler
    with gridlib.JobCluster(lambda: "alive", nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        assert cluster.submit()(timeout=60) == "alive"
