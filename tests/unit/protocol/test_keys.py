"""Curve keys (docs/security.md §2): shared secrets, key files, the user's own key and identities."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from gridlib.protocol.errors import KeyFileError
from gridlib.protocol.keys import (
    KeyPair,
    derive_keypair,
    generate_keypair,
    load_keypair,
    load_public_key,
    resolve_identity,
    user_keypair,
    write_keypair,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_valid_curve_pair(pair: KeyPair) -> None:
    assert len(pair.public) == len(pair.secret) == 40
    assert len(z85.decode(pair.public)) == len(z85.decode(pair.secret)) == 32
    assert zmq.curve_public(pair.secret) == pair.public


# -- shared secret ------------------------------------------------------------------


def test_derive_keypair_is_deterministic() -> None:
    assert derive_keypair("correct horse battery staple") == derive_keypair("correct horse battery staple")


def test_different_secrets_give_different_keys() -> None:
    a, b = derive_keypair("secret-a"), derive_keypair("secret-b")

    assert a.public != b.public
    assert a.secret != b.secret


@pytest.mark.parametrize("secret", ["s", "correct horse battery staple", "ünïcødé 🔑", "x" * 10_000])
def test_derived_keys_are_valid_curve_keys(secret: str) -> None:
    assert_valid_curve_pair(derive_keypair(secret))


def test_empty_secret_is_refused() -> None:
    with pytest.raises(KeyFileError):
        derive_keypair("")


def test_generated_keys_are_valid_and_fresh() -> None:
    a, b = generate_keypair(), generate_keypair()

    assert_valid_curve_pair(a)
    assert a != b


# -- key files -----------------------------------------------------------------------


def test_write_keypair_round_trips_with_a_private_secret_file(tmp_path: Path) -> None:
    written = write_keypair(tmp_path / "keys", "alice")

    secret_file = tmp_path / "keys" / "alice.key_secret"
    public_file = tmp_path / "keys" / "alice.key"
    assert mode_of(secret_file) == 0o600
    assert load_keypair(secret_file) == written
    assert load_public_key(public_file) == written.public
    assert written.secret.decode() not in public_file.read_text()
    assert_valid_curve_pair(written)


def test_write_keypair_keeps_a_given_keypair(tmp_path: Path) -> None:
    pair = derive_keypair("shared")

    assert write_keypair(tmp_path, "shared", pair) == pair
    assert load_keypair(tmp_path / "shared.key_secret") == pair


def test_rewriting_a_world_readable_secret_file_makes_it_private(tmp_path: Path) -> None:
    write_keypair(tmp_path, "node")
    (tmp_path / "node.key_secret").chmod(0o644)

    write_keypair(tmp_path, "node")

    assert mode_of(tmp_path / "node.key_secret") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
def test_load_keypair_refuses_a_secret_file_others_can_access(tmp_path: Path, mode: int) -> None:
    write_keypair(tmp_path, "alice")
    path = tmp_path / "alice.key_secret"
    path.chmod(mode)

    with pytest.raises(KeyFileError) as info:
        load_keypair(path)

    assert "chmod 600" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not a certificate at all\n",
        'curve\n    public-key = "{public}"\n',
        'curve\n    secret-key = "{secret}"\n',
        'curve\n    public-key = "{public}"\n    secret-key = "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"\n',
        'curve\n    public-key = "{public}"\n    secret-key = "{short}"\n',
    ],
    ids=["empty", "garbage", "public-only", "secret-only", "not-z85", "truncated-secret"],
)
def test_load_keypair_refuses_a_malformed_file(tmp_path: Path, content: str) -> None:
    pair = generate_keypair()
    path = tmp_path / "bad.key_secret"
    path.write_text(content.format(public=pair.public.decode(), secret=pair.secret.decode(),
                                   short=pair.secret.decode()[:35]))
    path.chmod(0o600)

    with pytest.raises(KeyFileError):
        load_keypair(path)


def test_load_keypair_of_a_missing_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keypair(tmp_path / "absent.key_secret")


# -- the user's own key -----------------------------------------------------------------


def test_user_keypair_is_created_once_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config" / "gridlib"
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(config))

    first = user_keypair()
    second = user_keypair()

    assert first == second
    assert_valid_curve_pair(first)
    assert mode_of(config / "identity.key_secret") == 0o600
    assert mode_of(config) == 0o700
    assert load_public_key(config / "identity.key") == first.public


def test_user_keypair_differs_per_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(tmp_path / "user-a"))
    a = user_keypair()
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(tmp_path / "user-b"))
    b = user_keypair()

    assert a != b


def test_user_keypair_refuses_a_world_readable_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(tmp_path))
    user_keypair()
    (tmp_path / "identity.key_secret").chmod(0o644)

    with pytest.raises(KeyFileError, match="chmod"):
        user_keypair()


# -- identities --------------------------------------------------------------------------


def test_identity_from_a_secret_trusts_exactly_the_derived_key() -> None:
    identity = resolve_identity(secret="team secret")

    expected = derive_keypair("team secret")
    assert identity.keypair == expected
    assert identity.trusted_clients == identity.trusted_nodes == frozenset({expected.public})
    assert identity.source == "secret"


def test_identity_from_a_keys_directory(tmp_path: Path) -> None:
    own = write_keypair(tmp_path, "identity")
    alice = write_keypair(tmp_path / "clients", "alice")
    bob = write_keypair(tmp_path / "clients", "bob")
    node = write_keypair(tmp_path / "nodes", "node-1")

    identity = resolve_identity(keys=tmp_path)

    assert identity.keypair == own
    assert identity.trusted_clients == {own.public, alice.public, bob.public}
    assert identity.trusted_nodes == {own.public, node.public}
    assert str(tmp_path) in identity.source


def test_identity_from_a_keys_directory_without_allowlists_trusts_itself(tmp_path: Path) -> None:
    own = write_keypair(tmp_path, "identity")

    identity = resolve_identity(keys=str(tmp_path))

    assert identity.trusted_clients == identity.trusted_nodes == {own.public}


def test_identity_from_a_keys_directory_needs_a_private_secret(tmp_path: Path) -> None:
    write_keypair(tmp_path, "identity")
    (tmp_path / "identity.key_secret").chmod(0o644)

    with pytest.raises(KeyFileError, match="chmod"):
        resolve_identity(keys=tmp_path)


def test_identity_from_a_keys_directory_without_identity_is_refused(tmp_path: Path) -> None:
    write_keypair(tmp_path / "clients", "alice")

    with pytest.raises(KeyFileError):
        resolve_identity(keys=tmp_path)


def test_default_identity_is_the_user_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(tmp_path))
    partner = write_keypair(tmp_path / "nodes", "laptop")

    identity = resolve_identity()

    assert identity.keypair == user_keypair()
    assert identity.source == "user"
    assert identity.keypair.public in identity.trusted_clients
    assert identity.trusted_nodes == {identity.keypair.public, partner.public}


def test_a_node_and_a_client_of_one_user_trust_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDLIB_CONFIG_DIR", str(tmp_path))

    node, client = resolve_identity(), resolve_identity()

    assert client.keypair.public in node.trusted_clients
    assert node.keypair.public in client.trusted_nodes


def test_secret_wins_over_a_keys_directory(tmp_path: Path) -> None:
    write_keypair(tmp_path, "identity")

    identity = resolve_identity(secret="s3", keys=tmp_path)

    assert identity.keypair == derive_keypair("s3")


# -- never leak the secret -----------------------------------------------------------------


def test_repr_never_shows_the_secret_half() -> None:
    pair = generate_keypair()
    identity = resolve_identity(secret="do not log me")

    for text in (repr(pair), str(pair), f"{pair!r}"):
        assert pair.secret.decode() not in text
        assert pair.public.decode() in text
    assert identity.keypair.secret.decode() not in repr(identity)
