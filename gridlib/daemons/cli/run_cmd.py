"""``gridlib run``: run a program on many argument sets across the grid (dispy's ``dispy.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gridlib.protocol.errors import GridError

from .common import read_secret, scheduler_key_option, setup_logging

__all__ = ["run"]


def run(
    program: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                   help="The program to run: shipped to the nodes (a .py file "
                                        "runs with the node's Python, anything else must be "
                                        "executable there, e.g. a script with a #! line)."),
    args: list[str] = typer.Option([], "--args", "-a",
                                   help="One job's arguments, split as a shell would "
                                        "(-a \"x 'two words'\"); repeat for more jobs. "
                                        "-a '' runs one job without arguments."),
    files: list[Path] = typer.Option([], "--file", "-f", exists=True, dir_okay=False,
                                     readable=True,
                                     help="A file the program needs, shipped with it to each "
                                          "node (the program finds it in its working "
                                          "directory by its base name); repeat."),
    nodes: list[str] = typer.Option([], "--node", "-n",
                                    help="Node to use: host, host:port, a.b.c.* or CIDR; "
                                         "repeat. Default: this host (a private node is "
                                         "started if none runs); with --scheduler, every node "
                                         "of the scheduler."),
    scheduler: str = typer.Option("", envvar="GRIDLIB_SCHEDULER",
                                  help="Send the jobs to this shared scheduler "
                                       "(HOST[:PORT], port 51350) instead of scheduling "
                                       "them in this process."),
    scheduler_key: str = scheduler_key_option(),
    timeout: float = typer.Option(0.0, min=0.0, help="Time limit per job in seconds (0: none); "
                                                     "a job over it is killed and fails."),
    node_wait: float = typer.Option(-1.0, help="Seconds to wait for a node able to run the "
                                               "jobs; then they fail with NoNodesError naming "
                                               "the likely cause. Default: wait (a warning "
                                               "says why every 30 s)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as a JSON list "
                                                        "(no progress bar)."),
    outputs: list[str] = typer.Option([], "--output", "-o",
                                      help="Files each job writes that come back here: a glob in "
                                           "the job's directory, {job} standing for the job's "
                                           "number (GRID_JOB_ID), e.g. -o 'out-{job}.csv'; they "
                                           "land under the current directory; repeat."),
    progress: bool = typer.Option(False, "--progress", help="Show the progress bar even when "
                                                            "stderr is not a terminal."),
    keys: Path | None = typer.Option(None, help="Key directory to use instead of your own key."),
    secret_file: Path | None = typer.Option(None, help="File holding a shared secret (or set "
                                                       "GRIDLIB_SECRET)."),
) -> None:
    """Run PROGRAM once per -a on the grid, then print each job's exit code, stdout and stderr.

    Exit status: 0 if every job exited 0; 1 if any failed (non-zero exit, killed, lost);
    2 for usage and connection errors; 130 if interrupted.
    """
    from gridlib import run_tool
    from gridlib.protocol.keys import parse_public_key

    if not args:
        raise typer.BadParameter("give at least one -a ARGS (one job each; -a '' runs the "
                                 "program once without arguments)", param_hint="'--args' / '-a'")
    try:
        arg_sets = run_tool.parse_arg_sets(args)
        run_tool.check_depends(program, files)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    setup_logging("warning")
    try:
        request = run_tool.RunRequest(
            program=program, arg_sets=arg_sets, depends=list(files), nodes=list(nodes) or None,
            scheduler=scheduler or None,
            scheduler_key=parse_public_key(scheduler_key) if scheduler_key else None,
            secret=read_secret(secret_file), keys=keys, timeout=timeout or None,
            node_wait=node_wait if node_wait >= 0 else None, outputs=list(outputs))
        if (progress or sys.stderr.isatty()) and not json_out:
            with run_tool.RichProgress(len(arg_sets), program.name, force_terminal=progress) as bar:
                outcome = run_tool.run_jobs(request, bar)
        else:
            outcome = run_tool.run_jobs(request)
    except GridError as exc:
        typer.echo(f"gridlib run: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(run_tool.reports_json(outcome.reports))
    else:
        typer.echo(run_tool.format_reports(outcome.reports, program.name))
    if outcome.interrupted:
        typer.echo("gridlib run: interrupted; the jobs left were cancelled", err=True)
    raise typer.Exit(run_tool.exit_status(outcome))
