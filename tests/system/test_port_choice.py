"""A port the OS picks for one of gridlib's sockets is never a well-known gridlib port, and a
JobCluster takes "a node listens on this host" to mean a node.

The OS picks ports from a range that holds 51350-51352.  A client's embedded scheduler bound
to 51352 looked like a running node to every JobCluster on the host, which then used it
instead of starting its own private node, and its jobs waited for a node that was never
there; and a connection to a free port of that range can be a socket connected to itself.
Each test runs in a host (a network namespace the test creates) whose port range is narrowed
so that the OS has to offer the ports in question.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import read_port_file
from tests.system.netns import Lab, netns_unavailable

pytestmark = pytest.mark.skipif(bool(netns_unavailable()), reason=netns_unavailable() or "n/a")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.cleanup()


def _host(lab: Lab, port_range: str) -> str:
    """A fresh host (loopback only) whose OS picks ports from ``port_range``."""
    ns = lab.host(f"p{len(lab.namespaces)}")
    lab.sh(ns, "sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={port_range}")
    return ns


def _python(lab: Lab, ns: str, code: str, timeout: float = 120) -> str:
    """The output of ``code`` run by Python in host ``ns`` (from the repository's root)."""
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _run(lab: Lab, port_range: str, code: str, timeout: float = 120) -> str:
    return _python(lab, _host(lab, port_range), code, timeout)


def _node(lab: Lab, ns: str, name: str, *extra: str) -> int:
    """A ``gridlib node`` in host ``ns`` (tracked by the lab, stopped at its clean-up); its
    beacon port, once it has said so in its port file."""
    port_file = lab.tmp / f"{name}.ports"
    proc, log = lab.node(ns, name, "--host", "127.0.0.1", "--port-file", str(port_file), *extra)
    found = read_port_file(port_file, proc, f"node {name}", log.read_text)
    return int(found["ports"]["beacon"])


def test_a_port_the_os_picks_is_never_a_well_known_one(lab: Lab) -> None:
    # 10 ports, 3 of them well known; five sockets bound at once, eight times over (the odd
    # ports, 51351 among them, are the ones bind(0) offers first)
    out = _run(lab, "51350 51359", """
        import zmq
        from gridlib.protocol.sockets import bind_any_port
        ports = []
        for _ in range(8):
            ctx = zmq.Context()
            ports += [bind_any_port(ctx.socket(zmq.ROUTER), "127.0.0.1") for _ in range(5)]
            ctx.destroy(linger=0)  # (every socket closed, its port free again, on return)
        print(len(ports), *sorted(set(ports)))
        """)
    count, *ports = out.split()
    assert count == "40"
    assert not {int(p) for p in ports} & {51350, 51351, 51352}, ports


def test_a_node_given_port_0_reports_the_port_it_got_and_it_is_not_a_well_known_one(lab: Lab) -> None:
    # `gridlib node --port 0` in a range of 4 ports, 3 of them well known: it listens on the
    # fourth and says so (a client then reaches it there)
    port = _node(lab, _host(lab, "51350 51353"), "any-port", "--port", "0")
    assert port == 51353


def test_a_connection_to_itself_is_not_a_node(lab: Lab) -> None:
    # one port in the range: connecting to 127.0.0.1:51352, where nothing listens, takes
    # 51352 as the source port too -- TCP connects the socket to itself (each in a host of
    # its own: the closed self-connection's TIME_WAIT would keep a second one from forming)
    probe = _run(lab, "51352 51352", """
        import socket
        with socket.create_connection(("127.0.0.1", 51352), timeout=5) as s:
            print("self-connected" if s.getsockname() == s.getpeername() else "other")
        """)
    assert probe.strip() == "self-connected"
    out = _run(lab, "51352 51352", """
        from gridlib.local_node import node_listening
        print(node_listening("127.0.0.1", 51352))
        """)
    assert out.strip() == "False"


def test_a_listener_that_is_not_zeromq_is_not_a_node(lab: Lab) -> None:
    out = _run(lab, "40000 40100", """
        import socket
        from gridlib.local_node import node_listening
        server = socket.create_server(("127.0.0.1", 51352))
        print(node_listening("127.0.0.1", 51352, greeting_timeout=1.0))
        """)
    assert out.strip() == "False"


def test_a_job_cluster_in_a_narrow_port_range_starts_its_node_and_runs(lab: Lab) -> None:
    # the embedded scheduler, the self-test and the private node all take ports from 30,
    # three of them well known: the cluster still starts its own node and runs the jobs
    out = _run(lab, "51340 51369", """
        import gridlib
        from gridlib.protocol.sockets import WELL_KNOWN_PORTS
        for _ in range(3):
            with gridlib.JobCluster(abs, local_cpus=1, node_wait=60) as cluster:
                port = cluster._conn.scheduler.node_port
                assert port not in WELL_KNOWN_PORTS, port
                assert cluster._local_node is not None, "no private node started"
                print(cluster.submit(-7)(timeout=60))
        """, timeout=240)
    assert out.split() == ["7", "7", "7"]


def test_a_node_running_on_this_host_is_used_instead_of_a_private_one(lab: Lab) -> None:
    # the check's positive side: a real `gridlib node` on 51352 greets, and the cluster uses it
    ns = _host(lab, "40000 40999")
    assert _node(lab, ns, "running") == 51352  # (the default port)
    out = _python(lab, ns, """
        import gridlib
        from gridlib.local_node import node_listening
        print(node_listening())
        with gridlib.JobCluster(abs) as cluster:
            job = cluster.submit(-9)
            print(job(timeout=60), job.node, cluster._local_node is None)
        """)
    assert out.split() == ["True", "9", "running", "True"], out
