"""Shared fixtures: an isolated key directory, free ports, node processes cleaned up by PID."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import LIVE, NodeProcess, free_port


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
    node = NodeProcess(free_port(), tmp_path_factory.mktemp("node"), "--cpus", "2")
    yield node
    node.stop()
