"""Allowlists managed with ``gridlib keys`` and reloaded with SIGHUP; no secret in logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import gridlib
from gridlib import JobStatus
from gridlib.protocol.keys import derive_keypair, user_keypair
from tests.helpers import NodeProcess, wait_for

GRIDLIB = str(Path(sys.executable).parent / "gridlib")


def keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRIDLIB, "keys", *args], capture_output=True, text=True, timeout=60, check=False)


def test_allow_and_revoke_take_effect_on_sighup(tmp_path: Path) -> None:
    node_keys = tmp_path / "node-keys"
    assert keys("generate", str(node_keys)).returncode == 0
    client_public = user_keypair().public.decode()  # what the test's clusters use
    client_dir = os.environ["GRIDLIB_CONFIG_DIR"]
    node_public = keys("show", str(node_keys)).stdout.strip()
    # the client must trust the node too (it accepts results only from allowlisted nodes)
    # "--" ends the options: a Z85 key may start with "-"
    assert keys("allow", "--as", "node", "--name", "test-node", "--dir", client_dir, "--",
                node_public).returncode == 0
    node = NodeProcess(tmp_path, "--keys", str(node_keys), "--cpus", "1")
    try:
        with gridlib.JobCluster(lambda: "in", nodes=[f"127.0.0.1:{node.port}"], pulse_interval=0.5) as c:
            job = c.submit()
            assert wait_for(lambda: "event=beacon_untrusted_key" in node.log(), 30)
            allowed = keys("allow", "--as", "client", "--name", "laptop", "--dir", str(node_keys),
                           "--", client_public)
            assert allowed.returncode == 0, allowed.stderr
            assert (node_keys / "clients" / "laptop.key").exists()
            os.kill(node.pid, signal.SIGHUP)
            assert job(timeout=60) == "in"  # trusted now, without a restart
            listed = keys("list", "--dir", str(node_keys)).stdout
            assert "laptop" in listed and client_public in listed
            assert keys("revoke", "laptop", "--dir", str(node_keys)).returncode == 0
            os.kill(node.pid, signal.SIGHUP)
            assert wait_for(lambda: "reason='key revoked'" in node.log(), 30)
            assert wait_for(lambda: c.status().nodes and all(
                n.status == gridlib.NodeStatus.Closed for n in c.status().nodes), 30)
            later = c.submit()
            assert wait_for(lambda: c._conn.scheduler.core.clusters[c.cluster_id].queued == 1, 30)
            assert later.status == JobStatus.Created  # nobody serves it any more
            c.cancel(later)
            later(timeout=30)
        assert keys("revoke", "laptop", "--dir", str(node_keys)).returncode == 1  # gone already
        bad = keys("allow", "not-a-key", "--dir", str(node_keys))
        assert bad.returncode == 2 and "Z85" in bad.stderr
    finally:
        keys("revoke", "test-node", "--dir", client_dir)
        node.stop()
    assert not node.orphans


def test_secrets_never_reach_the_logs(tmp_path: Path) -> None:
    secret = "very secret passphrase 123"
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    node = NodeProcess(tmp_path, "--secret-file", str(secret_file), "--cpus", "1",
                       "--log-level", "debug")
    try:
        with gridlib.JobCluster(lambda: 7, nodes=[f"127.0.0.1:{node.port}"], secret=secret) as c:
            assert c.submit()(timeout=60) == 7
    finally:
        node.stop()
    log = node.log()
    derived = derive_keypair(secret)
    assert secret not in log and derived.secret.decode() not in log
    assert derived.secret.decode() not in repr(derived)
    on_command_line = NodeProcess(tmp_path, "--secret", secret, "--cpus", "1")
    on_command_line.stop()
    assert "event=secret_on_command_line" in on_command_line.log()
