"""Many lightweight node stubs in one process, for ``bench/scale.py`` part c.

Run: ``python bench/stub_nodes.py COUNT SCHEDULER_ENDPOINT SCHEDULER_PUBLIC_KEY``.
Each stub is a CURVE DEALER with its own routing id that speaks the node side of
the protocol (READY, SETUP_OK, JOB_RESULT at once for every job assigned,
HEARTBEAT, DISCONNECT), so a real scheduler sees COUNT 2-CPU nodes that run
every job in no time.  The stubs use the user's key (``GRIDLIB_CONFIG_DIR``);
they stop on SIGTERM or when their parent process is gone.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import zmq  # noqa: E402

from gridlib.protocol.codec import Message, decode, encode, new_message, split_envelope  # noqa: E402

RESULT_LABELS = ["result", "stdout", "stderr"]
RESULT_FRAMES = [pickle.dumps(None, protocol=5), b"", b""]  # what a no-op job sends back


def run_stubs(count: int, endpoint: str, server_key: bytes) -> int:
    """(In the stub process) ``count`` nodes on CURVE DEALERs answering every job at once."""
    from gridlib.protocol.keys import user_keypair
    from gridlib.protocol.sockets import curve_client_socket

    stopping, parent = threading.Event(), os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    keypair, context, poller = user_keypair(), zmq.Context(), zmq.Poller()
    socks = []
    for i in range(count):
        sock = curve_client_socket(context, zmq.DEALER, keypair, server_key)
        sock.setsockopt(zmq.ROUTING_ID, b"n" + uuid.uuid4().bytes)
        sock.connect(endpoint)
        sock.send_multipart([b"", *encode(new_message("READY", {
            "node_id": f"stub-{i}-{uuid.uuid4().hex[:8]}", "name": f"stub-{i}", "cpus": 2,
            "ip_addr": "127.0.0.1", "port": 0, "pid": os.getpid(), "batches": True}))])
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
    next_beat = time.monotonic()
    while not stopping.is_set():
        for sock, _ in poller.poll(200):
            for _ in range(1000):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                for answer in _stub_answers(decode(split_envelope(frames)[1])):
                    sock.send_multipart([b"", *encode(answer)], copy=False)
        if time.monotonic() >= next_beat:
            if os.getppid() != parent:  # the bench is gone: so are we
                break
            next_beat = time.monotonic() + 2.0
            for sock in socks:
                sock.send_multipart([b"", *encode(new_message("HEARTBEAT"))])
    for sock in socks:
        sock.send_multipart([b"", *encode(new_message("DISCONNECT"))])
        sock.close(100)
    context.term()
    return 0


def _stub_answers(msg: Message) -> list[Message]:
    f = msg.fields
    if msg.type == "SETUP":
        return [new_message("SETUP_OK", {"cluster_id": f["cluster_id"], "running": [], "results": []})]
    if msg.type == "JOB_ASSIGN":
        return [_stub_result(f["cluster_id"], f["job_id"], f["attempt"])]
    if msg.type == "JOBS_ASSIGN":  # several at once: [cluster_id, job_id, attempt, timeout, frames]
        return [_stub_result(cluster_id, job_id, attempt) for cluster_id, job_id, attempt, *_ in f["jobs"]]
    return []


def _stub_result(cluster_id: str, job_id: str, attempt: int) -> Message:
    now = time.time()
    return new_message("JOB_RESULT", {"job_id": job_id, "attempt": attempt, "cluster_id": cluster_id,
                                      "status": "finished", "start_time": now, "end_time": now},
                       RESULT_FRAMES, RESULT_LABELS)


if __name__ == "__main__":
    sys.exit(run_stubs(int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()))
