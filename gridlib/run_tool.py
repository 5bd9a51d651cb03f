"""``gridlib run``: one program on many argument sets (docs/tools.md §1; dispy's ``dispy.py``).

The logic behind the command, kept apart from typer so that it can be
called and tested on its own: the argument sets are split like a shell
does (``shlex``), the program and its data files become a program
computation's ``depends``, each argument set one job, and the jobs' exit
codes and output come back as :class:`JobReport` records -- failures carried
as data, so the command decides how to print them and what to exit with.
The cluster is a ``JobCluster`` (scheduler in this process; by default a
private node on this host) or, with a scheduler address, a
``SharedJobCluster``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gridlib.cluster import JobCluster
from gridlib.job import Job, JobStatus
from gridlib.nodes import NodeStatus

__all__ = [
    "RunRequest",
    "JobReport",
    "RunOutcome",
    "ProgressView",
    "RichProgress",
    "parse_arg_sets",
    "check_depends",
    "open_cluster",
    "run_jobs",
    "report_of",
    "format_reports",
    "reports_json",
    "exit_status",
]

_POLL = 0.2  # seconds between progress updates while jobs run


@dataclass
class RunRequest:
    """What to run, where, and how (the command's options, checked)."""

    program: Path
    arg_sets: list[list[str]]
    depends: list[Path] = field(default_factory=list)
    nodes: list[str] | None = None  # None: this host (a private node if none runs)
    scheduler: str | None = None  # "host[:port]": a shared scheduler
    scheduler_key: bytes | None = None
    secret: str | None = None
    keys: Path | None = None
    timeout: float | None = None  # per job, seconds
    node_wait: float | None = None  # seconds to wait for a node; None: wait (and warn)
    outputs: list[str] = field(default_factory=list)  # globs of files each job sends back ({job})


@dataclass
class JobReport:
    """One job's outcome, in the order of its ``-a``."""

    args: list[str]
    exit_code: int | None  #: the program's exit code; None if it did not finish
    status: str  #: finished, terminated, cancelled or abandoned (its node was lost)
    stdout: str
    stderr: str
    node: str | None
    start_time: float | None
    end_time: float | None
    exception: str | None = None  #: why the job did not finish (time limit, failed start...)

    @property
    def ok(self) -> bool:
        return self.status == "finished" and self.exit_code == 0


@dataclass
class RunOutcome:
    reports: list[JobReport]
    interrupted: bool = False  # Ctrl-C: the jobs left were cancelled


class ProgressView(Protocol):
    """Where ``run_jobs`` reports progress (a rich progress bar in the command)."""

    def update(self, done: int, running: int, failed: int, nodes: int) -> None: ...


class RichProgress:
    """A rich progress bar on stderr: jobs done of all, running, failed, nodes serving."""

    def __init__(self, total: int, label: str, force_terminal: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True, force_terminal=True if force_terminal else None)
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                                  TimeElapsedColumn(), console=console)
        self._task = self._progress.add_task(label, total=total, detail="starting")

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, done: int, running: int, failed: int, nodes: int) -> None:
        detail = f"running {running}, failed {failed}, nodes {nodes}"
        self._progress.update(self._task, completed=done, detail=detail)


def parse_arg_sets(texts: Sequence[str]) -> list[list[str]]:
    """Each ``-a`` text split like a shell does; ``ValueError`` names the bad one."""
    sets = []
    for text in texts:
        try:
            sets.append(shlex.split(text))
        except ValueError as exc:
            raise ValueError(f"cannot split -a {text!r}: {exc}") from None
    return sets


def check_depends(program: Path, depends: Sequence[Path]) -> None:
    """Files land in one job directory by their base name: two with one name would clash."""
    seen = {program.name: str(program)}
    for path in depends:
        if path.name in seen:
            raise ValueError(f"{path} and {seen[path.name]} would both be {path.name!r} on the "
                             f"nodes; rename one")
        seen[path.name] = str(path)


def open_cluster(request: RunRequest) -> JobCluster:
    """The program computation on a private or shared scheduler (raises ``GridError``).

    With ``outputs``, the computation is :func:`run_program` (the program itself
    ships as a file), which can send the job's output files back.
    """
    depends = [str(p) for p in request.depends]
    computation: Any = str(request.program)
    if request.outputs:
        computation, depends = run_program, [str(request.program), *depends]
    options: dict[str, Any] = {
        "depends": depends, "secret": request.secret,
        "keys": str(request.keys) if request.keys else None, "timeout": request.timeout,
        "node_wait": request.node_wait,
    }
    if request.scheduler:
        from gridlib.shared import SharedJobCluster
        from gridlib.status_tool import probe_scheduler

        probe_scheduler(request.scheduler)  # nobody there: say so now, not after 10 s
        return SharedJobCluster(computation, scheduler=request.scheduler,
                                scheduler_key=request.scheduler_key, nodes=request.nodes,
                                **options)
    return JobCluster(computation, nodes=request.nodes, **options)


def run_program(program: str, args: list[str], outputs: list[str], label: str) -> int:
    """On the node: run ``program`` (shipped to the job's directory) as a program job runs,
    then send back the files matching ``outputs`` (``{job}`` is the job's id); its exit code.

    What the program prints becomes the job's stdout and stderr.  A pattern that
    matches nothing sends nothing; files outside the job's directory are refused
    by ``send_file`` itself.
    """
    import glob
    import os
    import subprocess
    import sys

    from gridlib import job_context, send_file

    context = job_context()
    directory = context.job_path if context else os.getcwd()
    path = os.path.join(directory, program)
    argv = [sys.executable, path] if program.endswith(".py") else [path]
    env = dict(os.environ, GRID_NODE_NAME=context.node_name if context else "",
               GRID_JOB_PATH=directory, GRID_JOB_ID=label)
    proc = subprocess.run([*argv, *args], cwd=directory, env=env, capture_output=True, check=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, proc.stdout)
    os.write(2, proc.stderr)
    for pattern in outputs:
        for found in sorted(glob.glob(pattern.replace("{job}", label), root_dir=directory)):
            if os.path.isfile(os.path.join(directory, found)):
                send_file(found)
    return proc.returncode


def _counts(cluster: JobCluster, jobs: list[Job]) -> tuple[int, int, int, int]:
    done = running = failed = 0
    for job in jobs:
        if job.finished:
            done += 1
            failed += not (job.status == JobStatus.Finished and job.result == 0)
        elif job.status in (JobStatus.Running, JobStatus.ProvisionalResult):
            running += 1
    nodes = sum(1 for n in cluster.status().nodes if n.status == NodeStatus.Initialized)
    return done, running, failed, nodes


def run_jobs(request: RunRequest, progress: ProgressView | None = None) -> RunOutcome:
    """Run one job per argument set and wait for all of them.

    Ctrl-C cancels the jobs still queued or running (their reports say
    ``cancelled``) and returns what there is, with ``interrupted`` set.
    """
    cluster = open_cluster(request)
    jobs: list[Job] = []
    interrupted = False
    try:
        if request.outputs:
            jobs = [cluster.submit_job_id(i, request.program.name, args, request.outputs, str(i))
                    for i, args in enumerate(request.arg_sets)]
        else:
            jobs = [cluster.submit(*args) for args in request.arg_sets]
        while not cluster.wait(_POLL):
            if progress is not None:
                progress.update(*_counts(cluster, jobs))
        if progress is not None:
            progress.update(*_counts(cluster, jobs))
        cluster.close()
    except KeyboardInterrupt:
        interrupted = True
        cluster.close(terminate=True, timeout=30.0)
    except BaseException:
        cluster.close(terminate=True, timeout=30.0)
        raise
    return RunOutcome([report_of(job, args) for job, args in zip(jobs, request.arg_sets, strict=False)],
                      interrupted)


def _text(data: str | bytes) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def report_of(job: Job, arg_set: Sequence[str] | None = None) -> JobReport:
    finished = job.status == JobStatus.Finished
    exit_code = job.result if finished and isinstance(job.result, int) else None
    status = job.status.name.lower() if job.finished else "cancelled"  # not final: never ran
    args = arg_set if arg_set is not None else job.args
    return JobReport([str(a) for a in args], exit_code, status, _text(job.stdout),
                     _text(job.stderr), job.node, job.start_time, job.end_time, job.exception)


# -- output -------------------------------------------------------------------------------
def _describe(report: JobReport) -> str:
    if report.exit_code is not None:
        what = f"exit code {report.exit_code}"
        if report.exit_code < 0:
            what += f" (killed by signal {-report.exit_code})"
    else:
        what = {"terminated": "did not finish", "cancelled": "cancelled",
                "abandoned": "lost with its node"}.get(report.status, report.status)
    parts = [what]
    if report.node:
        parts.append(f"node {report.node}")
    if report.start_time and report.end_time:
        parts.append(f"{report.end_time - report.start_time:.2f} s")
    return ", ".join(parts)


def _stream(name: str, text: str) -> list[str]:
    if not text:
        return [f"--- {name}: empty ---"]
    lines = [f"--- {name} ---", text.rstrip("\n")]
    if not text.endswith("\n"):
        lines.append("(no newline at end)")
    return lines


def format_reports(reports: Sequence[JobReport], program: str) -> str:
    """Every job's exit code, stdout and stderr between clear markers, then a summary."""
    out: list[str] = []
    for index, report in enumerate(reports):
        command = shlex.join([program, *report.args])
        out.append(f"=== job {index}: {command} ===")
        out.append(("OK: " if report.ok else "FAILED: ") + _describe(report))
        if report.exception:
            out += ["--- error ---", report.exception.rstrip("\n")]
        out += _stream("stdout", report.stdout)
        out += _stream("stderr", report.stderr)
        out.append(f"=== end of job {index} ===")
        out.append("")
    failed = [i for i, r in enumerate(reports) if not r.ok]
    summary = f"{len(reports)} jobs: {len(reports) - len(failed)} succeeded, {len(failed)} failed"
    if failed:
        shown = ", ".join(map(str, failed[:20])) + (", ..." if len(failed) > 20 else "")
        summary += f" (job {shown})"
    out.append(summary)
    return "\n".join(out)


def reports_json(reports: Sequence[JobReport]) -> str:
    """The reports as a JSON list (``args``, ``exit_code``, ``status``, ``stdout``...)."""
    return json.dumps([asdict(r) for r in reports], indent=2)


def exit_status(outcome: RunOutcome) -> int:
    """0 if every job exited 0; 1 if any failed (non-zero, terminated, lost); 130 on Ctrl-C."""
    if outcome.interrupted:
        return 130
    return 0 if all(r.ok for r in outcome.reports) else 1
