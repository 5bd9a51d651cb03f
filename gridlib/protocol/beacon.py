"""The discovery beacon: a scheduler's public hint to nodes (docs/architecture.md §4.1).

A beacon is the only thing gridlib accepts unauthenticated.  It is a
two-frame PUB message ``[BEACON_TOPIC, msgpack map]`` of at most
``MAX_BEACON_BYTES``, parsed with bounded msgpack and validated field by
field.  All it can cause is a CURVE-authenticated dial to a scheduler whose
key the node already trusts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import msgpack
from zmq.utils import z85

from .errors import ProtocolError

__all__ = ["BEACON_TOPIC", "MAX_BEACON_BYTES", "Beacon", "encode_beacon", "decode_beacon"]

BEACON_TOPIC = b"GRIDB\x01"
MAX_BEACON_BYTES = 4096
_ENDPOINT = re.compile(r"tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]{1,253}):([0-9]{1,5})")
_Z85 = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


@dataclass(frozen=True, slots=True)
class Beacon:
    """A scheduler's announcement: who it is and where its node port is."""

    scheduler_id: str
    epoch: int
    seq: int
    endpoint: str
    key: bytes
    heartbeat: float

    def to_map(self) -> dict[str, object]:
        return {
            "sid": self.scheduler_id, "epoch": self.epoch, "seq": self.seq,
            "ep": self.endpoint, "key": self.key.decode(), "hb": self.heartbeat,
        }


def _is_curve_key(key: str) -> bool:
    try:
        return len(z85.decode(key.encode())) == 32
    except Exception:
        return False


def encode_beacon(beacon: Beacon) -> list[bytes]:
    body = msgpack.packb(beacon.to_map(), use_bin_type=True)
    if len(body) > MAX_BEACON_BYTES:
        raise ProtocolError("beacon too large")
    return [BEACON_TOPIC, body]


def decode_beacon(frames: list[bytes]) -> Beacon:
    """Validate and parse a beacon; raises :class:`ProtocolError` on anything odd."""
    if len(frames) != 2 or frames[0] != BEACON_TOPIC:
        raise ProtocolError("not a beacon")
    body = frames[1]
    if len(body) > MAX_BEACON_BYTES:
        raise ProtocolError("beacon too large")
    try:
        data = msgpack.unpackb(
            body, raw=False, strict_map_key=True,
            max_array_len=16, max_map_len=16, max_str_len=512, max_bin_len=0, max_ext_len=0,
        )
    except Exception:
        raise ProtocolError("beacon is not valid msgpack") from None
    if not isinstance(data, dict):
        raise ProtocolError("beacon is not a map")
    sid, epoch, seq = data.get("sid"), data.get("epoch"), data.get("seq")
    endpoint, key, hb = data.get("ep"), data.get("key"), data.get("hb")
    if not (isinstance(sid, str) and 0 < len(sid) <= 64):
        raise ProtocolError("beacon: bad scheduler id")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, seq)):
        raise ProtocolError("beacon: bad epoch or sequence")
    match = _ENDPOINT.fullmatch(endpoint) if isinstance(endpoint, str) else None
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ProtocolError("beacon: bad endpoint")
    if not (isinstance(key, str) and _Z85.fullmatch(key) and _is_curve_key(key)):
        raise ProtocolError("beacon: bad key")
    if isinstance(hb, bool) or not (isinstance(hb, (int, float)) and 0.05 <= hb <= 600):
        raise ProtocolError("beacon: bad heartbeat interval")
    return Beacon(sid, cast(int, epoch), cast(int, seq), cast(str, endpoint), key.encode(), float(hb))
