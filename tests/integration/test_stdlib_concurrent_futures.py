"""CPython's own ``test_concurrent_futures``, its executor-generic tests bound to ``GridExecutor``.

The test file is the installed Python's (Debian: ``apt-get install
libpython3.11-testsuite``; ``.ci/run`` installs it), imported at test time,
never copied here.  Bound: every executor-generic class -- ``ExecutorTest``,
``WaitTests``, ``AsCompletedTests``, ``ExecutorShutdownTest``, the
initializer tests.  Not bound, because they test another executor's internals:
``ThreadPool*``/``ProcessPool*``-only tests (threads, processes, mp
contexts, ``max_tasks_per_child``), ``ExecutorDeadlockTest`` (pickling
crashes inside a process pool's queues) and ``FutureTests`` (``Future``
itself, which GridExecutor uses unchanged).

Three shutdown tests start a fresh interpreter with ``from concurrent.futures
import {executor}``; they are run here with the same script, the import line
being ``from gridlib import GridExecutor`` (and ``sleep_and_print`` defined in
the script: the child runs isolated, without the test package).
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import gridlib
from gridlib import GridExecutor
from tests.helpers import NodeProcess


def _testsuite() -> Path | None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for base in (Path(sysconfig.get_paths()["stdlib"]), Path("/usr/lib") / version):
        if (base / "test" / "test_concurrent_futures.py").exists():
            return base / "test"
    return None


SUITE = _testsuite()
if SUITE is None:
    pytest.skip(f"CPython's test package is not installed (Debian: apt-get install "
                f"lib{sys.version_info.major}.{sys.version_info.minor}-testsuite: "
                f"libpython3.11-testsuite); .ci/run installs it", allow_module_level=True)

# `test` from the test suite, and nothing else from that directory; the private local
# node and its workers find it too (the functions the tests submit live in that module)
_LINK_DIR = Path(tempfile.mkdtemp(prefix="gridlib-stdlib-tests-"))
(_LINK_DIR / "test").symlink_to(SUITE)
sys.path.insert(0, str(_LINK_DIR))
sys.modules.pop("test", None)  # (the interpreter may ship a stub test package)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_LINK_DIR), os.environ.get("PYTHONPATH")) if p)

from test import test_concurrent_futures as cf  # noqa: E402
from test.support.script_helper import assert_python_ok  # noqa: E402

_NODE: list[str] = []  # the node daemon the bound tests use (one for the module: fast)


@pytest.fixture(scope="module", autouse=True)
def node_daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    node = NodeProcess(tmp_path_factory.mktemp("stdlib-node"), "--cpus", "5")
    _NODE[:] = [f"127.0.0.1:{node.port}"]
    yield node
    node.stop()


class NodeGridExecutor(GridExecutor):
    """GridExecutor on the module's node daemon (``max_workers`` is then the node's: 5)."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("nodes", list(_NODE))
        super().__init__(*args, **kwargs)


class GridMixin(cf.ExecutorMixin):
    executor_type = NodeGridExecutor

    def tearDown(self) -> None:
        # ExecutorMixin's, then one collection: the executor's stopped threads live in
        # reference cycles, and BaseTestCase's thread check would otherwise spin for seconds
        self.executor.shutdown(wait=True)
        self.executor = None
        gc.collect()
        cf.BaseTestCase.tearDown(self)


_SLEEP_AND_PRINT = '''
def sleep_and_print(t, msg):
    import time
    time.sleep(t)
    print(msg)
'''


class GridShutdownTest(GridMixin, cf.ExecutorShutdownTest, cf.BaseTestCase):
    def test_interpreter_shutdown(self) -> None:
        rc, out, err = assert_python_ok("-c", _SLEEP_AND_PRINT + """
from gridlib import GridExecutor
if __name__ == "__main__":
    t = GridExecutor(5)
    t.submit(sleep_and_print, 1.0, "apple")
""")
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    def test_submit_after_interpreter_shutdown(self) -> None:
        rc, out, err = assert_python_ok("-c", """
import atexit
@atexit.register
def run_last():
    try:
        t.submit(id, None)
    except RuntimeError:
        print("runtime-error")
        raise
from gridlib import GridExecutor
if __name__ == "__main__":
    t = GridExecutor(5)
""")
        self.assertIn("RuntimeError: cannot schedule new futures", err.decode())
        self.assertEqual(out.strip(), b"runtime-error")

    def test_hang_gh83386(self) -> None:
        rc, out, err = assert_python_ok("-c", _SLEEP_AND_PRINT + """
from gridlib import GridExecutor
if __name__ == "__main__":
    t = GridExecutor(max_workers=3)
    t.submit(sleep_and_print, 1.0, "apple")
    t.shutdown(wait=False)
""")
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")


class GridWaitTest(GridMixin, cf.WaitTests, cf.BaseTestCase):
    pass


class GridAsCompletedTest(GridMixin, cf.AsCompletedTests, cf.BaseTestCase):
    pass


class GridExecutorTest(GridMixin, cf.ExecutorTest, cf.BaseTestCase):
    pass


class GridInitializerTest(cf.InitializerMixin, GridMixin, cf.BaseTestCase):
    pass


class GridFailingInitializerTest(cf.FailingInitializerMixin, GridMixin, cf.BaseTestCase):
    pass


def test_the_bound_classes_are_the_generic_ones() -> None:
    """If CPython renames a generic test class, this fails instead of silently testing less."""
    for name in ("ExecutorShutdownTest", "WaitTests", "AsCompletedTests", "ExecutorTest",
                 "InitializerMixin", "FailingInitializerMixin"):
        assert hasattr(cf, name), name
    assert gridlib.GridExecutor is GridExecutor
