"""The command-line tool: ``gridlib run`` runs a program on many argument sets (dispy's ``dispy.py``).

No Python is needed to use the grid for an existing program:

    gridlib run lookup.py -f fruits.txt -a apple -a "cherry pie" -a kiwi

ships ``lookup.py`` and ``fruits.txt`` to the nodes, runs one job per ``-a``
(whose text is split as a shell would: ``"cherry pie"`` gives the program two
arguments, ``"'cherry pie'"`` one), and prints each job's exit code, stdout
and stderr; it exits 1 if any job failed (here ``kiwi``, which the program
does not find). ``--json`` prints the same as a
JSON list, for scripts. ``-n NODE`` picks nodes, ``--scheduler HOST`` sends the
jobs to a shared scheduler, ``--timeout`` limits each job; see
``gridlib run --help``. Without ``-n`` the jobs run on this host (a private
node is started if none runs), as with ``JobCluster(nodes=None)``.

This example writes the program and its data file into a temporary
directory and runs the command twice, as you would from a shell (here with
``subprocess``).

Run: ``.venv/bin/python examples/command_line.py``.
"""

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOOKUP = """\
import sys

words = sys.argv[1:]
with open("fruits.txt") as f:  # shipped with -f: in the job's working directory
    hits = [line.strip() for line in f if all(w in line for w in words)]
print("\\n".join(hits))
sys.exit(0 if hits else 1)  # the exit code is the job's result
"""


def gridlib_command():
    """``gridlib`` of this Python's environment (its script, else the module)."""
    script = Path(sys.executable).parent / "gridlib"
    if script.exists():
        return [str(script)]
    if shutil.which("gridlib"):
        return ["gridlib"]
    return [sys.executable, "-c", "from gridlib.daemons.cli import main; main()"]


def main():
    with tempfile.TemporaryDirectory(prefix="gridlib-command-line-") as tmp:
        Path(tmp, "lookup.py").write_text(LOOKUP)
        Path(tmp, "fruits.txt").write_text("apple\nbanana\ncherry\ncherry pie\n")
        gridlib = gridlib_command()

        args = ["run", "lookup.py", "-f", "fruits.txt", "-a", "apple", "-a", "cherry pie",
                "-a", "kiwi"]
        print("$ gridlib " + shlex.join(args))
        first = subprocess.run([*gridlib, *args], cwd=tmp, capture_output=True, text=True,
                               timeout=120, check=False)
        print(first.stdout, end="")
        if first.returncode != 1:  # kiwi is not in the file: that job fails, the command says 1
            raise SystemExit(f"gridlib run exited with {first.returncode}:\n{first.stderr}")
        print(f"(exit status {first.returncode}: one job failed, as expected)\n")

        args = ["run", "lookup.py", "-f", "fruits.txt", "-a", "cherry", "-a", "an", "--json"]
        print("$ gridlib " + shlex.join(args))
        second = subprocess.run([*gridlib, *args], cwd=tmp, capture_output=True, text=True,
                                timeout=120, check=False)
        if second.returncode != 0:
            raise SystemExit(f"gridlib run exited with {second.returncode}:\n{second.stderr}")
        reports = json.loads(second.stdout)
        for report in reports:
            found = report["stdout"].split("\n")[:-1]
            print(f"  {report['args']} -> exit code {report['exit_code']} on {report['node']}: {found}")
    print(f"gridlib run: {len(reports)} jobs as JSON, all exit code 0")


if __name__ == "__main__":
    main()
