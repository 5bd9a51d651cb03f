"""Fail closed (docs/security.md §5, §6): the self-test, oversize messages, connection floods, canaries."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import zmq

import gridlib
from gridlib.protocol.codec import decode, encode, new_message, split_envelope
from gridlib.protocol.errors import AuthenticationFailed
from gridlib.protocol.keys import generate_keypair, user_keypair, write_keypair
from gridlib.protocol.selftest import prove_fails_closed
from gridlib.protocol.zap import ZapDecision, ZapHandler, ZapPolicy
from tests.helpers import NodeProcess, wait_for


class LetEveryoneIn(ZapPolicy):
    """A broken policy, as a misconfiguration or a bug would make one."""

    def decide(self, domain: str, mechanism: str, credentials: list[bytes]) -> ZapDecision:
        return ZapDecision(200, "OK", "anyone")


def test_self_test_refuses_to_run_with_a_policy_that_lets_strangers_in() -> None:
    for policy, fails in ((ZapPolicy(), False), (LetEveryoneIn(), True)):
        ctx = zmq.Context()  # one ZAP handler per context
        handler = ZapHandler(ctx, policy)
        try:
            if fails:
                with pytest.raises(AuthenticationFailed, match="unknown key got through"):
                    prove_fails_closed(ctx, handler, generate_keypair())
            else:
                prove_fails_closed(ctx, handler, generate_keypair())  # strangers are refused
        finally:
            handler.close()
            ctx.destroy(linger=0)


def _trusted_dealer(cluster: gridlib.JobCluster) -> tuple[zmq.Context, zmq.Socket]:  # type: ignore[type-arg]
    me = user_keypair()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey = me.secret, me.public
    sock.curve_serverkey = cluster._conn.identity.keypair.public
    sock.connect(f"tcp://127.0.0.1:{cluster._conn.scheduler.node_port}")
    return ctx, sock


def test_a_message_over_the_size_limit_drops_the_sender(node_daemon: NodeProcess) -> None:
    with gridlib.JobCluster(lambda x: x, nodes=[f"127.0.0.1:{node_daemon.port}"],
                            max_msg_size=1 << 20) as cluster:
        assert cluster.submit(1)(timeout=60) == 1
        ctx, sock = _trusted_dealer(cluster)
        try:
            big = new_message("STATUS", {}, [b"x" * (2 << 20)])  # would be answered if read
            sock.send_multipart([b"", *encode(big)])
            assert sock.poll(1500) == 0  # never read: libzmq dropped the connection instead
            sock.send_multipart([b"", *encode(new_message("STATUS"))])  # the peer may reconnect
            assert sock.poll(20000)
            answer = decode(split_envelope(sock.recv_multipart())[1])
            assert answer.type == "STATUS" and answer.fields["nodes"]
        finally:
            sock.close()
            ctx.destroy(linger=0)
        assert cluster.submit(2)(timeout=60) == 2


def test_a_flood_of_connections_without_handshake(node_daemon: NodeProcess) -> None:
    with gridlib.JobCluster(lambda x: x, nodes=[f"127.0.0.1:{node_daemon.port}"]) as cluster:
        port = cluster._conn.scheduler.node_port
        flood = []
        try:
            for i in range(300):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                if i % 2:
                    s.sendall(b"\xff" * 64 + b"garbage that is not ZMTP")
                flood.append(s)
            assert [cluster.submit(i)(timeout=60) for i in range(3)] == [0, 1, 2]
        finally:
            for s in flood:
                s.close()
        assert cluster.submit(9)(timeout=60) == 9


def test_rce_canary_never_runs_for_an_untrusted_scheduler(tmp_path: Path) -> None:
    """(c) a known client reaching a node through a scheduler key the node does not trust."""
    keys = tmp_path / "node-keys"
    write_keypair(keys, "identity")  # the node trusts only its own, different key
    node = NodeProcess(tmp_path, "--keys", str(keys))
    marker = tmp_path / "pwned"

    def canary(path):  # type: ignore[no-untyped-def]
        open(path, "w").close()

    try:
        with gridlib.JobCluster(canary, nodes=[f"127.0.0.1:{node.port}"]) as cluster:
            job = cluster.submit(str(marker))
            assert wait_for(lambda: "event=beacon_untrusted_key" in node.log(), 30)
            cluster.cancel(job)
            job(timeout=30)
        assert job.status == gridlib.JobStatus.Cancelled
        assert not marker.exists()
        assert "event=dialing" not in node.log()
    finally:
        node.stop()
