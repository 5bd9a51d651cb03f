"""The discovery beacon: the one unauthenticated input, strictly validated."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridlib.protocol.beacon import (
    BEACON_TOPIC,
    MAX_BEACON_BYTES,
    Beacon,
    decode_beacon,
    encode_beacon,
)
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.keys import derive_keypair

KEY = derive_keypair("beacon tests").public


def beacon(**changes: Any) -> Beacon:
    fields: dict[str, Any] = {
        "scheduler_id": "sched-1f3a", "epoch": 1732600000, "seq": 42,
        "endpoint": "tcp://192.0.2.10:51351", "key": KEY, "heartbeat": 2.0,
    }
    fields.update(changes)
    return Beacon(**fields)


def raw(**changes: Any) -> list[bytes]:
    """Beacon frames built by hand, with map keys replaced (or removed when None)."""
    body: dict[str, Any] = beacon().to_map()
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return [BEACON_TOPIC, msgpack.packb(body, use_bin_type=True)]


@pytest.mark.parametrize(
    "sent",
    [
        beacon(),
        beacon(endpoint="tcp://[2001:db8::7]:6000", heartbeat=0.05, seq=0),
        beacon(endpoint="tcp://sched.example.org:1", heartbeat=600, scheduler_id="s" * 64),
    ],
    ids=["ipv4", "ipv6-min-heartbeat", "hostname-max-heartbeat"],
)
def test_round_trip(sent: Beacon) -> None:
    frames = encode_beacon(sent)

    assert frames[0] == BEACON_TOPIC
    assert len(frames[1]) <= MAX_BEACON_BYTES
    assert decode_beacon(frames) == sent


def test_heartbeat_sent_as_integer_comes_back_as_float() -> None:
    received = decode_beacon(raw(hb=3))

    assert received.heartbeat == 3.0
    assert isinstance(received.heartbeat, float)


def test_encode_refuses_a_beacon_over_4_kib() -> None:
    with pytest.raises(ProtocolError):
        encode_beacon(beacon(scheduler_id="s" * (MAX_BEACON_BYTES + 1)))


@pytest.mark.parametrize(
    "frames",
    [
        [b"GRIDB\x02", msgpack.packb(beacon().to_map())],
        [b"GRID\x01", msgpack.packb(beacon().to_map())],
        [b"", msgpack.packb(beacon().to_map())],
        [BEACON_TOPIC],
        [BEACON_TOPIC, msgpack.packb(beacon().to_map()), b"extra"],
        [],
    ],
    ids=["other-version-topic", "envelope-signature", "empty-topic", "no-body", "extra-frame", "nothing"],
)
def test_wrong_topic_or_frame_count_is_refused(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode_beacon(frames)


def test_body_over_4_kib_is_refused_before_parsing() -> None:
    body = msgpack.packb({**beacon().to_map(), "pad": "x" * 500})
    padded = body + b"\x00" * (MAX_BEACON_BYTES + 1 - len(body))

    with pytest.raises(ProtocolError, match="too large"):
        decode_beacon([BEACON_TOPIC, padded])


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb([1, 2, 3]),
        msgpack.packb("beacon"),
        msgpack.packb(None),
        b"",
        b"\xc1",
        msgpack.packb(beacon().to_map())[:-2],
        msgpack.packb({"sid": b"bin values are refused"}, use_bin_type=True),
        msgpack.packb({i: i for i in range(17)}),
    ],
    ids=["array", "str", "nil", "empty", "invalid", "truncated", "bin", "int-keys"],
)
def test_body_must_be_a_small_msgpack_map(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_beacon([BEACON_TOPIC, body])


@pytest.mark.parametrize(
    "changes",
    [
        {"sid": ""},
        {"sid": "s" * 65},
        {"sid": 7},
        {"sid": None},
        {"epoch": True},
        {"epoch": "1732600000"},
        {"epoch": 1.5},
        {"epoch": None},
        {"seq": "42"},
        {"seq": None},
        {"seq": True},
        {"ep": "tcp://192.0.2.10"},
        {"ep": "udp://192.0.2.10:51351"},
        {"ep": "ipc:///tmp/sched"},
        {"ep": "tcp://evil host:51351"},
        {"ep": "tcp://192.0.2.10:51351/path"},
        {"ep": "tcp://192.0.2.10:99999"},
        {"ep": "tcp://192.0.2.10:51351\n"},
        {"ep": "tcp://192.0.2.10:\u0665\u0661\u0663\u0665\u0661"},
        {"ep": None},
        {"key": KEY.decode()[:39]},
        {"key": KEY.decode() + "A"},
        {"key": KEY.decode()[:39] + " "},
        {"key": KEY.decode() + "\n"},
        {"key": "#" * 40},
        {"key": 12345},
        {"key": None},
        {"hb": 0.01},
        {"hb": 601},
        {"hb": -2.0},
        {"hb": float("nan")},
        {"hb": float("inf")},
        {"hb": "2.0"},
        {"hb": True},
        {"hb": None},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_junk_fields_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        decode_beacon(raw(**changes))


def test_unknown_keys_are_ignored() -> None:
    frames = [BEACON_TOPIC, msgpack.packb({**beacon().to_map(), "relay": "r1"})]

    assert decode_beacon(frames) == beacon()


_INT64 = st.integers(-(2**63), 2**64 - 1)


@settings(max_examples=1500, deadline=None, database=None)
@given(
    st.one_of(
        st.lists(st.binary(max_size=64), max_size=4),
        st.tuples(st.just(BEACON_TOPIC), st.binary(max_size=256)).map(list),
        st.tuples(
            st.just(BEACON_TOPIC),
            st.dictionaries(
                st.sampled_from(["sid", "epoch", "seq", "ep", "key", "hb", "x"]),
                st.none() | _INT64 | st.booleans() | st.floats() | st.text(max_size=60)
                | st.binary(max_size=8) | st.lists(_INT64, max_size=20),
            ).map(lambda d: msgpack.packb(d, use_bin_type=True)),
        ).map(list),
    )
)
def test_random_input_raises_only_protocol_error(frames: list[bytes]) -> None:
    try:
        received = decode_beacon(frames)
    except ProtocolError:
        return
    assert isinstance(received, Beacon)
    assert len(received.key) == 40
