"""The wire's floor: what bare pyzmq does between two processes of this machine, CurveZMQ on.

No scheduler, no node, no worker, no serialization: a DEALER in this process
and a ROUTER in a child process that sends every message straight back, over
``tcp://127.0.0.1`` with a fresh CURVE key pair on each side (the
encryption every gridlib link pays).  The same workloads as ``bench.py``:

- round trips: ``round_trips`` sequential 1-byte messages (p50 and p99);
- messages per second: ``messages`` 1-byte messages pipelined (at most
  ``SMALL_WINDOW`` out at once), sent and echoed;
- echo: ``echoes`` messages of ``size`` bytes, at most ``WINDOW`` out at once,
  counted in MB/s as sent AND received (as ``bench.py`` counts its payload).

No Python job system that encrypts every byte and crosses a process boundary
twice can beat these figures on the same machine; ``bench.py`` prints them as
a reference row and checks the payload target against the echo.

Run alone: ``.venv/bin/python bench/wire_floor.py``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import zmq

WINDOW = 4  # 1 MiB echoes in flight at once
SMALL_WINDOW = 256  # 1-byte messages in flight at once
TIMEOUT_MS = 60_000  # a reply that takes longer than this ends the measure with an error


def _echo_server(public: bytes, secret: bytes, ports: Any) -> None:
    """The child: echo every message back until an empty one arrives."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.curve_server = True
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.linger = 0
    ports.send(sock.bind_to_random_port("tcp://127.0.0.1"))
    try:
        while True:
            frames = sock.recv_multipart(copy=False)
            if len(frames[-1]) == 0:
                break
            sock.send_multipart(frames, copy=False)
    finally:
        sock.close()
        ctx.term()


class FloorError(RuntimeError):
    pass


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); ``bench.py`` and ``shared.py`` use it too."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _pipelined(sock: zmq.Socket[bytes], data: bytes, count: int, window: int) -> float:
    """Seconds to send ``count`` copies of ``data`` with ``window`` in flight and take every echo."""
    sent = done = 0
    start = time.perf_counter()
    while done < count:
        while sent - done < window and sent < count:
            sock.send(data, copy=len(data) < 65536)
            sent += 1
        if not sock.poll(TIMEOUT_MS):
            raise FloorError(f"no echo within {TIMEOUT_MS / 1000:.0f} s")
        sock.recv(copy=False)
        done += 1
    return time.perf_counter() - start


def measure(round_trips: int = 200, messages: int = 2000, echoes: int = 100,
            size: int = 1 << 20) -> dict[str, float]:
    """The floor's figures: ``p50_ms``, ``p99_ms``, ``messages_per_s``, ``echo_mb_per_s``."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    spawn = multiprocessing.get_context("spawn")  # no libzmq state forked into the child
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=_echo_server, args=(server_public, server_secret, theirs),
                          daemon=True)
    child.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        if not ours.poll(60):
            raise FloorError("the echo process did not start within 60 s")
        port = ours.recv()
        sock.curve_serverkey = server_public
        sock.curve_publickey, sock.curve_secretkey = client_public, client_secret
        sock.connect(f"tcp://127.0.0.1:{port}")
        _pipelined(sock, b"x", 10, 1)  # the handshake and the first allocations, not timed
        _pipelined(sock, b"x" * size, 2, 1)
        samples = []
        for _ in range(round_trips):
            samples.append(_one_trip(sock))
        small = _pipelined(sock, b"x", messages, SMALL_WINDOW)
        big = _pipelined(sock, b"x" * size, echoes, WINDOW)
        sock.send(b"")
    finally:
        sock.close()
        ctx.term()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(10)
    return {"p50_ms": statistics.median(samples) * 1e3, "p99_ms": percentile(samples, 99) * 1e3,
            "messages_per_s": messages / small, "echo_mb_per_s": 2 * echoes * size / big / 1e6}


def _one_trip(sock: zmq.Socket[bytes]) -> float:
    start = time.perf_counter()
    sock.send(b"x")
    if not sock.poll(TIMEOUT_MS):
        raise FloorError(f"no echo within {TIMEOUT_MS / 1000:.0f} s")
    sock.recv()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1 << 20, help="bytes per echoed message")
    args = p.parse_args(argv)
    f = measure(size=args.size)
    print(f"bare pyzmq, CURVE, two processes: round trip p50 {f['p50_ms']:.3f} ms, "
          f"p99 {f['p99_ms']:.3f} ms; {f['messages_per_s']:.0f} messages/s pipelined; "
          f"{args.size}-byte echo {f['echo_mb_per_s']:.0f} MB/s (sent and received)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
