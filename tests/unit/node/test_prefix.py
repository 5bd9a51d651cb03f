"""The node.pid lock of a --dest-path-prefix, and what --clean may touch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gridlib.daemons.node.prefix import (
    PrefixBusy,
    PrefixLock,
    clean_prefix,
    live_node,
    load_node_id,
    prepare_prefix,
)


def test_one_lock_per_prefix_and_release_frees_it(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    first = PrefixLock(prefix)
    first.acquire()
    assert (prefix / "node.pid").read_text() == f"{os.getpid()}\n"
    with pytest.raises(PrefixBusy, match=rf"another node \(pid {os.getpid()}\).*--clean"):
        PrefixLock(prefix).acquire()
    assert live_node(prefix) is not None  # this process holds it, with the file open
    first.release()
    assert (prefix / "node.pid").read_text() == ""
    second = PrefixLock(prefix)
    second.acquire()
    second.release()


def test_a_stale_pid_file_is_no_live_node(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    prepare_prefix(prefix)
    (prefix / "node.pid").write_text(f"{os.getpid()}\n")  # a PID that is alive, but holds no lock
    assert live_node(prefix) is None
    (prefix / "clusters" / "old").mkdir(parents=True)
    assert clean_prefix(prefix, logging.getLogger("test")) == []
    assert not (prefix / "clusters").exists()


def test_prefix_must_be_private(tmp_path: Path) -> None:
    prefix = tmp_path / "shared"
    prefix.mkdir(mode=0o777)
    prefix.chmod(0o777)
    with pytest.raises(PrefixBusy, match="not writable by others"):
        prepare_prefix(prefix)


def test_node_id_persists(tmp_path: Path) -> None:
    assert load_node_id(tmp_path) == load_node_id(tmp_path)
