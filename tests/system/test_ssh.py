"""``gridlib ssh`` (issue #17): nodes started over ssh, used by a JobCluster, stopped by PID.

Three levels:

* without processes: usage errors, host checks, quoting of the remote command,
  the one-line reasons, which node options are passed on;
* with a stand-in for ssh that runs the remote command on this host (no root
  needed): a node comes up, is reported, and SIGTERM stops it by PID;
* with a real ``sshd`` (its own config, host key and authorized keys in
  tmp, its own port) in a network-namespace host this module creates
  (198.51.100.0/24), reached by the real ``ssh`` with a per-test ``-F`` config,
  client key and known_hosts: a JobCluster in another namespace host runs jobs
  on the node (their working directory and address prove where), SIGTERM (and
  even SIGKILL) of ``gridlib ssh`` stops the remote node, and a refused key,
  an unreachable address, a missing Python or gridlib, and a node that will
  not start each give one line.  Needs root, iproute2 and openssh-server
  (``/usr/sbin/sshd``); without them these tests skip and say why.

Every process a test starts is stopped by PID.  Nothing here reads or writes the real
``~/.ssh`` or ``~/.config/gridlib``.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from gridlib import ssh_report, ssh_tool
from gridlib.daemons.cli import app
from gridlib.daemons.cli.ssh_cmd import NODE_OPTIONS, NOT_FORWARDED, node_arguments
from tests.helpers import stop_process_trees, wait_for
from tests.system.netns import Lab, netns_unavailable

REPO = Path(__file__).resolve().parents[2]
GRIDLIB = [sys.executable, "-c", "from gridlib.daemons.cli import main; main()"]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
runner = CliRunner()


def _env(config: Path) -> dict[str, str]:
    """This repository's gridlib, and a throwaway user key directory."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
            "GRIDLIB_CONFIG_DIR": str(config)}


def _python_with_gridlib(tmp: Path) -> Path:
    """What --python names on the hosts: an interpreter that imports this gridlib."""
    script = tmp / "python-with-gridlib"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} "
                      f"exec {shlex.quote(sys.executable)} \"$@\"\n")
    script.chmod(0o755)
    return script


def _stop(processes: list[psutil.Process]) -> None:
    """SIGTERM to each process and its descendants (by PID), SIGKILL 15 s later."""
    stop_process_trees(processes, 15.0)


class GridlibSsh:
    """A ``gridlib ssh`` process (optionally in a namespace host), its output in files."""

    serial = 0

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str],
                 ns: str | None = None) -> None:
        GridlibSsh.serial += 1
        self.out_path = tmp / f"command-{GridlibSsh.serial}.out"
        self.err_path = tmp / f"command-{GridlibSsh.serial}.err"
        prefix = ["ip", "netns", "exec", ns] if ns else []
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*prefix, *GRIDLIB, "ssh", "--json", *args],
                                         stdout=out, stderr=err, env=env, cwd=tmp,
                                         stdin=subprocess.DEVNULL)
        self.process = psutil.Process(self.proc.pid)  # `ip netns exec` execs: the same PID

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.out_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        return events

    def status(self, host: str) -> dict[str, Any] | None:
        """The latest event for ``host``."""
        found = [e for e in self.events() if e.get("host") == host]
        return found[-1] if found else None

    def stderr_lines(self) -> list[str]:
        return self.err_path.read_text().splitlines()

    def output(self) -> str:
        return f"stdout:\n{self.out_path.read_text()}\nstderr:\n{self.err_path.read_text()}"

    def wait_settled(self, hosts: list[str], timeout: float = 150.0) -> dict[str, dict[str, Any]]:
        """Wait until every host is up or failed (or the command exited); their events."""
        def settled() -> bool:
            return self.proc.poll() is not None or all(
                (self.status(h) or {}).get("status") in ("up", "failed") for h in hosts)
        assert wait_for(settled, timeout, interval=0.05), self.output()
        return {h: self.status(h) or {} for h in hosts}

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gridlib ssh did not exit within {timeout} s of signal {sig}\n"
                        f"{self.output()}")


def _gone(pid: int, created: float) -> bool:
    """True once process ``pid`` (created at ``created``) no longer runs (a reused PID is
    another process)."""
    try:
        proc = psutil.Process(pid)
        return bool(proc.create_time() != created or proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _flat(text: str) -> str:
    """typer's error box as one line."""
    return " ".join(text.replace("│", " ").split())


# -- without processes ------------------------------------------------------------------

def test_no_host_is_a_usage_error() -> None:
    result = runner.invoke(app, ["ssh"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


@pytest.mark.parametrize("host", ["h;touch /tmp/x", "$(touch /tmp/x)", "h`id`", "a b",
                                  "-oProxyCommand=touch /tmp/x", "h|x", "h&", "h>x", "",
                                  "ssh://h/x", "h\nx"])
def test_a_host_with_shell_or_ssh_syntax_is_refused(host: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    result = runner.invoke(app, ["ssh", "--ssh", "true", "--",
                                 host.replace("/tmp/x", str(canary))])
    assert result.exit_code == 2, result.output
    assert "is not a host" in _flat(result.output)
    assert not canary.exists()


@pytest.mark.parametrize("host", ["node1", "alice@node1.example.org", "198.51.100.10",
                                  "root@[2001:db8::1]", "ssh://bob@node1:2222", "grid_7-b"])
def test_ordinary_hosts_pass(host: str) -> None:
    assert ssh_tool.check_host(host) == host


def test_a_bad_cpus_is_refused_by_the_node_option_itself() -> None:
    result = runner.invoke(app, ["ssh", "node1", "--cpus", "many", "--ssh", "true"])
    assert result.exit_code == 2
    assert "'--cpus'" in result.output


def test_the_remote_command_is_quoted_word_by_word() -> None:
    python = "/opt/my python;rm -rf ~/x $(id)"
    options = {"client_key": "a$b&c<d[e]f'g\"h`i", "node_args": ["--name", "x; $(touch y)"]}
    command = ssh_tool.remote_command(python, options)
    words = shlex.split(command)
    assert words[:4] == ["exec", python, "-c", ssh_tool.BOOT]
    assert len(words) == 6
    assert json.loads(base64.b64decode(words[5])) == options
    assert "\n" not in command and "!" not in ssh_tool.BOOT
    home = ssh_tool.remote_command("~/venv/bin/python", options)
    assert home.startswith("exec \"$HOME\"/venv/bin/python -c ")
    argv = ssh_tool.ssh_argv(["ssh", "-F", "cfg"], ["Port=2222"], "alice@h", command)
    assert argv[:5] == ["ssh", "-F", "cfg", "-T", "-o"] and argv[5] == "Port=2222"
    assert argv[-3:] == ["--", "alice@h", command]  # the user's -o come before the defaults
    assert argv.index("Port=2222") < argv.index("BatchMode=yes")


def test_reasons_are_one_line() -> None:
    assert ssh_tool.ssh_failure([
        "Warning: Permanently added '[h]:22' (ED25519) to the list of known hosts.",
        "root@h: Permission denied (publickey).", ""]) == "root@h: Permission denied (publickey)."
    assert ssh_tool.failure_reason("python3", 255, ["ssh: connect to host h port 22: No route "
                                                    "to host"]) == \
        "ssh failed: connect to host h port 22: No route to host"
    assert "cannot run --python /x/py there" in ssh_tool.failure_reason(
        "/x/py", 127, ["bash: line 1: exec: /x/py: not found"])
    boxed = ["Usage: python -m gridlib.daemons.node [OPTIONS]",
             "Try 'python -m gridlib.daemons.node --help' for help.",
             "╭─ Error ───────────────────╮",
             "│ Invalid value: --service-start: '25:00' is not a time of day (00:00 to       │",
             "│ 23:59)                                                                       │",
             "╰──────────────────────────╯"]
    assert ssh_tool.node_failure(boxed) == \
        "Invalid value: --service-start: '25:00' is not a time of day (00:00 to 23:59)"
    assert ssh_tool.node_failure(["2026 INFO x", "gridlib node: 0.0.0.0:6 is already in use"]) \
        == "0.0.0.0:6 is already in use"
    assert ssh_report.node_address("2001:db8::1", 6000) == "[2001:db8::1]:6000"
    assert ssh_tool.trust_name("root@[2001:db8::1]", 6000) == "ssh-root__2001_db8__1_-6000"


def test_every_node_option_is_passed_on_or_set_by_gridlib_ssh() -> None:
    import inspect

    from gridlib.daemons.cli.node_cmd import node

    names = set(inspect.signature(inspect.unwrap(node)).parameters)
    assert set(NODE_OPTIONS) | set(NOT_FORWARDED) == names
    args, paths = node_arguments({"cpus": -1, "port": 0, "clean": True, "name": "x y",
                                  "log_level": "info", "init": Path("site.py"),
                                  "dest_path_prefix": "~/grid"})
    assert args == ["--cpus", "-1", "--port", "0", "--name", "x y", "--clean"]
    assert paths == {"--init": "site.py", "--dest-path-prefix": "~/grid"}


# -- a stand-in for ssh: the "remote" command runs here -----------------------------------

FAKE_SSH = r'''
import os, sys
args = sys.argv[1:]
at = args.index("--")
host, command = args[at + 1], args[at + 2]
if host.startswith("down"):
    sys.stderr.write("ssh: connect to host %s port 22: Connection refused\n" % host)
    sys.exit(255)
os.environ["SSH_CONNECTION"] = "127.0.0.1 50000 127.0.0.1 22"
os.execvp("sh", ["sh", "-c", command])
'''


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[dict[str, Any]]:
    script = tmp_path / "fake_ssh.py"
    script.write_text(FAKE_SSH)
    started: list[psutil.Process] = []
    yield {"tmp": tmp_path, "started": started, "env": _env(tmp_path / "config"),
           "args": ["--ssh", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
                    "--python", str(_python_with_gridlib(tmp_path)), "--host", "127.0.0.1",
                    "--port", "0", "--cpus", "1"]}
    _stop(started)


def test_nodes_come_up_are_trusted_and_stop_on_ctrl_c(fake: dict[str, Any]) -> None:
    cmd = GridlibSsh(fake["tmp"], ["up1", "up2", *fake["args"]], fake["env"])
    fake["started"].append(cmd.process)
    found = cmd.wait_settled(["up1", "up2"], timeout=90)
    assert [found[h]["status"] for h in ("up1", "up2")] == ["up", "up"], cmd.output()
    nodes = [found[h] for h in ("up1", "up2")]
    created = {n["pid"]: psutil.Process(n["pid"]).create_time() for n in nodes}
    trusted = fake["tmp"] / "config" / "nodes"
    assert sorted(p.name for p in trusted.glob("*.key")) == sorted(
        f"{ssh_tool.trust_name(n['host'], n['port'])}.key" for n in nodes)
    for n in nodes:
        assert n["node"] == f"127.0.0.1:{n['port']}" and n["port"] > 0
        assert Path(n["dir"]).is_dir() and (Path(n["dir"]).stat().st_mode & 0o077) == 0
        assert not (Path(n["dir"]) / "keys" / "identity.key_secret").stat().st_mode & 0o077
    assert any("2 of 2 nodes up" in line for line in cmd.stderr_lines()), cmd.output()
    assert cmd.terminate(signal.SIGINT) == 0, cmd.output()  # as Ctrl-C: stop them all
    for pid, when in created.items():
        assert wait_for(lambda pid=pid, when=when: _gone(pid, when), 30), f"node {pid} lives"
    for n in nodes:
        assert not Path(n["dir"]).exists()
    assert not list(trusted.glob("*.key"))
    assert {e["host"] for e in cmd.events() if e["status"] == "stopped" and e["confirmed"]} \
        == {"up1", "up2"}, cmd.output()


def test_a_failing_host_gets_one_line_and_a_non_zero_exit(fake: dict[str, Any]) -> None:
    cmd = GridlibSsh(fake["tmp"], ["up1", "down1", *fake["args"]], fake["env"])
    fake["started"].append(cmd.process)
    found = cmd.wait_settled(["up1", "down1"], timeout=90)
    assert found["up1"]["status"] == "up" and found["down1"]["status"] == "failed", cmd.output()
    assert [line for line in cmd.stderr_lines() if line.startswith("down1:")] == \
        ["down1: ssh failed: connect to host down1 port 22: Connection refused"]
    created = psutil.Process(found["up1"]["pid"]).create_time()
    assert cmd.terminate() == 1, cmd.output()
    assert wait_for(lambda: _gone(found["up1"]["pid"], created), 30)


def test_a_node_that_dies_is_reported_lost(fake: dict[str, Any]) -> None:
    cmd = GridlibSsh(fake["tmp"], ["up1", *fake["args"]], fake["env"])
    fake["started"].append(cmd.process)
    up = cmd.wait_settled(["up1"], timeout=90)["up1"]
    assert up.get("status") == "up", cmd.output()
    os.kill(up["pid"], signal.SIGKILL)  # as the OOM killer would
    try:
        assert cmd.proc.wait(60) == 1, cmd.output()  # its only node is gone: nothing to wait for
    except subprocess.TimeoutExpired:
        pytest.fail(f"gridlib ssh kept running without a node\n{cmd.output()}")
    said = [line for line in cmd.stderr_lines() if line.startswith("up1:")]
    assert len(said) == 1, cmd.output()
    assert said[0] == "up1: node lost: the node was killed by SIGKILL", cmd.output()
    assert (cmd.status("up1") or {}).get("status") == "lost"
    assert not Path(up["dir"]).exists()


def test_stopped_while_starting_leaves_nothing(fake: dict[str, Any]) -> None:
    env = {**fake["env"], "TMPDIR": str(fake["tmp"])}  # the "remote" run directory goes here
    cmd = GridlibSsh(fake["tmp"], ["up1", *fake["args"]], env)
    fake["started"].append(cmd.process)
    assert wait_for(lambda: cmd.process.children(), 60), cmd.output()  # its "ssh" runs
    assert cmd.terminate(signal.SIGTERM) == 0, cmd.output()

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(fake["tmp"]) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        return found
    assert wait_for(lambda: not ours(), 30), [p.info["cmdline"] for p in ours()]
    assert not list(fake["tmp"].glob("gridlib-ssh-*"))


@pytest.mark.slow  # waits for the keepalive limit
def test_the_wrapper_stops_its_node_when_gridlib_ssh_falls_silent(tmp_path: Path) -> None:
    from gridlib.protocol.keys import generate_keypair

    command = ssh_tool.remote_command(str(_python_with_gridlib(tmp_path)), {
        "client_key": generate_keypair().public.decode(), "paths": {}, "start_timeout": 60,
        "node_args": ["--host", "127.0.0.1", "--port", "0", "--cpus", "1"], "keepalive": 2})
    out = tmp_path / "wrapper.out"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=stdout,
                                stderr=subprocess.STDOUT, env={**_env(tmp_path / "config"),
                                                               "TMPDIR": str(tmp_path)})
    try:
        def events() -> dict[str, dict[str, Any]]:
            lines = [line[len(ssh_tool.MARK):] for line in out.read_text().splitlines()
                     if line.startswith(ssh_tool.MARK)]
            return {e["event"]: e for e in map(json.loads, lines)}
        assert wait_for(lambda: "stopped" in events() or proc.poll() is not None, 90), \
            out.read_text()
        ready, stopped = events().get("ready"), events().get("stopped")
        assert ready and stopped, out.read_text()
        assert stopped["reason"] == "no keepalive from gridlib ssh for 2 s"
        assert stopped["pid"] == ready["pid"] and proc.wait(30) == 0
        assert not psutil.pid_exists(ready["pid"])  # stopped and reaped by the wrapper
        assert not Path(ready["dir"]).exists()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- a real sshd in a network-namespace host ------------------------------------------------

def _lab_unavailable() -> str:
    why = netns_unavailable()
    if why:
        return why
    if not os.access(SSHD, os.X_OK):
        return "openssh-server is not installed (no sshd)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client (ssh, ssh-keygen) is not installed"
    return ""


_WHY = _lab_unavailable()
SERVER, CLIENT = "198.51.100.10", "198.51.100.1"
UNREACHABLE = "198.51.100.99"  # on the subnet, nobody there
SSHD_PORT = 2222


class SshLab(Lab):
    client: str
    server: str
    sshd: psutil.Process
    ssh_config: Path
    python: Path
    config: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshLab]:
    if _WHY:
        pytest.skip(_WHY)
    tmp = tmp_path_factory.mktemp("sshlab")
    lab = SshLab(tmp)
    try:
        subnet = lab.subnet("A")
        lab.client = lab.host("client", (subnet, f"{CLIENT}/24"))
        lab.server = lab.host("server", (subnet, f"{SERVER}/24"))
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f",
                            str(tmp / name)], check=True, capture_output=True, timeout=60)
        (tmp / "root.authorized_keys").write_text((tmp / "client_key.pub").read_text())
        (tmp / "sshd_config").write_text(
            f"Port {SSHD_PORT}\nListenAddress {SERVER}\nHostKey {tmp / 'host_key'}\n"
            f"AuthorizedKeysFile {tmp}/%u.authorized_keys\n"  # only root has one
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "PidFile none\nLogLevel VERBOSE\n")
        lab.ssh_config = tmp / "ssh_config"
        lab.ssh_config.write_text(
            f"Host *\n  Port {SSHD_PORT}\n  IdentityFile {tmp / 'client_key'}\n"
            f"  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {tmp / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking accept-new\n  ConnectTimeout 20\n")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = tmp / "sshd.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", lab.server, SSHD, "-D", "-e", "-f",
                                     str(tmp / "sshd_config")], stdout=out,
                                    stderr=subprocess.STDOUT)
        lab.sshd = psutil.Process(proc.pid)
        lab.processes.append(lab.sshd)  # stopped by PID at lab.cleanup()
        if not wait_for(lambda: "Server listening" in log.read_text() or proc.poll() is not None,
                        60):
            pytest.skip(f"sshd did not start:\n{log.read_text()}")
        if proc.poll() is not None:
            pytest.skip(f"sshd would not run here:\n{log.read_text()}")
        probe = lab.sh(lab.client, "ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes",
                       f"root@{SERVER}", "true", check=False)
        if probe.returncode != 0:
            pytest.skip(f"this system's sshd does not let root log in with a key: "
                        f"{probe.stderr.strip()}")
        lab.python = _python_with_gridlib(tmp)
        lab.config = tmp / "client-config"
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def started(lab: SshLab) -> Iterator[list[psutil.Process]]:
    """Processes a test starts (its gridlib ssh, its client), stopped by PID after it; so is
    whatever a session of the lab's sshd still runs (a node a failed test left)."""
    processes: list[psutil.Process] = []
    yield processes
    _stop(processes)
    _stop(lab.sshd.children())


def _gridlib_ssh(lab: SshLab, started: list[psutil.Process], *args: str,
                 python: str | None = None) -> GridlibSsh:
    cmd = GridlibSsh(lab.tmp, [*args, "--ssh", f"ssh -F {shlex.quote(str(lab.ssh_config))}",
                               "--python", python or str(lab.python)],
                     _env(lab.config), ns=lab.client)
    started.append(cmd.process)
    return cmd


JOBS = r'''
import json, sys
import gridlib

def where(i):
    import os, socket
    from gridlib import job_context
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("198.51.100.1", 9))  # no packet: which local address routes there
    return {"cwd": os.getcwd(), "address": probe.getsockname()[0],
            "node": job_context().node_name, "i": i}

with gridlib.JobCluster(where, nodes=[sys.argv[1]], node_wait=90) as cluster:
    jobs = [cluster.submit(i) for i in range(4)]
    results = [job(timeout=150) for job in jobs]
print(json.dumps({"results": results, "errors": [job.exception for job in jobs]}), flush=True)
'''


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_node_over_real_ssh_runs_jobs_and_stops_on_sigterm(lab: SshLab,
                                                             started: list[psutil.Process]) -> None:
    canary = lab.tmp / "canary"
    name = f"odd name; $(touch {canary}) `touch {canary}`"  # never reaches a shell
    host = f"root@{SERVER}"
    cmd = _gridlib_ssh(lab, started, host, "--port", "0", "--cpus", "1", "--name", name)
    up = cmd.wait_settled([host])[host]
    assert up.get("status") == "up", cmd.output()
    assert up["address"] == SERVER and up["node"] == f"{SERVER}:{up['port']}"
    node = psutil.Process(up["pid"])  # one machine: the namespace host shares our PIDs
    created = node.create_time()
    assert node.cwd().startswith(up["dir"]) and node.ppid() != 1
    trusted = lab.config / "nodes" / f"{ssh_tool.trust_name(host, up['port'])}.key"
    assert trusted.is_file(), cmd.output()
    assert not any(p.name.endswith("key_secret") for p in (lab.config / "nodes").iterdir())
    # the node trusts its own fresh key and our public key, nothing else
    allowed = list((Path(up["dir"]) / "keys" / "clients").glob("*.key"))
    assert len(allowed) == 1 and allowed[0].read_text().count("secret-key") == 0

    script = lab.tmp / "jobs.py"
    script.write_text(JOBS)
    log = lab.tmp / "jobs.log"
    with open(log, "wb") as out:
        client = subprocess.Popen(["ip", "netns", "exec", lab.client, sys.executable,
                                   str(script), up["node"]], stdout=out,
                                  stderr=subprocess.STDOUT, env=_env(lab.config))
    started.append(psutil.Process(client.pid))
    assert client.wait(300) == 0, log.read_text() + cmd.output()
    report = json.loads(log.read_text().strip().splitlines()[-1])
    assert report["errors"] == [None] * 4, report
    for i, result in enumerate(report["results"]):
        assert result["i"] == i
        assert result["cwd"].startswith(up["dir"] + "/")  # the node's own run directory
        assert result["address"] == SERVER  # computed in the server host's namespace
        assert result["node"] == name
    assert not canary.exists()

    assert cmd.terminate(signal.SIGTERM) == 0, cmd.output()
    assert wait_for(lambda: _gone(up["pid"], created), 30), f"node {up['pid']} still runs"
    assert not Path(up["dir"]).exists()
    assert not trusted.exists()
    assert (cmd.status(host) or {}).get("status") == "stopped", cmd.output()
    assert (cmd.status(host) or {}).get("confirmed") is True, cmd.output()
    assert wait_for(lambda: not lab.sshd.children(), 30), lab.sshd.children()  # no session
    print(cmd.output())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_refused_and_unreachable_hosts_get_one_line_while_the_good_one_runs(
        lab: SshLab, started: list[psutil.Process]) -> None:
    good, refused = f"root@{SERVER}", f"nobody@{SERVER}"  # nobody has no authorized key
    cmd = _gridlib_ssh(lab, started, refused, good, UNREACHABLE, "--port", "0", "--cpus", "1")
    found = cmd.wait_settled([refused, good, UNREACHABLE])
    assert found[good].get("status") == "up", cmd.output()
    assert found[refused].get("status") == "failed" and found[UNREACHABLE].get("status") == \
        "failed", cmd.output()
    lines = cmd.stderr_lines()
    said = [line for line in lines if line.startswith(f"{refused}:")]
    assert len(said) == 1 and "Permission denied (publickey)" in said[0], cmd.output()
    said = [line for line in lines if line.startswith(f"{UNREACHABLE}:")]
    assert len(said) == 1 and ("No route to host" in said[0] or "timed out" in said[0]), \
        cmd.output()
    assert cmd.proc.poll() is None  # the good node keeps running
    created = psutil.Process(found[good]["pid"]).create_time()
    assert cmd.terminate() == 1, cmd.output()
    assert wait_for(lambda: _gone(found[good]["pid"], created), 30)
    assert wait_for(lambda: not lab.sshd.children(), 30), lab.sshd.children()
    print(cmd.output())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_python_no_gridlib_or_a_node_that_will_not_start_is_one_line(
        lab: SshLab, started: list[psutil.Process]) -> None:
    host = f"root@{SERVER}"
    cases = [
        ({"python": "/nonexistent/bin/python3"}, [], "cannot run --python /nonexistent/bin/python3"),
        ({"python": "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"},
         [], "gridlib cannot be imported by"),
        ({}, ["--service-start", "25:00", "--service-end", "06:00"],
         "the node did not start: Invalid value: --service-start: '25:00' is not a time of day"),
    ]
    for kwargs, extra, expected in cases:
        cmd = _gridlib_ssh(lab, started, host, "--port", "0", *extra, **kwargs)
        try:
            status = cmd.proc.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gridlib ssh did not give up: {cmd.output()}")
        assert status == 1, cmd.output()
        said = [line for line in cmd.stderr_lines() if line.startswith(f"{host}:")]
        assert len(said) == 1 and expected in said[0], cmd.output()
        print(said[0])
        # nothing left on the host: no session, no wrapper, no node
        assert wait_for(lambda: not lab.sshd.children(), 30), lab.sshd.children()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_gridlib_ssh_killed_outright_still_leaves_no_node(lab: SshLab,
                                                          started: list[psutil.Process]) -> None:
    host = f"root@{SERVER}"
    cmd = _gridlib_ssh(lab, started, host, "--port", "0", "--cpus", "1")
    up = cmd.wait_settled([host])[host]
    assert up.get("status") == "up", cmd.output()
    created = psutil.Process(up["pid"]).create_time()
    ssh_clients = cmd.process.children()  # in sessions of their own: SIGKILL misses them
    started.extend(ssh_clients)
    births = [(p.pid, p.create_time()) for p in ssh_clients]
    assert ssh_clients
    cmd.terminate(signal.SIGKILL)
    # their stdin (a pipe from gridlib ssh) closes; the wrapper on the host sees EOF
    assert wait_for(lambda: _gone(up["pid"], created), 60), f"node {up['pid']} still runs"
    assert wait_for(lambda: all(_gone(pid, when) for pid, when in births), 30)
    assert wait_for(lambda: not Path(up["dir"]).exists(), 30)
    assert wait_for(lambda: not lab.sshd.children(), 30), lab.sshd.children()
