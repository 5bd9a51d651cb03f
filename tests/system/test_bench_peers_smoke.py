"""``bench/peers.py`` and ``bench/plot.py`` without the peers installed (CI has none of them).

A peer that is not installed is reported "not measured" by the command line, with no
crash; a crashed or hung peer subprocess becomes a "not measured" reason; and
``plot.py`` draws a PNG from a small report, or, where matplotlib is missing (as in
``.venv``), says so and how to get it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"
PEERS_VENV_PYTHON = REPO / ".venv-peers" / "bin" / "python"
FIGURES = {"startup_s": 0.3, "noop_tasks_per_s": 1700.0, "p50_ms": 1.3, "p99_ms": 2.2,
           "payload_mb_per_s": 270.0, "cpu_efficiency": 0.92, "close_s": 0.07,
           "cpu_job_seconds_mean": 0.046}


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """bench/peers.py, imported as the scripts see it (``bench`` is bench/bench.py there)."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    for name in ("bench", "peers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("peers")
    # elsewhere "bench" is the directory (bench.harness): forget bench.py's module
    for name in ("bench", "peers"):
        sys.modules.pop(name, None)


def _run(*args: str | Path, python: str | Path = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.timeout(90)
def test_a_missing_peer_is_reported_not_measured(peers: ModuleType) -> None:
    missing = [n for n, spec in peers.PEERS.items() if importlib.util.find_spec(spec.module) is None]
    if not missing:
        pytest.skip("every peer is installed in this interpreter")
    proc = _run(BENCH_DIR / "peers.py", "--quick", "--peer", missing[0])
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(missing[0] + " "))
    cells = [c.strip() for c in line.split("|")]
    assert cells[1].startswith("not measured: ") and "not installed" in cells[1], line
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_peer_missing_module_gives_a_reason(peers: ModuleType,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = peers.PEERS["dask"]
    monkeypatch.setitem(peers.PEERS, "dask", type(spec)("no_such_module_for_bench", ("x",),
                                                        spec.adapter, spec.setup))
    outcome = peers.measure_peer("dask", peers.Sizes(1, 1, 1, 1, 1, 0.05), 1)
    assert outcome.figures is None
    assert "no_such_module_for_bench is not installed" in outcome.reason


def test_a_crashed_or_hung_child_becomes_a_reason(peers: ModuleType) -> None:
    crashed = peers.outcome_from_child(
        "ray", 1, "some output\n", "Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    assert crashed.figures is None
    assert crashed.reason == "failed (exit 1): RuntimeError: boom"
    hung = peers.outcome_from_child("dispy", -9, "", "", timeout=300.0)
    assert hung.reason == "did not finish within 300 s"
    ok = peers.outcome_from_child("dask", 0, peers.FIGURES_TAG + json.dumps(FIGURES) + "\n", "")
    assert ok.figures == FIGURES and ok.reason is None


def _report(tmp_path: Path) -> Path:
    peer = {"measured": True, "median": {**FIGURES, "noop_tasks_per_s": 400.0, "p50_ms": 10.0}}
    report = {"date": "2026-11-26T20:00:00+00:00", "machine": {"cpus": 2, "python": "3.11.7",
                                                             "workers": 2},
              "median": {"gridlib": FIGURES, "ProcessPool": {**FIGURES, "p50_ms": 0.3}},
              "peers": {"dask": peer, "dispy": {"measured": False, "reason": "a reason"}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def _plot_pythons() -> list[Path | str]:
    found: list[Path | str] = [sys.executable]
    if PEERS_VENV_PYTHON.exists():  # made by `make bench-peers`; never in CI
        found.append(PEERS_VENV_PYTHON)
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("python", _plot_pythons(), ids=str)
def test_plot_writes_a_png_or_says_matplotlib_is_missing(python: Path | str,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.png"
    proc = _run(BENCH_DIR / "plot.py", _report(tmp_path), "-o", out, python=python)
    has_matplotlib = _run("-c", "import matplotlib", python=python).returncode == 0
    if has_matplotlib:
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert proc.returncode == 2
        assert "needs matplotlib" in proc.stderr and "make bench-peers" in proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()
