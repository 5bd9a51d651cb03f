"""``gridlib run`` and ``gridlib status`` as a user runs them: real processes on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

import gridlib
from gridlib import JobStatus
from gridlib.daemons.cli import app
from gridlib.local_node import node_listening
from gridlib.protocol.keys import write_keypair
from gridlib.status_tool import render_status
from tests.helpers import NodeProcess, SchedulerProcess, free_port, wait_for

GRIDLIB = str(Path(sys.executable).parent / "gridlib")

LOOKUP_SH = """#!/bin/sh
# lookup.sh WORD [CODE]: how many lines of words.txt hold WORD; then exit with CODE
n=$(grep -c -- "$1" words.txt)
echo "$1: $n"
if [ -n "$2" ]; then
    echo "failing with $2 as asked" >&2
    exit "$2"
fi
"""

SUM_PY = """import os, sys, time
if sys.argv[1:] == ["sleep"]:
    time.sleep(120)
numbers = [int(line) for line in open("numbers.txt")]
print(sum(numbers) * int(sys.argv[1]), *sys.argv[2:])
print("job", os.environ["GRID_JOB_ID"] != "", file=sys.stderr)
"""


def gridlib_cmd(*args: str, cwd: Path | None = None,
                timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run ``gridlib ARGS``; also the PIDs of the private nodes it started that are still alive."""
    proc = subprocess.Popen([GRIDLIB, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"gridlib {' '.join(args)} hung:\n{out}\n{err}") from None
    marker = f"--parent-pid {proc.pid} "
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if marker in " ".join(p.info["cmdline"] or []) + " "]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), leftovers


@pytest.fixture
def lookup(tmp_path: Path) -> Path:
    program = tmp_path / "lookup.sh"
    program.write_text(LOOKUP_SH)
    program.chmod(0o755)
    (tmp_path / "words.txt").write_text("apple pie\napple tart\ncherry pie\nkiwi\n")
    return program


@pytest.fixture
def private_node_port_free() -> None:
    if node_listening("127.0.0.1", 51352):
        pytest.skip("a node already listens on 127.0.0.1:51352: no private local node would start")


def test_run_on_a_private_local_node(lookup: Path, private_node_port_free: None) -> None:
    result, leftovers = gridlib_cmd("run", str(lookup), "-a", "apple", "-a", "'cherry pie'",
                                    "-a", "kiwi 3", "-f", str(lookup.parent / "words.txt"),
                                    "--progress")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "=== job 0: lookup.sh apple ===\nOK: exit code 0" in out
    assert "--- stdout ---\napple: 2\n--- stderr: empty ---\n=== end of job 0 ===" in out
    assert "=== job 1: lookup.sh 'cherry pie' ===" in out and "cherry pie: 1" in out
    failed = out.split("=== job 2: lookup.sh kiwi 3 ===")[1]
    assert failed.startswith("\nFAILED: exit code 3")
    assert "--- stdout ---\nkiwi: 1\n--- stderr ---\nfailing with 3 as asked\n=== end of job 2" in failed
    assert out.rstrip().endswith("3 jobs: 2 succeeded, 1 failed (job 2)")
    assert "3/3" in result.stderr and "failed 1" in result.stderr  # the progress bar
    assert leftovers == []  # the private node went with the run


# serial: under load the node sometimes reports the timed-out job as finished with exit code -9
# (JobRunner.worker_result, node/jobs.py, ignores the job.outcome its timeout set); run it alone
@pytest.mark.serial
def test_run_json_python_program_and_time_limit(tmp_path: Path, private_node_port_free: None) -> None:
    program = tmp_path / "sum.py"
    program.write_text(SUM_PY)
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n")
    started = time.time()
    result, leftovers = gridlib_cmd("run", str(program), "-a", "1", "-a", "10 'a b'",
                                    "-a", "sleep", "-f", str(tmp_path / "numbers.txt"),
                                    "--timeout", "3", "--json", "--progress")
    assert result.returncode == 1, result.stderr
    assert "/3" not in result.stderr  # never a progress bar in --json mode
    reports = json.loads(result.stdout)
    assert [r["args"] for r in reports] == [["1"], ["10", "a b"], ["sleep"]]
    for report in reports:
        assert set(report) >= {"args", "exit_code", "status", "stdout", "stderr", "node",
                               "start_time", "end_time"}
    first, second, slow = reports
    assert (first["exit_code"], first["status"], first["stdout"]) == (0, "finished", "6\n")
    assert first["stderr"] == "job True\n"
    assert (second["exit_code"], second["stdout"]) == (0, "60 a b\n")
    assert first["node"] and started <= first["start_time"] <= first["end_time"] <= time.time()
    assert slow["status"] == "terminated" and slow["exit_code"] is None and slow["exception"]
    assert leftovers == []


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SchedulerProcess, NodeProcess]]:
    tmp = tmp_path_factory.mktemp("grid")
    node = NodeProcess(tmp, "--cpus", "2", "--name", "status-node")
    scheduler = SchedulerProcess(tmp, nodes=[node.address])
    yield scheduler, node
    node.stop()
    scheduler.stop()
    assert not node.orphans


def test_run_through_a_shared_scheduler(grid, lookup: Path) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    result, _ = gridlib_cmd("run", str(lookup), "-a", "apple", "-a", "pie",
                            "-f", str(lookup.parent / "words.txt"),
                            "--scheduler", scheduler.address, "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [(r["stdout"], r["exit_code"], r["node"]) for r in reports] == [
        ("apple: 2\n", 0, "status-node"), ("pie: 2\n", 0, "status-node")]


def test_run_brings_each_jobs_output_files_back(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """-o: the files a job writes come back under the current directory, named by the job."""
    scheduler, _ = grid
    program = tmp_path / "square.sh"
    program.write_text('#!/bin/sh\necho "$1 squared is $(($1 * $1))" > "out-$GRID_JOB_ID.txt"\n'
                       'echo "done $GRID_JOB_ID"\necho scratch > "tmp-$GRID_JOB_ID.txt"\n')
    program.chmod(0o755)
    here = tmp_path / "here"
    here.mkdir()
    result, _ = gridlib_cmd("run", str(program), "-a", "3", "-a", "4", "-o", "out-{job}.txt",
                            "-o", "missing-{job}.csv", "--scheduler", scheduler.address,
                            "--json", cwd=here)
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [(r["args"], r["exit_code"], r["stdout"]) for r in reports] == [
        (["3"], 0, "done 0\n"), (["4"], 0, "done 1\n")]
    assert sorted(p.name for p in here.iterdir()) == ["out-0.txt", "out-1.txt"]  # not tmp-*
    assert (here / "out-1.txt").read_text() == "4 squared is 16\n"


def test_status_shows_nodes_and_your_running_cluster(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    release = tmp_path / "release"

    def hold(path):  # type: ignore[no-untyped-def]
        import os
        import time
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        return path

    with gridlib.SharedJobCluster(hold, scheduler=scheduler.address) as cluster:
        try:
            jobs = [cluster.submit(str(release)) for _ in range(5)]
            assert wait_for(lambda: any(j.status == JobStatus.Running for j in jobs), 30)
            raw, _ = gridlib_cmd("status", "--scheduler", scheduler.address, "--json")
            table, _ = gridlib_cmd("status", "--scheduler", scheduler.address)
        finally:
            release.touch()
        assert all(j(timeout=60) == str(release) for j in jobs)
    assert raw.returncode == 0, raw.stderr
    answer = json.loads(raw.stdout)
    (node,) = answer["nodes"]
    assert (node["name"], node["cpus"], node["suspect"]) == ("status-node", 2, False)
    assert node["busy"] >= 1 and "avail" in node
    (mine,) = answer["clusters"]
    assert mine["cluster_id"] == cluster.cluster_id and mine["kind"] == "function"
    assert mine["running"] >= 1 and mine["queued"] + mine["running"] == 5 and mine["done"] == 0
    assert answer["others"]["clusters"] == 0
    assert table.returncode == 0, table.stderr
    assert "status-node" in table.stdout and "127.0.0.1" in table.stdout
    assert cluster.cluster_id in table.stdout
    assert "Other users: 0 clusters" in table.stdout
    after, _ = gridlib_cmd("status", "--scheduler", scheduler.address)
    assert "You have no clusters open at this scheduler." in after.stdout


def test_status_with_a_key_the_scheduler_does_not_know(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scheduler, _ = grid
    stranger = tmp_path / "stranger"
    public = write_keypair(stranger, "identity").public.decode()
    result, _ = gridlib_cmd("status", "--scheduler", scheduler.address, "--keys", str(stranger),
                            "--timeout", "1")
    assert result.returncode == 2
    assert f"no answer from the scheduler at tcp://{scheduler.address} within 1 s" in result.stderr
    assert public in result.stderr and "gridlib keys allow KEY --as client" in result.stderr


@pytest.mark.parametrize("command", [["status"], ["run", "{program}", "-a", "x"]])
def test_a_scheduler_nobody_runs_fails_fast(lookup: Path, command: list[str]) -> None:
    port = free_port()  # where no scheduler runs
    started = time.monotonic()
    args = [a.format(program=lookup) for a in command]
    result, _ = gridlib_cmd(*args, "--scheduler", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"tcp://127.0.0.1:{port}" in result.stderr and "is it running" in result.stderr
    assert time.monotonic() - started < 15
    assert result.stdout == ""


def test_status_against_something_that_is_not_a_scheduler_says_so() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never speaks ZeroMQ
        port = server.getsockname()[1]
        result, _ = gridlib_cmd("status", "--scheduler", f"127.0.0.1:{port}", "--timeout", "3")
    assert result.returncode == 2
    assert f"tcp://127.0.0.1:{port}" in result.stderr
    assert "does not speak ZeroMQ" in result.stderr, result.stderr


def test_status_tables_from_an_answer() -> None:
    answer = {
        "policy": "fair",
        "nodes": [{"name": "n1", "ip_addr": "10.0.0.5", "port": 51352, "cpus": 4, "busy": 3,
                   "jobs_done": 17, "avail": {"cpu": 12.5, "memory": 3 * 2**30, "disk": 2**40},
                   "last_heard": 1.25, "suspect": True, "running": []}],
        "clusters": [{"cluster_id": "c0ffee", "kind": "program", "exclusive": True,
                      "queued": 7, "running": 3, "done": 2}],
        "others": {"clusters": 2, "queued": 4, "running": 1, "done": 9},
    }
    console = Console(record=True, width=200)
    render_status(answer, console)
    text = console.export_text()
    assert "Nodes (1), policy fair" in text
    row = next(line for line in text.splitlines() if "n1" in line)
    for cell in ("10.0.0.5:51352", "12 %", "3.0 GiB", "1.0 TiB", "1.2 s ago", "yes"):
        assert cell in row
    assert "c0ffee" in text and "program (exclusive)" in text
    assert "Other users: 2 clusters, 4 jobs queued, 1 running, 9 done." in text


# -- argument errors, in process --------------------------------------------------------------
runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["run"], "Missing argument"),
    (["run", "{program}"], "at least one -a"),
    (["run", "{program}", "-a", "'unbalanced"], "cannot split"),
    (["run", "{dir}/missing.sh", "-a", "x"], "does not exist"),
    (["run", "{program}", "-a", "x", "-f", "{dir}/missing.txt"], "does not exist"),
    (["run", "{program}", "-a", "x", "-f", "{dir}/sub/lookup.sh"], "rename one"),
    (["run", "{program}", "-a", "x", "--timeout", "-1"], "--timeout"),
    (["status", "--scheduler", "host:port"], "bad scheduler address"),
])
def test_argument_errors_exit_2(lookup: Path, args: list[str], message: str) -> None:
    (lookup.parent / "sub").mkdir()
    (lookup.parent / "sub" / "lookup.sh").write_text("#!/bin/sh\n")
    argv = [a.format(program=lookup, dir=lookup.parent) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_every_option_has_help() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("run", "status"):
        params = commands[name].params
        assert params and all(getattr(p, "help", None) for p in params), name
    assert {"--args", "--file", "--node", "--scheduler", "--json", "--timeout", "--keys",
            "--secret-file"} <= {o for p in commands["run"].params for o in p.opts}
