"""Safe file placement (docs/security.md §6): a peer-supplied name never escapes its directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

import pytest

from gridlib.protocol.errors import PayloadTooLarge, ProtocolError
from gridlib.protocol.paths import safe_join, safe_relative, write_file


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data.csv", "data.csv"),
        ("inputs/part-1.bin", "inputs/part-1.bin"),
        ("./inputs/./part-1.bin", "inputs/part-1.bin"),
        ("a//b", "a/b"),
        ("dir/", "dir"),
        ("...", "..."),
        ("..hidden", "..hidden"),
    ],
)
def test_safe_relative_normalizes_harmless_names(name: str, expected: str) -> None:
    assert safe_relative(name) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../etc/passwd",
        "inputs/../../escape",
        "inputs/..",
        "/etc/passwd",
        "//server/share",
        "a\x00b",
        "..\\..\\windows",
        "dir\\file",
        "",
        ".",
        "./",
    ],
)
def test_safe_relative_refuses_names_that_escape_or_are_malformed(name: str) -> None:
    with pytest.raises(ProtocolError):
        safe_relative(name)


def test_safe_join_places_a_name_under_the_base(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "inputs/x.bin") == tmp_path / "inputs" / "x.bin"


def test_safe_join_refuses_a_directory_link_that_leads_outside(tmp_path: Path) -> None:
    base, outside = tmp_path / "cluster", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "exit").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ProtocolError, match="link"):
        safe_join(base, "exit/planted.py")
    with pytest.raises(ProtocolError):
        write_file(base, "exit/planted.py", b"import os", 0o644, 1024)
    assert not (outside / "planted.py").exists()


def test_safe_join_refuses_a_file_link_even_inside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep out")
    base = tmp_path / "cluster"
    base.mkdir()
    (base / "results.txt").symlink_to(secret)

    with pytest.raises(ProtocolError, match="link"):
        safe_join(base, "results.txt")
    with pytest.raises(ProtocolError):
        write_file(base, "results.txt", b"overwritten", 0o644, 1024)
    assert secret.read_text() == "keep out"


def test_safe_join_accepts_a_link_that_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)

    assert safe_join(tmp_path, "alias/f.txt") == tmp_path / "alias" / "f.txt"


def test_safe_join_works_when_the_base_itself_is_reached_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "real-base").mkdir()
    (tmp_path / "base-link").symlink_to(tmp_path / "real-base", target_is_directory=True)

    target = write_file(tmp_path / "base-link", "sub/f.txt", b"ok", 0o600, 10)

    assert (tmp_path / "real-base" / "sub" / "f.txt").read_bytes() == b"ok"
    assert target == tmp_path / "base-link" / "sub" / "f.txt"


def test_write_file_creates_parents_and_writes_the_data(tmp_path: Path) -> None:
    target = write_file(tmp_path, "deep/er/data.bin", memoryview(b"\x00\x01payload"), 0o600, 100)

    assert target == tmp_path / "deep" / "er" / "data.bin"
    assert target.read_bytes() == b"\x00\x01payload"


@pytest.mark.parametrize(("mode", "expected"), [(0o644, 0o600), (0o755, 0o700), (0o777, 0o700),
                                                 (0o400, 0o600), (0o000, 0o600)])
def test_write_file_never_gives_group_or_world_access(tmp_path: Path, mode: int, expected: int) -> None:
    target = write_file(tmp_path, "f", b"data", mode, 100)

    assert stat.S_IMODE(target.stat().st_mode) == expected


def test_write_file_enforces_max_size(tmp_path: Path) -> None:
    assert write_file(tmp_path, "exact", b"x" * 10, 0o600, 10).stat().st_size == 10

    with pytest.raises(PayloadTooLarge) as info:
        write_file(tmp_path, "big", b"x" * 11, 0o600, 10)

    assert info.value.code == 413
    assert not (tmp_path / "big").exists()


def test_write_file_replaces_an_existing_file(tmp_path: Path) -> None:
    write_file(tmp_path, "f", b"first version, long", 0o600, 100)

    target = write_file(tmp_path, "f", b"second", 0o600, 100)

    assert target.read_bytes() == b"second"


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a\\b"])
def test_write_file_refuses_escaping_names(tmp_path: Path, name: str) -> None:
    base = tmp_path / "cluster"
    base.mkdir()

    with pytest.raises(ProtocolError):
        write_file(base, name, b"x", 0o600, 100)

    assert os.listdir(tmp_path) == ["cluster"]
    assert os.listdir(base) == []
