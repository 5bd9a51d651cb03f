"""Curve keys: the user's own key, key files, and keys derived from a secret (docs/security.md §2).

Three ways to an identity:

* the user's own key, created on first use under the user's config
  directory (``$GRIDLIB_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/gridlib``, else
  ``~/.config/gridlib``) -- a node and a client of the same user on one
  machine trust each other with no set-up;
* a key directory (``--keys DIR``): ``DIR/identity.key_secret`` is this
  process's key, ``DIR/clients/*.key`` the keys allowed to send work and
  ``DIR/nodes/*.key`` the keys allowed to serve it;
* a shared ``secret``: every side derives the same keypair (HKDF-SHA256 then
  X25519) and trusts exactly that key.

Key files use ZeroMQ's ZPL certificate format; secret files are written
0600 and refused when group or world can read them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from zmq.utils import z85

from .errors import KeyFileError

__all__ = [
    "KeyPair",
    "Identity",
    "config_dir",
    "derive_keypair",
    "generate_keypair",
    "write_keypair",
    "load_keypair",
    "load_public_key",
    "load_public_keys",
    "user_keypair",
    "resolve_identity",
    "parse_public_key",
    "allow_key",
    "revoke_key",
    "ROLES",
]

_HKDF_SALT = b"gridlib/curve/v1"
_HKDF_INFO = b"gridlib shared-secret keypair"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A Curve keypair, both halves Z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes

    def __repr__(self) -> str:  # never show the secret half in logs
        return f"KeyPair(public={self.public.decode()!r})"


@dataclass(frozen=True, slots=True)
class Identity:
    """This process's keypair and the peer keys it trusts."""

    keypair: KeyPair
    trusted_clients: frozenset[bytes] = field(default_factory=frozenset)
    trusted_nodes: frozenset[bytes] = field(default_factory=frozenset)
    source: str = "user"


def config_dir() -> Path:
    """The directory holding the user's key and allowlists."""
    env = os.environ.get("GRIDLIB_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "gridlib"


def derive_keypair(secret: str) -> KeyPair:
    """The keypair every holder of ``secret`` derives identically."""
    if not secret:
        raise KeyFileError("the shared secret must not be empty")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        secret.encode()
    )
    private = X25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KeyPair(z85.encode(public), z85.encode(seed))


def generate_keypair() -> KeyPair:
    """A fresh random keypair."""
    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret)


def _zpl(keypair: KeyPair, with_secret: bool) -> str:
    lines = [
        "#   gridlib Curve certificate (ZeroMQ ZPL format)",
        "metadata",
        "curve",
        f'    public-key = "{keypair.public.decode()}"',
    ]
    if with_secret:
        lines.append(f'    secret-key = "{keypair.secret.decode()}"')
    return "\n".join(lines) + "\n"


def write_keypair(directory: Path, name: str, keypair: KeyPair | None = None) -> KeyPair:
    """Write ``name.key`` (public, 0644) and ``name.key_secret`` (0600)."""
    keypair = keypair or generate_keypair()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_path = directory / f"{name}.key_secret"
    tmp = secret_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_zpl(keypair, True))
    os.chmod(tmp, 0o600)
    os.replace(tmp, secret_path)
    (directory / f"{name}.key").write_text(_zpl(keypair, False))
    return keypair


def _read_keys(path: Path) -> dict[str, bytes]:
    """Parse a ZPL certificate with pyzmq's own reader, then check each key.

    pyzmq's ``zmq.auth.load_certificate`` reads the format; what it does not
    do, and this adds, is refuse a key that is not 32 bytes of Z85 (a
    truncated or hand-edited file) with a message naming the file.
    """
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise KeyFileError(f"{path} holds no public-key") from None
    found = {"public": public} if secret is None else {"public": public, "secret": secret}
    for value in found.values():
        try:
            if len(value) != 40 or len(z85.decode(value)) != 32:
                raise ValueError
        except Exception:
            raise KeyFileError(f"key file {path} holds a malformed key") from None
    return found


def load_keypair(path: Path) -> KeyPair:
    """Load a secret key file, refusing one that group or world can read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"secret key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    keys = _read_keys(path)
    if "public" not in keys or "secret" not in keys:
        raise KeyFileError(f"{path} is not a secret key file (needs public-key and secret-key)")
    return KeyPair(keys["public"], keys["secret"])


def load_public_key(path: Path) -> bytes:
    keys = _read_keys(path)
    if "public" not in keys:
        raise KeyFileError(f"{path} holds no public-key")
    return keys["public"]


def load_public_keys(directory: Path) -> frozenset[bytes]:
    """Every public key in ``directory/*.key``; an absent directory is empty."""
    if not directory.is_dir():
        return frozenset()
    return frozenset(load_public_key(p) for p in sorted(directory.glob("*.key")))


ROLES = {"client": "clients", "node": "nodes"}


def parse_public_key(text: str) -> bytes:
    """A Z85 public key given as text, or read from a ``.key`` file path."""
    candidate = text.strip()
    path = Path(candidate)
    if len(candidate) != 40 and path.is_file():
        return load_public_key(path)
    try:
        if len(z85.decode(candidate.encode())) != 32:
            raise ValueError
    except Exception:
        raise KeyFileError(f"{text!r} is neither a 40-character Z85 public key nor a .key file") from None
    return candidate.encode()


def allow_key(directory: Path, role: str, public: bytes, name: str) -> Path:
    """Trust ``public`` as a ``role`` ("client" or "node"): writes DIR/<role>s/NAME.key."""
    if role not in ROLES:
        raise KeyFileError(f"role must be one of {sorted(ROLES)}")
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"bad key name {name!r}")
    folder = directory / ROLES[role]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    path.write_text(_zpl(KeyPair(public, b""), False))
    return path


def revoke_key(directory: Path, role: str, name_or_key: str) -> list[Path]:
    """Stop trusting a key (by file name or by the key itself); returns the files removed."""
    removed = []
    for folder_role in ([role] if role in ROLES else list(ROLES)):
        folder = directory / ROLES[folder_role]
        for path in sorted(folder.glob("*.key")) if folder.is_dir() else []:
            try:
                key = load_public_key(path).decode()
            except KeyFileError:
                key = ""
            if name_or_key in (path.stem, key):
                path.unlink()
                removed.append(path)
    return removed


def user_keypair() -> KeyPair:
    """The user's own keypair, created 0600 on first use."""
    directory = config_dir()
    path = directory / "identity.key_secret"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        return write_keypair(directory, "identity")
    return load_keypair(path)


def resolve_identity(secret: str | None = None, keys: str | os.PathLike[str] | None = None) -> Identity:
    """The identity for the given options (``secret`` wins over ``keys``)."""
    if secret:
        pair = derive_keypair(secret)
        trusted = frozenset({pair.public})
        return Identity(pair, trusted, trusted, source="secret")
    directory = Path(keys) if keys else config_dir()
    pair = load_keypair(directory / "identity.key_secret") if keys else user_keypair()
    own = frozenset({pair.public})
    return Identity(
        pair,
        own | load_public_keys(directory / "clients"),
        own | load_public_keys(directory / "nodes"),
        source=f"keys:{directory}" if keys else "user",
    )
