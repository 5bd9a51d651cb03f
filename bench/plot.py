"""Draw ``docs/benchmarks.png`` from a ``bench/bench.py --json`` report (with or without --peers).

Run: ``.venv-peers/bin/python bench/plot.py REPORT.json [-o docs/benchmarks.png]``
(``make bench-peers`` does it).  Two panels, one bar per system: no-op throughput
(tasks/s) and round-trip latency p50/p99 (ms), both on log scales, with the
ProcessPool figure drawn across each panel as the reference.  Peers that were not
measured are named under the panels with the reason.

matplotlib is needed only here, and imported only when drawing: it lives in
``.venv-peers``, never in gridlib's dependencies.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["systems_of", "draw", "main", "MISSING_MATPLOTLIB"]

REFERENCE = "ProcessPool"
MISSING_MATPLOTLIB = ("bench/plot.py needs matplotlib, which is not installed for {python}; "
                      "`make bench-peers` installs it into .venv-peers "
                      "(or: {python} -m pip install matplotlib)")
COLOURS = {"gridlib": "#1f77b4", REFERENCE: "#7f7f7f"}
PEER_COLOUR = "#ff7f0e"


def systems_of(report: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """(median figures by system, in table order; reasons by peer not measured)."""
    figures = {name: report["median"][name] for name in ("gridlib", REFERENCE)
               if name in report.get("median", {})}
    missing = {}
    for name, peer in report.get("peers", {}).items():
        if peer.get("measured"):
            figures[name] = peer["median"]
        else:
            missing[name] = peer.get("reason", "not measured")
    return figures, missing


def _bars(ax: Any, names: list[str], values: list[float], offset: float, width: float,
          hatch: str | None = None) -> None:
    xs = [i + offset for i in range(len(names))]
    colours = [COLOURS.get(n, PEER_COLOUR) for n in names]
    bars = ax.bar(xs, values, width, color=colours, hatch=hatch, edgecolor="black",
                  linewidth=0.5)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.0f}" if value >= 100 else f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                    textcoords="offset points")


def _legends(left: Any, right: Any, plt: Any) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def reference(what: str) -> Line2D:
        return Line2D([], [], color=COLOURS[REFERENCE], linestyle="--", label=what)

    left.legend(handles=[reference(REFERENCE)], loc="upper right", fontsize=8)
    right.legend(handles=[Patch(facecolor="white", edgecolor="black", label="p50"),
                          Patch(facecolor="white", edgecolor="black", hatch="//", label="p99"),
                          reference(f"{REFERENCE} p50")], loc="upper left", fontsize=8)


def draw(report: dict[str, Any], out: Path) -> None:
    """Write the two-panel PNG for ``report`` to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures, missing = systems_of(report)
    names = list(figures)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))

    _bars(left, names, [figures[n]["noop_tasks_per_s"] for n in names], 0, 0.6)
    left.set_title("no-op throughput (tasks/s, higher is better)")
    _bars(right, names, [figures[n]["p50_ms"] for n in names], -0.2, 0.4)
    _bars(right, names, [figures[n]["p99_ms"] for n in names], 0.2, 0.4, hatch="//")
    right.set_title("round-trip latency (ms, lower is better)")
    for ax, key in ((left, "noop_tasks_per_s"), (right, "p50_ms")):
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.margins(y=0.15)
        ax.grid(axis="y", which="both", alpha=0.3)
        if REFERENCE in figures:
            ax.axhline(figures[REFERENCE][key], color=COLOURS[REFERENCE], linestyle="--",
                       linewidth=1)
    _legends(left, right, plt)

    machine = report.get("machine", {})
    fig.suptitle(f"{report.get('date', '')[:10]}: {machine.get('workers', 2)} workers each, "
                 f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}; "
                 f"log scales; gridlib blue, {REFERENCE} grey, peers orange", fontsize=10)
    if missing:
        fig.text(0.01, 0.01, "not measured: " + "; ".join(f"{n} ({r})" for n, r in
                                                          missing.items()), fontsize=7)
    fig.tight_layout(rect=(0, 0.04 if missing else 0, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="a bench/bench.py --json report")
    p.add_argument("-o", "--output", type=Path, default=Path("docs/benchmarks.png"),
                   help="the PNG to write (default docs/benchmarks.png)")
    args = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401  (only to fail early, with advice)
    except ImportError:
        print(MISSING_MATPLOTLIB.format(python=sys.executable), file=sys.stderr)
        return 2
    try:
        report = json.loads(args.report.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench/plot.py: cannot read the report {args.report}: {exc}", file=sys.stderr)
        return 2
    if "median" not in report:
        print(f"bench/plot.py: {args.report} has no \"median\" section; is it a "
              "bench/bench.py --json report?", file=sys.stderr)
        return 2
    draw(report, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
