"""``gridlib node`` options and signals with real node processes (and the config files of
every daemon command): --cpus -N, --init, SIGINT/SIGTERM, service hours, --serve, --clean,
--daemon, --config/--save-config and the secrets' environment variables.

Service hours never wait for the wall clock: the node's hidden ``--clock-file`` option
makes it read the time of day from a file the test rewrites.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tomllib
from typer.testing import CliRunner

import gridlib
from gridlib import JobStatus
from gridlib.daemons.cli import app
from tests.helpers import NodeProcess, wait_for

GRIDLIB = str(Path(sys.executable).parent / "gridlib")
PULSE = 0.5


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRIDLIB, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def flat(text: str) -> str:
    """Rich's boxed error text as one line."""
    return " ".join(text.replace("│", " ").split())


def wait_for_file(path):  # type: ignore[no-untyped-def]
    import os
    import time
    while not os.path.exists(path):
        time.sleep(0.02)
    return "done"


def leave_a_child_and_wait_for_file(path):  # type: ignore[no-untyped-def]
    import subprocess
    subprocess.Popen(["sleep", "300"])  # a process the job leaves behind: it must not outlive the node
    return wait_for_file(path)


def hang_on_first_attempt():  # type: ignore[no-untyped-def]
    import time

    from gridlib import job_context
    attempt = job_context().attempt
    while attempt == 1:
        time.sleep(1)
    return attempt


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Nodes a test starts; stopped by PID at the end, with no process left behind."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()
    for node in started:
        assert not node.orphans, f"processes left behind: {node.orphans}"


def address(node: NodeProcess) -> list[str]:
    return [f"127.0.0.1:{node.port}"]


# -- --cpus, --init ------------------------------------------------------------------------
def test_init_file_gives_every_computation_its_globals_and_cpus_minus_one(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    init = tmp_path / "site_init.py"
    init.write_text("FACTOR = 7\n\ndef helper(x):\n    return x * FACTOR\n\n"
                    "def init():\n    global READY\n    READY = 'yes'\n")
    node = NodeProcess(tmp_path, "--cpus", "-1", "--init", str(init))
    nodes.append(node)
    expected_cpus = max(1, (os.cpu_count() or 1) - 1)
    assert f"cpus={expected_cpus} " in node.log()

    def compute(x):  # type: ignore[no-untyped-def]
        return helper(x), READY  # noqa: F821 (globals of the node's --init file)

    with gridlib.JobCluster(compute, nodes=address(node), pulse_interval=PULSE) as cluster:
        jobs = [cluster.submit(i) for i in range(3)]
        assert [j(timeout=60) for j in jobs] == [(0, "yes"), (7, "yes"), (14, "yes")]
        assert [n.cpus for n in cluster.status().nodes] == [expected_cpus]


def test_an_init_file_with_an_error_stops_the_node_from_starting(tmp_path: Path) -> None:
    prefix = str(tmp_path / "p")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("x = 1\ndef f(:\n")
    result = run("node", "--port", "0", "--dest-path-prefix", prefix, "--init", str(syntax))
    assert result.returncode == 2
    assert f"--init file {syntax}, line 2" in result.stderr
    raising = tmp_path / "raising.py"
    raising.write_text("import os\nraise RuntimeError('no database here')\n")
    result = run("node", "--port", "0", "--dest-path-prefix", prefix, "--init", str(raising))
    assert result.returncode == 2
    assert "RuntimeError: no database here" in result.stderr and "line 2" in result.stderr
    assert not (tmp_path / "p" / "node.pid").exists() or not (tmp_path / "p" / "node.pid").read_text()


# -- signals ---------------------------------------------------------------------------------
def test_sigint_lets_running_jobs_finish_then_exits(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    node = NodeProcess(tmp_path, "--cpus", "1")
    nodes.append(node)
    go = tmp_path / "go"
    with gridlib.JobCluster(leave_a_child_and_wait_for_file, nodes=address(node),
                            pulse_interval=PULSE) as cluster:
        running = cluster.submit(str(go))
        assert wait_for(lambda: running.status == JobStatus.Running, 60)
        assert wait_for(lambda: any(p.name() == "sleep" for p in
                                    psutil.Process(node.pid).children(recursive=True)), 15)
        worker = next(p.parent() for p in psutil.Process(node.pid).children(recursive=True)
                      if p.name() == "sleep")
        node.signal(signal.SIGINT)  # (remembers the node's processes, the sleep included)
        # a SIGINT to every process (Slurm's scancel --signal=INT, kill -INT -PGID) reaches the
        # job's worker too: the job runs on, the drain waits for it
        worker.send_signal(signal.SIGINT)
        assert wait_for(lambda: "event=draining" in node.log(), 15)
        later = cluster.submit(str(go))  # the node takes no new job now
        go.touch()
        assert running(timeout=30) == "done" and running.status == JobStatus.Finished
        assert node.proc.wait(30) == 0
        assert "event=left_grid" in node.log() and "event=drained_exit" in node.log()
        assert later.status != JobStatus.Finished
        cluster.cancel(later)


def test_a_second_sigint_or_a_sigterm_stops_at_once(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    first = NodeProcess(tmp_path, "--cpus", "1", "--name", "first")
    second = NodeProcess(tmp_path, "--cpus", "1", "--name", "second")
    nodes += [first, second]
    never = tmp_path / "never"
    with gridlib.JobCluster(wait_for_file, nodes=address(first) + address(second),
                            pulse_interval=PULSE) as cluster:
        assert wait_for(lambda: len(cluster.status().nodes) == 2, 60)
        jobs = [cluster.submit_node(name, str(never)) for name in ("first", "second")]
        assert wait_for(lambda: all(j.status == JobStatus.Running for j in jobs), 60)
        first.signal(signal.SIGINT)
        assert wait_for(lambda: "event=draining" in first.log(), 15)
        first.signal(signal.SIGINT)
        assert first.proc.wait(15) == 0
        assert "event=stopping_now" in first.log()
        second.signal(signal.SIGTERM)
        assert second.proc.wait(15) == 0
        assert wait_for(lambda: all(j.status == JobStatus.Abandoned for j in jobs), 30)
    for node in (first, second):  # the killed jobs' workers went with their nodes
        assert wait_for(lambda n=node: not n.leftovers(), 10), node.leftovers()


# -- service hours ---------------------------------------------------------------------------
def test_outside_service_hours_the_node_ignores_schedulers_until_start(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    clock = tmp_path / "clock"
    clock.write_text("03:00")
    node = NodeProcess(tmp_path, "--service-start", "08:00", "--service-stop",
                       "17:00", "--clock-file", str(clock))
    nodes.append(node)
    assert "event=out_of_service next_start=08:00" in node.log()
    with gridlib.JobCluster(lambda: "served", nodes=address(node), pulse_interval=PULSE) as cluster:
        job = cluster.submit()
        assert wait_for(lambda: "event=beacon_ignored" in node.log(), 30)
        assert job.status == JobStatus.Created and "event=dialing" not in node.log()
        clock.write_text("08:01")
        assert job(timeout=60) == "served"
    assert "event=service_started" in node.log()


def test_service_stop_drains_service_end_kills_and_start_rejoins(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    clock = tmp_path / "clock"
    clock.write_text("12:00")  # start in the past, stop in the future: serving
    node = NodeProcess(tmp_path, "--cpus", "1", "--service-start", "08:00",
                       "--service-stop", "17:00", "--service-end", "18:00",
                       "--clock-file", str(clock))
    nodes.append(node)
    go = tmp_path / "go"
    with gridlib.JobCluster(wait_for_file, nodes=address(node), reentrant=True,
                            pulse_interval=PULSE) as cluster:
        first = cluster.submit(str(go))
        assert wait_for(lambda: first.status == JobStatus.Running, 60)
        clock.write_text("17:30")  # stop: the running job goes on, nothing new starts
        assert wait_for(lambda: "event=draining" in node.log(), 15)
        second = cluster.submit(str(go))
        go.touch()
        assert first(timeout=30) == "done"
        assert wait_for(lambda: "event=left_grid" in node.log(), 15)
        assert second.status != JobStatus.Finished
        clock.write_text("18:30")  # end: nothing runs, the node stays out
        assert wait_for(lambda: "phase=ended" in node.log(), 15)
        clock.write_text("08:00")  # the next morning: back in the grid
        assert second(timeout=60) == "done"
    with gridlib.JobCluster(hang_on_first_attempt, nodes=address(node), reentrant=True,
                            pulse_interval=PULSE) as cluster:
        job = cluster.submit()
        assert wait_for(lambda: job.status == JobStatus.Running, 60)
        clock.write_text("18:01")  # end: the running job is killed, the node leaves
        assert wait_for(lambda: "killed_jobs=True" in node.log(), 15)
        clock.write_text("09:00")
        assert job(timeout=60) == 2  # run again once the node is back


# -- --serve, --config -----------------------------------------------------------------------
def test_serve_one_cluster_then_exit_with_options_from_a_config_file(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    config = tmp_path / "node.toml"
    config.write_text('serve = 1\nname = "from-file"\ncpus = 2\n[scheduler]\npolicy = "fair"\n')
    node = NodeProcess(tmp_path, "--config", str(config), "--cpus", "1")
    nodes.append(node)
    assert "name=from-file" in node.log() and "cpus=1 " in node.log()  # the command line wins
    with gridlib.JobCluster(lambda: 42, nodes=address(node), pulse_interval=PULSE) as cluster:
        assert cluster.submit()(timeout=60) == 42
        assert wait_for(lambda: "event=serve_limit_reached" in node.log(), 15)
    assert node.proc.wait(30) == 0
    assert "event=serve_done clusters=1" in node.log()


# -- --clean and the prefix lock -------------------------------------------------------------
def test_a_live_node_keeps_its_prefix_and_clean_takes_it_over(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    old = NodeProcess(tmp_path, "--cpus", "1")
    nodes.append(old)
    never = tmp_path / "never"
    with gridlib.JobCluster(wait_for_file, nodes=address(old), pulse_interval=PULSE) as cluster:
        job = cluster.submit(str(never))
        assert wait_for(lambda: job.status == JobStatus.Running, 60)
        old.track()
        assert (old.prefix / "node.pid").read_text().strip() == str(old.pid)
        refused = run("node", "--port", "0", "--dest-path-prefix", str(old.prefix))
        assert refused.returncode == 2
        assert f"another node (pid {old.pid})" in refused.stderr and "--clean" in refused.stderr
        new = NodeProcess(tmp_path, "--clean", prefix=old.prefix)
        nodes.append(new)
        assert old.proc.wait(15) is not None
        assert wait_for(lambda: not old.leftovers(), 10), old.leftovers()
        assert "event=cleaned" in new.log()
        assert (old.prefix / "node.pid").read_text().strip() == str(new.pid)
        cluster.cancel(job)


def test_clean_never_kills_a_reused_pid_but_kills_stale_jobs(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    prefix = tmp_path / "stale-node"
    job_dir = prefix / "clusters" / "stale"
    job_dir.mkdir(parents=True, mode=0o700)
    prefix.chmod(0o700)
    bystander = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
    stale_job = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE, cwd=job_dir, start_new_session=True)
    try:
        (prefix / "node.pid").write_text(f"{bystander.pid}\n")  # a dead node's PID, reused
        nodes.append(NodeProcess(tmp_path, "--clean", prefix=prefix))
        assert stale_job.wait(10) == -signal.SIGKILL
        assert bystander.poll() is None
        assert not job_dir.exists()
    finally:
        for proc in (bystander, stale_job):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


# -- --daemon --------------------------------------------------------------------------------
def test_daemon_prints_its_pid_and_log_then_detaches(tmp_path: Path) -> None:
    prefix = tmp_path / "daemon-prefix"
    port_file = tmp_path / "ports.json"
    result = run("node", "--daemon", "--host", "127.0.0.1", "--port", "0", "--cpus", "1",
                 "--dest-path-prefix", str(prefix), "--port-file", str(port_file), timeout=60)
    assert result.returncode == 0, result.stderr
    log = prefix / "node.log"
    assert f"log {log}" in result.stdout
    pid = int(result.stdout.split("daemon pid ")[1].split(",")[0])
    daemon = psutil.Process(pid)
    family: list[psutil.Process] = [daemon]
    try:  # written by the daemon before it reported that it started
        report = json.loads(port_file.read_text())
        assert report["pid"] == pid
        port = report["ports"]["beacon"]
        assert "event=node_started" in log.read_text()
        assert os.getsid(pid) != os.getsid(0) and daemon.ppid() != os.getpid()
        assert daemon.terminal() is None
        with gridlib.JobCluster(lambda: "detached", nodes=[f"127.0.0.1:{port}"],
                                pulse_interval=PULSE) as cluster:
            assert cluster.submit()(timeout=60) == "detached"
            family += daemon.children(recursive=True)
    finally:
        daemon.terminate()
        gone = wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                        for p in family), 15)
        for proc in family:
            if proc.is_running():
                proc.kill()
    assert gone


# -- config files and environment variables (no daemon runs) ---------------------------------
runner = CliRunner()


@pytest.mark.parametrize("command", ["node", "scheduler", "relay"])
def test_save_config_then_config_round_trips_and_the_command_line_wins(
        command: str, tmp_path: Path) -> None:
    saved, again = tmp_path / "saved.toml", tmp_path / "again.toml"
    result = runner.invoke(app, [command, "--port", "6000", "--log-level", "debug",
                                 "--save-config", str(saved)])
    assert result.exit_code == 0, result.output
    values = tomllib.loads(saved.read_text())
    assert values["port"] == 6000 and values["log-level"] == "debug"
    assert "config" not in values and "save-config" not in values
    assert saved.stat().st_mode & 0o777 == 0o600
    result = runner.invoke(app, [command, "--config", str(saved), "--log-level", "warning",
                                 "--save-config", str(again)])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(again.read_text()) == {**values, "log-level": "warning"}


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('port = 6000\ncpu = 2\n')
    result = runner.invoke(app, ["node", "--config", str(config)])
    assert result.exit_code == 2 and "unknown key 'cpu'" in flat(result.output)
    config.write_text('policy = "fair"\n')  # a scheduler option given to a node
    result = runner.invoke(app, ["node", "--config", str(config)])
    assert result.exit_code == 2 and "unknown key 'policy'" in flat(result.output)
    config.write_text('port = \n')
    result = runner.invoke(app, ["relay", "--config", str(config)])
    assert result.exit_code == 2 and "not valid TOML" in flat(result.output)
    config.write_text('secret = "s3cret"\n')
    config.chmod(0o644)
    result = runner.invoke(app, ["node", "--config", str(config)])
    assert result.exit_code == 2 and "chmod 600" in flat(result.output)


def test_sections_and_secrets_paths_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "grid.toml"
    config.write_text('log-level = "debug"\n[node]\ncpus = 3\n[scheduler]\npolicy = "fair"\n')
    out = tmp_path / "out.toml"
    env = {"GRIDLIB_KEYS": str(tmp_path / "keys")}
    result = runner.invoke(app, ["scheduler", "--config", str(config), "--save-config", str(out)],
                           env=env)
    assert result.exit_code == 0, result.output
    values = tomllib.loads(out.read_text())
    assert values["policy"] == "fair" and values["log-level"] == "debug"
    assert values["keys"] == str(tmp_path / "keys")
    secret = tmp_path / "secret"
    secret.write_text("correct horse")
    secret.chmod(0o644)
    result = runner.invoke(app, ["node", "--port", "0"], env={"GRIDLIB_SECRET_FILE": str(secret)})
    assert result.exit_code == 2 and "chmod 600" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--service-start", "8:00"], "needs --service-stop or --service-end"),
    (["--service-stop", "17:00"], "need --service-start"),
    (["--service-start", "25:00", "--service-end", "07:00"], "not a time of day"),
    (["--service-start", "08:00", "--service-stop", "18:00", "--service-end", "17:00"],
     "must come before --service-end"),
])
def test_bad_service_hours_are_refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["node", "--port", "0", *args])
    assert result.exit_code == 2 and message in flat(result.output)


def test_saved_values_survive_toml_whatever_they_hold() -> None:
    from gridlib.daemons.cli.config import to_toml

    values = {"text": 'a "quote", a \\ backslash,\nnewline, tab\t, DEL \x7f, é, 😀',
              "numbers": [1, 2], "names": ["a", "b"], "big": float("inf"), "ratio": 0.1,
              "flag": True, "off": False, "none": None}
    assert tomllib.loads(to_toml(values, "a header\non two lines")) == {
        k: v for k, v in values.items() if v is not None}
