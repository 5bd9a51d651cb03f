"""The user's own code ships by value; installed modules by reference (gridlib/payload.py).

Every test runs against a real ``gridlib node`` daemon started in a fresh,
empty directory with no ``PYTHONPATH``: nothing of the client's code (this
test module, the ``tests`` package, the modules written below into a temp
directory on the client's ``sys.path``) can be imported there. What runs
there arrived in the pickle, or it does not run.
"""

from __future__ import annotations

import collections
import importlib
import json
import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import gridlib
from gridlib import JobStatus, RemoteJobError
from gridlib.daemons.runtime.payload import dumps, is_user_module
from tests.helpers import NodeProcess

TEST_MODULE_CONSTANT = 7  # a global of this test module, which the node cannot import

USER_CODE = {
    "sibling_only_on_client.py": """
        WHERE = "the client only"
    """,
    "helper_mod.py": """
        import sibling_only_on_client  # noqa: F401 (imported at the top, used by no job)

        SCALE = 10


        def _offset(x):
            return x + 1


        def compute(x):
            return _offset(x) * SCALE


        def f(x):
            return x * x + SCALE


        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

            def moved(self, dx, dy):
                return Point(self.x + dx, self.y + dy)

            def __eq__(self, other):
                return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


        def move(point, dx):
            assert isinstance(point, Point)  # the argument's class is this module's, on the node too
            return point.moved(dx, 2 * dx)


        class HelperError(ValueError):
            pass


        def fails(x):
            raise HelperError(f"helper refuses {x}")


        def setup(base):
            global TABLE
            TABLE = {k: base * k for k in range(5)}
            return 0


        def lookup(k):
            return TABLE[k]
    """,
    "gridlocal_pkg/__init__.py": """
        from .tables import FACTOR  # noqa: F401
    """,
    "gridlocal_pkg/tables.py": """
        FACTOR = 3
        OFFSET = 4
    """,
    "gridlocal_pkg/work.py": """
        from gridlocal_pkg import FACTOR
        from . import tables


        def work(x):
            return x * FACTOR + tables.OFFSET
    """,
    "gridwhole_mod.py": """
        import threading

        _LOCK = threading.Lock()  # cannot be pickled: this module must travel as a file


        class Tally:
            def __init__(self, total):
                self.total = total


        def locked_sum(values):
            with _LOCK:
                return Tally(sum(values))
    """,
}
MODULES = ["sibling_only_on_client", "helper_mod", "gridlocal_pkg", "gridlocal_pkg.tables",
           "gridlocal_pkg.work", "gridwhole_mod"]


@pytest.fixture(scope="module")
def far_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node whose cwd is a fresh empty directory and whose environment has no PYTHONPATH."""
    home = tmp_path_factory.mktemp("far-node-cwd")
    node = NodeProcess(tmp_path_factory.mktemp("far-node"), "--cpus", "2",
                       env={"PYTHONPATH": ""}, cwd=home)  # an empty PYTHONPATH is no PYTHONPATH
    yield node
    node.stop()
    assert not node.orphans


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """The modules of USER_CODE, written to a temp dir on the client's sys.path and imported."""
    root = tmp_path / "client-code"
    for name, source in USER_CODE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield {name: importlib.import_module(name) for name in MODULES}
    for name in MODULES:
        sys.modules.pop(name, None)


def nodes(node: NodeProcess) -> list[str]:
    return [f"127.0.0.1:{node.port}"]


def _where() -> dict[str, Any]:
    import importlib.util
    import os
    import sys
    return {"cwd": os.getcwd(), "path": list(sys.path),
            "importable": [name for name in ("tests", "helper_mod", "sibling_only_on_client",
                                             "gridlocal_pkg", "gridwhole_mod")
                           if importlib.util.find_spec(name) is not None]}


def test_the_node_shares_no_code_with_the_client(far_node: NodeProcess,
                                                 user_code: dict[str, ModuleType]) -> None:
    with gridlib.JobCluster(_where, nodes=nodes(far_node)) as cluster:  # this module's own function
        where = cluster.submit()(timeout=60)
    assert where is not None, "the probe did not run on the node"
    client_dirs = {str(Path(__file__).resolve().parents[2]),
                   str(Path(str(user_code["helper_mod"].__file__)).resolve().parent)}
    assert not client_dirs & {str(Path(p).resolve()) for p in where["path"] if p}
    assert Path(where["cwd"]).is_relative_to(far_node.prefix)  # the cluster's directory
    assert where["importable"] == []


def test_module_function_whose_module_imports_a_client_only_sibling(
        far_node: NodeProcess, user_code: dict[str, ModuleType]) -> None:
    helper_mod = user_code["helper_mod"]
    with gridlib.JobCluster(helper_mod.compute, nodes=nodes(far_node)) as cluster:
        jobs = [cluster.submit(i) for i in range(6)]
        assert [job(timeout=60) for job in jobs] == [(i + 1) * 10 for i in range(6)]
        assert all(job.status == JobStatus.Finished for job in jobs)
    # the setup's ``global`` is the computation's global: one namespace on the node
    with gridlib.JobCluster(helper_mod.lookup, setup=helper_mod.setup, setup_args=(5,),
                            nodes=nodes(far_node)) as cluster:
        assert [cluster.submit(k)(timeout=60) for k in (1, 4)] == [5, 20]


def test_user_class_as_argument_and_result(far_node: NodeProcess,
                                           user_code: dict[str, ModuleType]) -> None:
    helper_mod = user_code["helper_mod"]
    with gridlib.JobCluster(helper_mod.move, nodes=nodes(far_node)) as cluster:
        job = cluster.submit(helper_mod.Point(1, 2), 3)
        moved = job(timeout=60)
        assert job.status == JobStatus.Finished, job.exception
    assert isinstance(moved, helper_mod.Point)  # the client's own class, not a copy
    assert type(moved) is helper_mod.Point
    assert (moved.x, moved.y) == (4, 8)


def test_executor_map_and_submit_of_a_module_function(far_node: NodeProcess,
                                                      user_code: dict[str, ModuleType]) -> None:
    helper_mod = user_code["helper_mod"]
    with gridlib.GridExecutor(nodes=nodes(far_node)) as ex:
        assert list(ex.map(helper_mod.f, range(20), timeout=60)) == [x * x + 10 for x in range(20)]
        assert list(ex.map(helper_mod.f, range(7), chunksize=3, timeout=60)) == [x * x + 10 for x in range(7)]
        assert ex.submit(helper_mod.f, 3).result(60) == 19
        assert ex.submit(helper_mod.compute, 4).result(60) == 50
        with pytest.raises(helper_mod.HelperError) as caught:  # the user's exception class, back
            ex.submit(helper_mod.fails, 2).result(60)
        assert isinstance(caught.value, RemoteJobError) and "helper refuses 2" in str(caught.value)


def _double(x: int) -> int:
    return 2 * x


def test_lambda_and_closure_of_the_test_module(far_node: NodeProcess) -> None:
    offset = 100
    with gridlib.JobCluster(lambda x: _double(x) + TEST_MODULE_CONSTANT + offset,
                            nodes=nodes(far_node)) as cluster:
        assert [cluster.submit(i)(timeout=60) for i in (0, 5)] == [107, 117]

    def make_scaler(factor: int):  # type: ignore[no-untyped-def]
        def scaled(x: int) -> int:
            return _double(x) * factor
        return scaled

    with gridlib.JobCluster(make_scaler(3), nodes=nodes(far_node)) as cluster:
        assert cluster.submit(4)(timeout=60) == 24
    with gridlib.GridExecutor(nodes=nodes(far_node)) as ex:
        assert ex.submit(lambda: TEST_MODULE_CONSTANT * 6).result(60) == 42
        assert list(ex.map(make_scaler(5), [1, 2], timeout=60)) == [10, 20]


def test_function_of_a_local_package(far_node: NodeProcess, user_code: dict[str, ModuleType]) -> None:
    work = user_code["gridlocal_pkg.work"].work
    with gridlib.JobCluster(work, nodes=nodes(far_node)) as cluster:
        assert [cluster.submit(x)(timeout=60) for x in (0, 2)] == [4, 10]
    with gridlib.GridExecutor(nodes=nodes(far_node)) as ex:
        assert list(ex.map(work, range(3), timeout=60)) == [4, 7, 10]


def _installed_only(d: dict[str, int]) -> tuple[str, list[tuple[str, int]]]:
    return json.dumps(d, sort_keys=True), collections.Counter(d).most_common(1)


def test_installed_modules_go_by_reference(far_node: NodeProcess,
                                           user_code: dict[str, ModuleType]) -> None:
    with gridlib.JobCluster(_installed_only, nodes=nodes(far_node)) as cluster:
        assert cluster.submit({"b": 1, "a": 2})(timeout=60) == ('{"a": 2, "b": 1}', [("a", 2)])
    for obj in (json.dumps, collections.OrderedDict, gridlib.JobCluster, pickle.loads):
        blob = dumps(obj)
        assert len(blob) < 120, (obj, len(blob))  # a module and a name, no code
        assert b"_make_function" not in blob and b"co_code" not in blob
        assert pickle.loads(blob) is obj
    assert not is_user_module("json", json)
    assert not is_user_module("gridlib.daemons.runtime.payload", sys.modules["gridlib.daemons.runtime.payload"])  # editable, still installed
    assert not is_user_module("pytest", pytest)
    helper_mod = user_code["helper_mod"]
    assert is_user_module("helper_mod", helper_mod)
    assert is_user_module(__name__, sys.modules[__name__])
    blob = dumps(helper_mod.compute)  # by value, with exactly the globals it references
    assert b"_offset" in blob and b"SCALE" in blob
    assert b"sibling_only_on_client" not in blob and b"Point" not in blob


def test_a_module_in_depends_is_shipped_whole_and_goes_by_reference(
        far_node: NodeProcess, user_code: dict[str, ModuleType]) -> None:
    gridwhole_mod = user_code["gridwhole_mod"]

    def total(values):  # type: ignore[no-untyped-def]
        return gridwhole_mod.locked_sum(values)  # the module object: imported on the node

    with gridlib.JobCluster(total, depends=[gridwhole_mod], nodes=nodes(far_node)) as cluster:
        tally = cluster.submit([1, 2, 3])(timeout=60)
    assert type(tally) is gridwhole_mod.Tally and tally.total == 6  # it came back by reference
    assert b"_LOCK" not in dumps(gridwhole_mod.locked_sum)
