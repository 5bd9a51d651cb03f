"""The ``gridlib`` command as a user runs it: node daemons and keys, as real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import gridlib
from gridlib import JobStatus
from tests.helpers import read_port_file, wait_for

GRIDLIB = str(Path(sys.executable).parent / "gridlib")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRIDLIB, *args], capture_output=True, text=True, timeout=timeout, check=False)


def start_node(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    """``gridlib node --port 0 --port-file F``: the process, its log and the port it got."""
    log, port_file = tmp_path / "node.log", tmp_path / "node.ports.json"
    with open(log, "wb") as out:
        proc = subprocess.Popen([GRIDLIB, "node", "--host", "127.0.0.1", "--port", "0",
                                 "--port-file", str(port_file),
                                 "--dest-path-prefix", str(tmp_path / "n"), *extra],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        ports = read_port_file(port_file, proc, "gridlib node", log.read_text)["ports"]
    except RuntimeError:
        stop(proc)
        raise
    return proc, log, int(ports["beacon"])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "node" in result.stdout and "keys" in result.stdout
    node_help = run("node", "--help")
    assert node_help.returncode == 0 and "--cpus" in node_help.stdout and "--scheduler" in node_help.stdout


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"gridlib {gridlib.__version__}\n"
    assert gridlib.__version__ == "0.1.0"


def test_shell_completion_is_offered_and_completes_commands() -> None:
    # (--show-completion prints the script for the shell it detects from the parent processes,
    # which differs from machine to machine; the completion protocol itself does not)
    assert "--install-completion" in run("--help").stdout
    env = {**os.environ, "_GRIDLIB_COMPLETE": "complete_bash", "COMP_WORDS": "gridlib sch",
           "COMP_CWORD": "1"}
    done = subprocess.run([GRIDLIB], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.split() == ["scheduler"]


def test_keys_generate_and_show(tmp_path: Path) -> None:
    result = run("keys", "generate", str(tmp_path / "k"))
    assert result.returncode == 0
    public = result.stdout.strip()
    assert len(public) == 40
    secret = tmp_path / "k" / "identity.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert run("keys", "show", str(tmp_path / "k")).stdout.strip() == public
    assert public not in secret.read_text().split("secret-key")[1]  # the secret half differs
    again = run("keys", "generate", str(tmp_path / "k"))
    assert again.returncode != 0 and "exists" in again.stderr
    os.chmod(secret, 0o644)
    refused = run("keys", "show", str(tmp_path / "k"))
    assert refused.returncode != 0 and "chmod 600" in refused.stderr


def test_node_found_through_the_beacon_runs_jobs_and_stops_clean(tmp_path: Path) -> None:
    """Story: `gridlib node` in one terminal, JobCluster(nodes=[...]) in another."""
    proc, log, port = start_node(tmp_path, "--cpus", "2", "--name", "node-under-test")
    try:
        with gridlib.JobCluster(lambda x: x + 1, nodes=[f"127.0.0.1:{port}"]) as cluster:
            jobs = [cluster.submit(i) for i in range(6)]
            assert [j(timeout=60) for j in jobs] == list(range(1, 7))
            assert {j.node for j in jobs} == {"node-under-test"}
            workers = psutil.Process(proc.pid).children(recursive=True)
            assert workers  # forkserver and worker processes
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                    for p in workers), 15)


def test_node_port_0_reports_the_port_it_got_and_a_client_reaches_it(tmp_path: Path) -> None:
    """`gridlib node --port 0 --port-file F`: the OS chooses the beacon port, F says which."""
    port_file = tmp_path / "node.json"
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([GRIDLIB, "node", "--host", "127.0.0.1", "--port", "0",
                                 "--port-file", str(port_file), "--cpus", "1",
                                 "--dest-path-prefix", str(tmp_path / "prefix")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        report = read_port_file(port_file, proc, "gridlib node", log.read_text)
        port = report["ports"]["beacon"]
        assert report == {"pid": proc.pid, "ports": {"beacon": port}}
        assert isinstance(port, int) and 0 < port < 65536
        started = next(line for line in log.read_text().splitlines() if "event=node_started" in line)
        assert f" port={port} " in started  # the INFO line names it too
        assert f"event=port_file_written path={port_file} beacon={port}" in log.read_text()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".node.json")] == []
        with gridlib.JobCluster(lambda: "reached", nodes=[f"127.0.0.1:{port}"]) as cluster:
            assert cluster.submit()(timeout=60) == "reached"
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert not port_file.exists()  # gone with the daemon: a port file names a live process


@pytest.mark.parametrize("daemon", ["node", "scheduler", "relay"])
@pytest.mark.parametrize("bad", ["missing-directory", "a-directory"])
def test_a_bad_port_file_is_one_line_and_exit_2(tmp_path: Path, daemon: str, bad: str) -> None:
    path = tmp_path / "no-such-dir" / "ports.json" if bad == "missing-directory" else tmp_path
    extra = {"node": ["--dest-path-prefix", str(tmp_path / "prefix")],
             "scheduler": ["--node-port", "0"], "relay": ["--node", "127.0.0.1"]}[daemon]
    result = run(daemon, "--host", "127.0.0.1", "--port", "0", "--port-file", str(path), *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    reason = "No such file or directory" if bad == "missing-directory" else "is a directory"
    assert lines[0].startswith(f"gridlib {daemon}: cannot write the port file {path}: ")
    assert reason in lines[0], lines[0]


def test_node_ignores_a_scheduler_it_does_not_trust(tmp_path: Path) -> None:
    keys = tmp_path / "other-keys"
    assert run("keys", "generate", str(keys)).returncode == 0
    proc, log, port = start_node(tmp_path, "--keys", str(keys))
    try:
        with gridlib.JobCluster(lambda: 1, nodes=[f"127.0.0.1:{port}"]) as cluster:
            job = cluster.submit()
            assert wait_for(lambda: "event=beacon_untrusted_key" in log.read_text(), 30)
            assert job.status == JobStatus.Created  # nobody would run it
            cluster.cancel(job)
            job(timeout=30)
            assert job.status == JobStatus.Cancelled
        assert "event=dialing" not in log.read_text()
    finally:
        stop(proc)


def test_node_with_a_shared_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("correct horse battery staple")
    refused = run("node", "--port", "0", "--secret-file", str(secret_file))  # 0644: refused
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    secret_file.chmod(0o600)
    proc, _, port = start_node(tmp_path, "--secret-file", str(secret_file), "--cpus", "1")
    try:
        with gridlib.JobCluster(lambda: "shared", nodes=[f"127.0.0.1:{port}"],
                                secret="correct horse battery staple") as cluster:
            assert cluster.submit()(timeout=60) == "shared"
    finally:
        stop(proc)


def test_bad_option_is_a_clear_error() -> None:
    result = run("node", "--max-file-size", "lots")
    assert result.returncode != 0
    assert "not a size" in result.stderr


def test_every_daemon_option_explains_itself() -> None:
    import typer.main

    from gridlib.daemons.cli import app

    group = typer.main.get_command(app)
    for name in ("node", "scheduler", "relay"):
        command = group.commands[name]  # type: ignore[attr-defined]
        options = [p for p in command.params
                   if p.param_type_name == "option" and not getattr(p, "hidden", False)]
        assert len(options) > 8
        for param in options:
            assert param.help and len(param.help) >= 15, f"gridlib {name} {param.opts}: no help"
    node_help = run("node", "--help").stdout
    for option in ("--service-start", "--serve", "--init", "--clean", "--daemon", "--config",
                   "--save-config", "GRIDLIB_KEYS"):
        assert option in node_help


def _catches_sighup(pid: int) -> bool:
    """Whether the process has a handler for SIGHUP (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(mask, 16) & (1 << (signal.SIGHUP - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status")
@pytest.mark.parametrize("daemon", ["node", "scheduler", "relay"])
def test_a_sighup_while_a_daemon_starts_is_kept_not_fatal(tmp_path: Path, daemon: str) -> None:
    """kill -HUP (an allowlist changed, systemctl reload) as a daemon starts: it used to end the
    process (Python's default action until the reload handler exists); now it reloads once ready."""
    port_file, log = tmp_path / "ports.json", tmp_path / "daemon.log"
    extra = {"node": ["--dest-path-prefix", str(tmp_path / "prefix")],
             "scheduler": ["--node-port", "0"], "relay": []}[daemon]
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"gridlib.daemons.{daemon}", "--host", "127.0.0.1",
                                 "--port", "0", *extra, "--port-file", str(port_file)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: _catches_sighup(proc.pid) or proc.poll() is not None, 30, interval=0.001)
        # the handler exists long before the daemon is ready (its imports and sockets come after)
        assert not port_file.exists(), "SIGHUP is caught only once the daemon is ready"
        proc.send_signal(signal.SIGHUP)
        read_port_file(port_file, proc, daemon, log.read_text)
        assert wait_for(lambda: "deferred=true" in log.read_text(), 30), log.read_text()
        assert wait_for(lambda: "event=allowlist_reloaded" in log.read_text(), 30), log.read_text()
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
