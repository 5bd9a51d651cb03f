"""Which modules count as the user's own code (by value), in this process, without a node.

The end-to-end proof against a node that cannot import anything of the
client's is tests/integration/test_code_by_value.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import pickle
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gridlib.daemons.runtime import payload
from gridlib.daemons.runtime.payload import (
    dumps,
    is_user_module,
    pack_computation,
    unpack_computation,
)


def _load(name: str, path: Path) -> ModuleType:
    """A module loaded from ``path`` without entering sys.modules."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_standard_and_gridlib_modules_are_by_reference() -> None:
    assert not is_user_module("json", json)
    assert not is_user_module("pytest", pytest)  # site-packages
    assert not is_user_module("gridlib.daemons.runtime.payload", payload)  # editable: in the checkout, still installed
    assert not is_user_module("sys", sys)  # built in: no file
    assert is_user_module(__name__, sys.modules[__name__])  # a test module is the user's own
    assert is_user_module("__main__", sys.modules["__main__"])


def test_a_local_module_shadowing_an_installed_name_is_the_users(tmp_path: Path) -> None:
    installed = "pytest_timeout"  # a distribution's top-level module, installed as a dev extra
    assert installed in importlib.metadata.packages_distributions()
    (tmp_path / f"{installed}.py").write_text("X = 1\n")
    assert is_user_module(installed, _load(installed, tmp_path / f"{installed}.py"))


def test_namespace_package_and_extension_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gridns_pkg").mkdir()
    (tmp_path / "gridns_pkg" / "part.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        import gridns_pkg.part
        assert gridns_pkg.__file__ is None  # no __init__.py: a namespace package
        assert is_user_module("gridns_pkg", gridns_pkg)
        assert is_user_module("gridns_pkg.part", gridns_pkg.part)
    finally:
        sys.modules.pop("gridns_pkg.part", None)
        sys.modules.pop("gridns_pkg", None)
    fake_extension = ModuleType("gridext_mod")
    fake_extension.__file__ = str(tmp_path / "gridext_mod.cpython-311-x86_64-linux-gnu.so")
    assert not is_user_module("gridext_mod", fake_extension)  # cannot travel by value


def test_by_value_code_keeps_its_file_name_for_remote_tracebacks() -> None:
    def raises() -> None:
        raise ValueError("here")

    loaded = pickle.loads(dumps(raises))
    assert loaded is not raises
    assert loaded.__code__.co_filename == __file__
    assert loaded.__code__.co_firstlineno == raises.__code__.co_firstlineno


def test_a_depends_module_is_shipped_whole_and_pickled_by_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gridwhole_unit.py").write_text("import threading\nLOCK = threading.Lock()\n"
                                                "def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        import gridwhole_unit
        assert is_user_module("gridwhole_unit", gridwhole_unit)
        with pytest.raises(TypeError):  # by value, the module would carry its lock
            dumps(lambda: gridwhole_unit.f(1))
        kind, blob, files = pack_computation(lambda x: gridwhole_unit.f(x), depends=[gridwhole_unit])
        assert kind == "function" and [name for name, _, _ in files] == ["gridwhole_unit.py"]
        assert not is_user_module("gridwhole_unit", gridwhole_unit)  # from now on, by reference
        comp = unpack_computation(blob)
        assert comp.shipped_modules == ["gridwhole_unit"]
        assert comp.func is not None and comp.func(5) == 5
        assert pickle.loads(dumps(gridwhole_unit.f)) is gridwhole_unit.f
    finally:
        sys.modules.pop("gridwhole_unit", None)
