"""What each process imports: the scheduler and the node's message loop never load cloudpickle;
no module imports one that imports it back."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", [
    "gridlib.protocol.codec",
    "gridlib.daemons.scheduler.service",
    "gridlib.daemons.node.shell",
    "gridlib.daemons.scheduler.main",
    "gridlib.daemons.relay.main",
    "gridlib.daemons.cli",
    "gridlib",
])
def test_module_does_not_import_cloudpickle(module: str) -> None:
    code = f"import sys, {module}; print('cloudpickle' in sys.modules, 'pickle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", f"{module} imports cloudpickle"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    """Lazy imports inside functions count too: a cycle is a cycle."""
    import grimp  # comes with import-linter (the dev extra)

    built = grimp.build_graph("gridlib", cache_dir=None)
    graph = {m: {i for i in built.find_modules_directly_imported_by(m) if i in built.modules}
             for m in built.modules}
    assert len(graph) > 50
    assert _cycles(graph) == []
    # the checker itself finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
