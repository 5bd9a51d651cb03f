"""deploy/: the systemd units, the container image, the Kubernetes manifests and the Slurm
recipe (docs/deploy.md), checked without systemd, a container runtime, a cluster or Slurm:

- every unit passes ``systemd-analyze verify`` once install.sh has staged it (skipped, with the
  reason, where systemd-analyze is not installed);
- each daemon unit's own command lines (ExecStartPre, ExecStart, ExecStartPost, ExecReload)
  are run in the order systemd runs them, with its paths moved under a temporary directory
  and its ports on 127.0.0.1: the key is created, the readiness wait ends, SIGHUP reloads the
  allowlists and SIGTERM ends the daemon with status 0;
- every option the example TOML files show is one the command knows;
- the manifests are valid Kubernetes objects (kubernetes-validate, when installed) and agree
  with the image and each other;
- the sbatch script, run with stand-ins for ``srun`` and ``gridlib``, starts one node per task
  with the right options.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
GRIDLIB = str(Path(sys.executable).parent / "gridlib")
SHIPPED_GRIDLIB = "/opt/gridlib/bin/gridlib"
UNITS = ["gridlib-node.service", "gridlib-node@.service", "gridlib-scheduler.service",
         "gridlib-relay.service"]
DAEMONS = ["node", "scheduler", "relay"]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def stage(tmp_path: Path) -> Path:
    """deploy/systemd/install.sh --root TMP: the tree it writes."""
    root = tmp_path / "root"
    result = subprocess.run(["sh", str(SYSTEMD / "install.sh"), "--root", str(root),
                             "--gridlib", GRIDLIB], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return root


# --- systemd -------------------------------------------------------------------------------

def test_install_script_stages_units_user_and_configs(tmp_path: Path) -> None:
    root = stage(tmp_path)
    for unit in UNITS:
        text = (root / "etc/systemd/system" / unit).read_text()
        assert SHIPPED_GRIDLIB not in text and GRIDLIB in text, unit
        assert oct((root / "etc/systemd/system" / unit).stat().st_mode & 0o777) == "0o644"
    for daemon in DAEMONS:
        assert (root / "etc/gridlib" / f"{daemon}.toml").read_text() == \
            (SYSTEMD / f"{daemon}.toml").read_text()
    assert (root / "etc/sysusers.d/gridlib.conf").exists()
    if shutil.which("systemd-sysusers"):
        assert re.search(r"^gridlib:x:\d+:\d+:.*:/var/lib/gridlib:", (root / "etc/passwd").read_text(),
                         re.M)
    # a second run keeps the operator's configuration
    (root / "etc/gridlib/node.toml").write_text("cpus = 3\n")
    stage(tmp_path)
    assert (root / "etc/gridlib/node.toml").read_text() == "cpus = 3\n"


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(tmp_path: Path, unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    path = stage(tmp_path) / "etc/systemd/system" / unit
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    # verify exits 0 even for an unknown key or a value it cannot parse: it only says so
    ours = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_shipped_units_point_at_one_gridlib() -> None:
    """install.sh rewrites one path; every Exec line must use exactly that one."""
    for unit in UNITS:
        service = parse_unit((SYSTEMD / unit).read_text())["Service"]
        for key in ("ExecStartPre", "ExecStart"):
            for line in service[key]:
                assert SHIPPED_GRIDLIB in line, (unit, line)
        assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
        assert service["KillMode"] == ["mixed"] and service["KillSignal"] == ["SIGTERM"]
        assert service["User"] == ["gridlib"] and service["Type"] == ["exec"]
        assert "--daemon" not in service["ExecStart"][0]


def _localise(text: str, tmp: Path) -> str:
    """The unit's and config's absolute paths, moved under ``tmp``."""
    for path, local in (("/var/lib/gridlib", tmp / "state"), ("/run/", f"{tmp / 'run'}/"),
                        ("/etc/gridlib", tmp / "etc"), (SHIPPED_GRIDLIB, GRIDLIB)):
        text = text.replace(path, str(local))
    return text


def _shell(line: str) -> list[str]:
    """``/bin/sh -c '...'`` of a unit, as an argument list."""
    prefix = "/bin/sh -c '"
    assert line.startswith(prefix) and line.endswith("'"), line
    return ["/bin/sh", "-c", line[len(prefix):-1]]


LOOPBACK = {"node": ["--host", "127.0.0.1", "--port", "0"],
            "scheduler": ["--host", "127.0.0.1", "--port", "0", "--node-port", "0"],
            # (a relay announces the schedulers it bridges: none here; port 9 besides)
            "relay": ["--host", "127.0.0.1", "--port", "0", "--node", "127.0.0.1",
                      "--node-port", "9"]}


class UnitRun:
    """One daemon unit run by hand, step by step as systemd runs it."""

    def __init__(self, daemon: str, tmp: Path, config_extra: str = "") -> None:
        self.daemon, self.tmp = daemon, tmp
        self.service = parse_unit(_localise((SYSTEMD / f"gridlib-{daemon}.service").read_text(),
                                            tmp))["Service"]
        (tmp / "etc").mkdir()
        config = _localise((SYSTEMD / f"{daemon}.toml").read_text(), tmp) + config_extra
        (tmp / "etc" / f"{daemon}.toml").write_text(config)
        for directory in (*self.service["StateDirectory"], *self.service["RuntimeDirectory"]):
            base = tmp / ("state" if directory.startswith("gridlib/") else "run")
            (base / directory.removeprefix("gridlib/")).mkdir(parents=True, mode=0o700)
        self.env = dict(os.environ)
        for assignment in self.service.get("Environment", []):
            key, _, value = assignment.partition("=")
            self.env[key] = value
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.CompletedProcess[str]:
        """ExecStartPre, ExecStart (with LOOPBACK options), then ExecStartPost's result."""
        for line in self.service["ExecStartPre"]:
            subprocess.run(_shell(line), env=self.env, check=True, timeout=60,
                           capture_output=True)
        argv = self.service["ExecStart"][0].split() + LOOPBACK[self.daemon]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        # systemd reaps its main process at once: a zombie would still answer `kill -0`
        threading.Thread(target=self.proc.wait, daemon=True).start()
        self.env["MAINPID"] = str(self.proc.pid)
        return subprocess.run(_shell(self.service["ExecStartPost"][0]), env=self.env,
                              timeout=60, capture_output=True, text=True, check=False)

    def reload(self) -> None:
        argv = self.service["ExecReload"][0].replace("$MAINPID", self.env["MAINPID"]).split()
        subprocess.run(argv, check=True, timeout=10)

    def stop(self, timeout: float) -> int:
        assert self.proc is not None
        self.proc.send_signal(getattr(signal, self.service["KillSignal"][0]))
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.parametrize("daemon", DAEMONS)
def test_unit_command_lines_start_reload_and_stop_the_daemon(tmp_path: Path, daemon: str) -> None:
    tmp = tmp_path / f"{daemon}-unit"
    tmp.mkdir()
    unit = UnitRun(daemon, tmp)
    try:
        post = unit.start()
        assert post.returncode == 0, (post.stderr, unit.log.read_text())
        keys = Path(unit.env["GRIDLIB_KEYS"])
        assert (keys / "identity.key_secret").stat().st_mode & 0o077 == 0
        port_file = next((tmp / "run").glob("*/ports.json"))
        assert f'"pid": {unit.env["MAINPID"]}' in port_file.read_text()
        unit.reload()
        assert wait_for(lambda: "event=allowlist_reloaded" in unit.log.read_text(), 20), \
            unit.log.read_text()
        unit.reload()  # and again: a reload is not a one-off
        assert wait_for(lambda: unit.log.read_text().count("event=allowlist_reloaded") == 2, 20)
        assert unit.proc is not None and unit.proc.poll() is None
        status = unit.stop(float(unit.service["TimeoutStopSec"][0]))
        assert status == 0, unit.log.read_text()
        assert not port_file.exists()
        # the second start finds its key and keeps it
        before = (keys / "identity.key_secret").read_bytes()
        unit.start()
        assert (keys / "identity.key_secret").read_bytes() == before
        assert unit.stop(30) == 0
    finally:
        if unit.proc is not None and unit.proc.poll() is None:
            unit.proc.kill()
            unit.proc.wait()


def test_readiness_wait_fails_fast_when_the_daemon_exits(tmp_path: Path) -> None:
    """ExecStartPost must not wait out TimeoutStartSec for a daemon that is gone."""
    tmp = tmp_path / "scheduler-bad"
    tmp.mkdir()
    unit = UnitRun("scheduler", tmp, config_extra="\nno-such-option = 1\n")
    started = time.monotonic()
    post = unit.start()
    assert post.returncode != 0
    assert time.monotonic() - started < 20
    assert unit.proc is not None and unit.proc.wait(10) == 2  # RestartPreventExitStatus=2
    assert "no-such-option" in unit.log.read_text()
    assert parse_unit((SYSTEMD / "gridlib-scheduler.service").read_text())["Service"][
        "RestartPreventExitStatus"] == ["2"]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_example_configs_name_only_known_options(tmp_path: Path, daemon: str) -> None:
    """The TOML file as shipped, and with every commented example line switched on."""
    text = (SYSTEMD / f"{daemon}.toml").read_text()
    examples = [re.sub(r"\s+#.*$", "", m.group(1))
                for m in re.finditer(r"^# ([a-z-]+ = .+)$", text, re.M)]
    assert examples, "no example lines"
    for name, content in (("shipped", text), ("examples", "\n".join(examples) + "\n")):
        config = tmp_path / f"{name}.toml"
        config.write_text(content)
        result = subprocess.run([GRIDLIB, daemon, "--config", str(config), "--save-config",
                                 str(tmp_path / f"{name}.saved.toml")], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, (name, result.stderr)


# --- container image -----------------------------------------------------------------------

def test_containerfile_copies_only_sources_and_runs_as_non_root() -> None:
    text = (DEPLOY / "container" / "Containerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert "key" not in source
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["gridlib"\]$', text, re.M)
    assert "GRIDLIB_KEYS=/keys" in text


# --- Kubernetes ----------------------------------------------------------------------------

def _manifests() -> list[dict]:  # type: ignore[type-arg]
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install "
                                              "kubernetes-validate brings it)")
    docs = []
    for name in ("namespace.yaml", "scheduler.yaml", "nodes.yaml"):
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
    return docs


def test_k8s_manifests_are_valid_objects() -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed: the manifests are "
                                      "checked against the Kubernetes schemas only with it")
    for doc in _manifests():
        # the newest schema the package ships; raises on any error
        validate.validate(doc, validate.utils.latest_version(), strict=True)


def test_k8s_manifests_agree_with_the_image_and_each_other() -> None:
    docs = _manifests()
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = kinds[("Service", "gridlib-scheduler")]
    scheduler = kinds[("Deployment", "gridlib-scheduler")]["spec"]["template"]["spec"]
    nodes = kinds[("DaemonSet", "gridlib-node")]["spec"]["template"]["spec"]
    image_uid = re.search(r"--uid (\d+)", (DEPLOY / "container/Containerfile").read_text())
    assert image_uid is not None
    docs_text = (ROOT / "docs" / "deploy.md").read_text()
    for spec in (scheduler, nodes):
        assert spec["securityContext"]["runAsUser"] == int(image_uid.group(1))
        (container,) = spec["containers"]
        assert container["livenessProbe"]["tcpSocket"] and container["readinessProbe"]["tcpSocket"]
        assert container["resources"]["requests"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/keys"] == "keys"  # GRIDLIB_KEYS=/keys in the image
        volumes = {v["name"]: v for v in spec["volumes"]}
        for path, name in mounts.items():  # allowlist mount points the init container makes
            if path.startswith("/keys/"):
                assert path in spec["initContainers"][0]["command"][-1]
                assert "secret" in volumes[name]
        for volume in volumes.values():  # every Secret is one docs/deploy.md creates
            if "secret" in volume:
                assert f"secret generic {volume['secret']['secretName']}" in docs_text
    args = nodes["containers"][0]["args"]
    assert args[args.index("--scheduler") + 1] == service["metadata"]["name"]
    node_port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["node"]
    assert node_port == 51351  # the port `gridlib node --scheduler HOST` dials by default
    env = {e["name"]: e for e in nodes["containers"][0]["env"]}
    for variable in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert variable in env


# --- Slurm ---------------------------------------------------------------------------------

def test_sbatch_script_starts_one_node_per_task(tmp_path: Path) -> None:
    """srun is a stand-in that runs its command once per task; gridlib records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        "#!/bin/sh\nshift  # --kill-on-bad-exit=0\n"
        "for rank in 0 1; do SLURM_PROCID=$rank \"$@\" || exit $?; done\n")
    record = tmp_path / "calls"
    (bin_dir / "fake-gridlib").write_text(  # records its arguments, makes its state directory
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s|' \"$a\"; done >> " + str(record) + "\n"
        "echo >> " + str(record) + "\n"
        "while [ $# -gt 1 ]; do [ \"$1\" = --dest-path-prefix ] && mkdir -p \"$2/spool\"; shift; done\n")
    for tool in ("srun", "fake-gridlib"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path),
           "GRIDLIB": str(bin_dir / "fake-gridlib"), "SLURM_JOB_ID": "77", "SLURM_NTASKS": "2",
           "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NODELIST": "c[1-2]",
           "GRIDLIB_SCHEDULER": "login1:51351", "GRIDLIB_SCHEDULER_KEY": "k$y&(<"}
    script = str(DEPLOY / "slurm" / "gridlib-nodes.sbatch")
    result = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    calls = [line.rstrip("|").split("|") for line in record.read_text().splitlines()]
    assert len(calls) == 2
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True,
                          check=True).stdout.strip()
    for rank, call in enumerate(calls):
        options = dict(zip(call[1::2], call[2::2], strict=False))
        assert call[0] == "node"
        assert options["--scheduler"] == "login1:51351"
        assert options["--scheduler-key"] == "k$y&(<"
        assert options["--port"] == "0" and options["--cpus"] == "8"
        assert options["--name"] == f"{host}-77-{rank}"
        assert options["--dest-path-prefix"] == f"{tmp_path}/gridlib-77-{rank}"
    assert not list(tmp_path.glob("gridlib-77-*"))  # nothing left behind
    del env["GRIDLIB_SCHEDULER"]
    missing = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert missing.returncode != 0 and "GRIDLIB_SCHEDULER" in missing.stderr
