"""Shared fixtures: an isolated key directory, node processes cleaned up by PID; serial
tests are slow tests too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import LIVE, NodeProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``serial`` (run alone by ``make test``) is slow too: ``make test-quick``,
    which runs everything on several processes, leaves it out."""
    for item in items:
        if item.get_closest_marker("serial") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def isolated_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test uses a throwaway user key, never the real ~/.config/gridlib."""
    path = tmp_path_factory.mktemp("gridlib-config")
    old = os.environ.get("GRIDLIB_CONFIG_DIR")
    os.environ["GRIDLIB_CONFIG_DIR"] = str(path)
    os.environ.pop("GRIDLIB_SECRET", None)
    yield path
    for daemon in LIVE:  # a test that failed before its own clean-up: stop what it started
        if daemon.proc.poll() is None:
            daemon.stop()
    if old is None:
        os.environ.pop("GRIDLIB_CONFIG_DIR", None)
    else:
        os.environ["GRIDLIB_CONFIG_DIR"] = old


@pytest.fixture(scope="module")
def node_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One ``gridlib node`` (2 CPUs) shared by a test module."""
    node = NodeProcess(tmp_path_factory.mktemp("node"), "--cpus", "2")
    yield node
    node.stop()
