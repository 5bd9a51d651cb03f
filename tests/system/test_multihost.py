"""Many machines (issue: beacon discovery across hosts, dial-out nodes behind NAT, the relay).

Hosts are network namespaces this module creates: subnet A 198.51.100.0/24 (the client,
three nodes, the relay, a NAT router), subnet B 203.0.113.0/24 behind the relay, and a
NAT'd subnet C (203.0.113.128/25) behind the router.  Needs root and iproute2; the NAT
test also needs nftables.  Without them these tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.system.netns import Lab, netns_unavailable

_WHY = netns_unavailable()
pytestmark = [pytest.mark.skipif(bool(_WHY), reason=_WHY or "namespaces available"),
              pytest.mark.slow]  # a lab of network namespaces, daemons in them

CLIENT = r'''
import json, sys, time
import gridlib

nodes, expect, scheduler_port = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = time.monotonic()
seen = {}

def status(st, node, job):
    if st == gridlib.NodeStatus.Initialized and node is not None:
        seen.setdefault(node.name, round(time.monotonic() - t0, 3))

def where(i):
    import time
    from gridlib import job_context
    time.sleep(0.1)
    return job_context().node_name

cluster = gridlib.JobCluster(where, nodes=nodes, cluster_status=status, pulse_interval=0.5,
                             scheduler_port=scheduler_port)
ran = set()
first = None
deadline = time.monotonic() + 90
while time.monotonic() < deadline and len(ran) < expect:
    jobs = [cluster.submit(i) for i in range(8)]
    for job in jobs:
        name = job(timeout=60)
        if name and first is None:
            first = round(time.monotonic() - t0, 3)
        ran.add(name)
    print(json.dumps({"ran": sorted(n for n in ran if n), "seen": seen}), flush=True)
cluster.close()
print(json.dumps({"done": sorted(n for n in ran if n), "seen": seen, "first_result": first}), flush=True)
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        a, b = lab.subnet("A"), lab.subnet("B")
        lab.client = lab.host("client", (a, "198.51.100.1/24"))  # type: ignore[attr-defined]
        lab.a_nodes = [lab.host(f"n{i}", (a, f"198.51.100.{10 + i}/24")) for i in (1, 2, 3)]  # type: ignore[attr-defined]
        lab.relay = lab.host("relay", (a, "198.51.100.2/24"), (b, "203.0.113.2/25"))  # type: ignore[attr-defined]
        lab.b_nodes = [lab.host(f"b{i}", (b, f"203.0.113.{10 + i}/25")) for i in (1, 2)]  # type: ignore[attr-defined]
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture(autouse=True)
def stop_lab_processes(lab: Lab) -> Iterator[None]:
    yield
    lab.stop_processes()


def run_client(lab: Lab, nodes: list[str], expect: int, scheduler_port: int = 0,
               name: str = "client") -> tuple[subprocess.Popen[bytes], Path]:
    script = lab.tmp / "client.py"
    script.write_text(CLIENT)
    log = lab.tmp / f"{name}.jsonl"
    log.write_text("")
    proc = lab.start(lab.client, [str(script), json.dumps(nodes), str(expect), str(scheduler_port)], log)  # type: ignore[attr-defined]
    return proc, log


def last(log: Path) -> dict:  # type: ignore[type-arg]
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def unreachable(lab: Lab, ns: str, address: str) -> bool:
    """True when a TCP connection from ``ns`` to ``address`` fails."""
    code = (f"import socket\ntry:\n socket.create_connection(('{address}', 51352), timeout=3)\n"
            f"except OSError as e:\n print('refused', e)\nelse:\n print('connected')")
    out = lab.sh(ns, sys.executable, "-c", code).stdout
    return out.startswith("refused")


def test_wildcard_discovery_over_three_hosts_and_a_late_node(lab: Lab) -> None:
    for i, ns in enumerate(lab.a_nodes[:2], 1):  # type: ignore[attr-defined]
        lab.node(ns, f"n{i}")
    client, log = run_client(lab, ["198.51.100.*"], expect=3)
    assert wait_for(lambda: len(last(log).get("ran", [])) >= 2, 90), log.read_text()
    lab.node(lab.a_nodes[2], "n3")  # type: ignore[attr-defined]  # joins while jobs run
    assert wait_for(lambda: "done" in last(log), 120), log.read_text()
    assert last(log)["done"] == ["n1", "n2", "n3"]
    assert client.wait(30) == 0
    print("discovery (s since JobCluster()):", last(log)["seen"], "first result:", last(log)["first_result"])


def test_cidr_discovery(lab: Lab) -> None:
    for i, ns in enumerate(lab.a_nodes, 1):  # type: ignore[attr-defined]
        lab.node(ns, f"n{i}")
    client, log = run_client(lab, ["198.51.100.8/29"], expect=3)  # .9 to .14
    assert wait_for(lambda: "done" in last(log), 120), log.read_text()
    assert last(log)["done"] == ["n1", "n2", "n3"]
    assert client.wait(30) == 0


def test_relay_bridges_two_subnets_without_a_route(lab: Lab) -> None:
    assert unreachable(lab, lab.client, "203.0.113.11")  # type: ignore[attr-defined]  # no direct way
    for i, ns in enumerate(lab.b_nodes, 1):  # type: ignore[attr-defined]
        lab.node(ns, f"b{i}")
    relay_log = lab.tmp / "relay.log"
    lab.start(lab.relay, ["-m", "gridlib.daemons.relay", "--host", "198.51.100.2",  # type: ignore[attr-defined]
                          "--node", "203.0.113.8/29"], relay_log)
    assert wait_for(lambda: "event=relay_started" in relay_log.read_text(), 30)
    client, log = run_client(lab, ["198.51.100.2"], expect=2)  # the client names the relay
    assert wait_for(lambda: "done" in last(log), 120), log.read_text() + relay_log.read_text()
    assert last(log)["done"] == ["b1", "b2"]
    assert client.wait(30) == 0
    assert "event=bridge_opened" in relay_log.read_text()


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) is not installed: no NAT")
def test_dial_out_node_behind_nat(lab: Lab) -> None:
    if not hasattr(lab, "nat_node"):
        c = lab.subnet("C")
        lab.router = lab.host("router", (lab.switch and "brA", "198.51.100.254/24"),  # type: ignore[attr-defined]
                              (c, "203.0.113.129/25"))
        lab.nat_node = lab.host("nat", (c, "203.0.113.150/25"), gateway="203.0.113.129")  # type: ignore[attr-defined]
        lab.sh(lab.router, "sysctl", "-w", "net.ipv4.ip_forward=1")  # type: ignore[attr-defined]
        for rule in (["add", "table", "ip", "nat"],
                     ["add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100 ; }"],
                     ["add", "rule", "ip", "nat", "post", "ip", "saddr", "203.0.113.128/25",
                      "oifname", "eth0", "masquerade"]):
            lab.sh(lab.router, "nft", *rule)  # type: ignore[attr-defined]
    assert unreachable(lab, lab.client, "203.0.113.150")  # type: ignore[attr-defined]
    port = 47000 + int(time.time()) % 1000
    client, log = run_client(lab, [], expect=1, scheduler_port=port)
    lab.node(lab.nat_node, "natted", "--port", "0", "--scheduler", f"198.51.100.1:{port}")  # type: ignore[attr-defined]
    assert wait_for(lambda: "done" in last(log), 120), log.read_text()
    assert last(log)["done"] == ["natted"]
    assert client.wait(30) == 0
