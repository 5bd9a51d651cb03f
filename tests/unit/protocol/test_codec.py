"""The envelope codec (docs/architecture.md §3): what a peer may send and what it gets refused with."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridlib.protocol.codec import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    SIGNATURE,
    Message,
    decode,
    encode,
    error_reply,
    new_message,
    reply,
    split_envelope,
)
from gridlib.protocol.errors import (
    BAD_REQUEST,
    TOO_LARGE,
    VERSION_MISMATCH,
    PayloadTooLarge,
    ProtocolError,
    ProtocolVersionError,
)
from gridlib.protocol.messages import SCHEMAS

MID = bytes(range(16))


def header(**fields: Any) -> dict[str, Any]:
    """A valid ``HEARTBEAT`` header with ``fields`` overriding its keys."""
    base: dict[str, Any] = {"v": 0, "t": "HEARTBEAT", "mid": MID, "ref": None, "frames": []}
    base.update(fields)
    return base


def wire(hdr: dict[str, Any], *payload: bytes) -> list[bytes]:
    return [SIGNATURE, msgpack.packb(hdr, use_bin_type=True), *payload]


def refused(frames: list[Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frames)
    return info.value


# -- round trip ----------------------------------------------------------------


def test_round_trip_keeps_type_fields_ids_and_payload_objects() -> None:
    args, oob = bytearray(b"pickled args"), memoryview(b"a large out-of-band buffer")
    msg = new_message(
        "JOB_SUBMIT",
        {"cluster_id": "c1", "jobs": [{"id": "j1", "n": 2, "priority": 3}]},
        frames=[args, oob],
        labels=["args", "oob"],
    )

    frames = encode(msg)

    assert frames[0] == SIGNATURE
    assert frames[2] is args and frames[3] is oob  # payload is never copied or parsed
    back = decode(frames)
    assert back.type == "JOB_SUBMIT"
    assert back.fields == {"cluster_id": "c1", "jobs": [{"id": "j1", "n": 2, "priority": 3}]}
    assert back.labels == ["args", "oob"]
    assert back.mid == msg.mid and len(back.mid) == 16
    assert back.ref is None
    assert back.frames[0] is args and back.frames[1] is oob


def test_round_trip_through_zmq_frames_as_a_router_receives_them() -> None:
    msg = new_message("JOB_RESULT", {"job_id": "j1", "status": "finished"}, [b"result"], ["result"])
    received = [zmq.Frame(bytes(f)) for f in encode(msg)]

    back = decode(received)

    assert back.type == "JOB_RESULT"
    assert back.fields == {"job_id": "j1", "status": "finished"}
    assert back.frames[0] is received[2]
    assert back.frames[0].bytes == b"result"


def test_reply_and_error_reply_refer_to_the_request() -> None:
    request = new_message("HELLO", {"name": "alice"})

    answer = decode(encode(reply(request, "WELCOME", {"sid": "s1", "heartbeat": 2.0})))
    error = decode(encode(error_reply(request, 404, "unknown cluster c9")))

    assert answer.ref == request.mid
    assert answer.fields == {"sid": "s1", "heartbeat": 2.0}
    assert error.type == "ERROR"
    assert error.ref == request.mid
    assert error.fields == {"code": 404, "reason": "unknown cluster c9"}
    assert error_reply(None, 400, "garbage").ref is None


def test_every_message_gets_a_distinct_id() -> None:
    ids = {new_message("HEARTBEAT").mid for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(mid) == 16 for mid in ids)


def test_unknown_header_keys_and_newer_minor_versions_are_accepted() -> None:
    msg = decode(wire(header(v=7, added_in_a_later_minor="hello")))

    assert msg.type == "HEARTBEAT"
    assert msg.get("added_in_a_later_minor") == "hello"


def test_encode_refuses_field_names_that_collide_with_the_envelope() -> None:
    with pytest.raises(ValueError, match="reserved"):
        encode(new_message("HELLO", {"name": "a", "mid": b"x" * 16}))


# -- payload frames and labels ---------------------------------------------------


def test_new_message_needs_one_label_per_frame() -> None:
    with pytest.raises(ValueError):
        new_message("JOB_SUBMIT", {"cluster_id": "c", "jobs": []}, [b"a", b"b"], ["args"])


@pytest.mark.parametrize(
    ("labels", "payload"),
    [
        (["args"], []),
        ([], [b"extra"]),
        (["args"], [b"a", b"b"]),
        ([1], [b"a"]),
        ("args", [b"a"]),
        (None, []),
    ],
    ids=["label-without-frame", "frame-without-label", "too-few-labels", "label-not-str",
         "labels-not-a-list", "labels-missing"],
)
def test_labels_must_match_the_payload_frames(labels: Any, payload: list[bytes]) -> None:
    hdr = header(frames=labels)
    if labels is None:
        del hdr["frames"]

    error = refused(wire(hdr, *payload))

    assert error.code == BAD_REQUEST


def test_at_most_1024_payload_frames() -> None:
    ok = decode(wire(header(frames=["d"] * MAX_FRAMES), *[b"x"] * MAX_FRAMES))
    assert len(ok.frames) == MAX_FRAMES

    error = refused(wire(header(frames=["d"] * (MAX_FRAMES + 1)), *[b"x"] * (MAX_FRAMES + 1)))
    assert isinstance(error, PayloadTooLarge)
    assert error.code == TOO_LARGE


def test_encode_refuses_more_than_1024_frames() -> None:
    msg = new_message("HEARTBEAT", frames=[b"x"] * (MAX_FRAMES + 1))

    with pytest.raises(PayloadTooLarge):
        encode(msg)


# -- signature and version --------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [b"", b"GRIP\x01", b"grid\x01", b"GRID", b"GRID\x01\x00", b"\x00" * 5, b"HTTP/1.1 GET"],
)
def test_bad_signature_is_a_protocol_error(signature: bytes) -> None:
    frames = wire(header())
    frames[0] = signature

    error = refused(frames)

    assert not isinstance(error, ProtocolVersionError)
    assert error.code == BAD_REQUEST


def test_signature_is_checked_before_the_header_is_parsed() -> None:
    error = refused([b"NOPE!", b"\xc1 not msgpack at all"])

    assert "signature" in error.reason


@pytest.mark.parametrize("major", [0, 2, 255])
def test_other_major_version_is_refused_with_426(major: int) -> None:
    frames = wire(header())
    frames[0] = b"GRID" + bytes([major])

    with pytest.raises(ProtocolVersionError) as info:
        decode(frames)

    assert info.value.code == VERSION_MISMATCH == 426
    assert str(major) in info.value.reason


@pytest.mark.parametrize("frames", [[], [SIGNATURE]], ids=["empty", "signature-only"])
def test_a_message_needs_signature_and_header(frames: list[bytes]) -> None:
    assert refused(frames).code == BAD_REQUEST


# -- header ---------------------------------------------------------------------


def test_header_larger_than_64_kib_is_refused_with_413() -> None:
    frames = wire(header(padding="x" * MAX_HEADER_BYTES))
    assert len(frames[1]) > MAX_HEADER_BYTES

    error = refused(frames)

    assert isinstance(error, PayloadTooLarge)
    assert error.code == TOO_LARGE == 413


def test_header_of_exactly_64_kib_is_accepted() -> None:
    hdr = header(padding="")
    overhead = len(msgpack.packb(hdr, use_bin_type=True))
    # the long str takes a 3-byte str16 length prefix where the empty one took 1 byte
    hdr["padding"] = "x" * (MAX_HEADER_BYTES - overhead - 2)
    frames = wire(hdr)
    assert len(frames[1]) == MAX_HEADER_BYTES

    assert decode(frames).type == "HEARTBEAT"


def test_encode_refuses_a_header_larger_than_64_kib() -> None:
    msg = new_message("HELLO", {"name": "n" * MAX_HEADER_BYTES})

    with pytest.raises(PayloadTooLarge):
        encode(msg)


@pytest.mark.parametrize(
    "raw",
    [
        msgpack.packb([1, 2, 3]),
        msgpack.packb("HEARTBEAT"),
        msgpack.packb(None),
        b"",
        b"\xc1",
        msgpack.packb({1: "int keys"}),
        msgpack.packb(header()) + b"trailing",
        msgpack.packb(header())[:-3],
    ],
    ids=["array", "str", "nil", "empty", "invalid-byte", "int-keys", "trailing-bytes", "truncated"],
)
def test_header_must_be_a_msgpack_map(raw: bytes) -> None:
    assert refused([SIGNATURE, raw]).code == BAD_REQUEST


@pytest.mark.parametrize("key", ["t", "v", "mid"])
def test_header_envelope_keys_are_required(key: str) -> None:
    hdr = header()
    del hdr[key]

    assert refused(wire(hdr)).code == BAD_REQUEST


@pytest.mark.parametrize(
    "changes",
    [
        {"mid": b"\x00" * 15},
        {"mid": b"\x00" * 17},
        {"mid": "0123456789abcdef"},
        {"mid": None},
        {"ref": b"short"},
        {"ref": "0123456789abcdef"},
        {"t": 7},
        {"t": None},
        {"v": "1"},
        {"v": None},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_header_envelope_keys_must_have_the_right_type(changes: dict[str, Any]) -> None:
    assert refused(wire(header(**changes))).code == BAD_REQUEST


def test_unknown_message_type_is_refused() -> None:
    error = refused(wire(header(t="LAUNCH_MISSILES")))

    assert error.code == BAD_REQUEST
    assert "LAUNCH_MISSILES" in error.reason


# -- required fields per message type ----------------------------------------------

_GOOD = {str: "x", int: 1, float: 1.5, list: [], dict: {}}
_WRONG = {str: 5, int: "1", float: "1.5", list: "x", dict: ["k"]}


def _good_value(types: tuple[type, ...]) -> Any:
    return _GOOD.get(types[0], "x")


def _valid_header(mtype: str) -> dict[str, Any]:
    return header(t=mtype, **{name: _good_value(types) for name, types in SCHEMAS[mtype].items()})


_FIELDS = [(mtype, name, types) for mtype, schema in SCHEMAS.items() for name, types in schema.items()]
_FIELD_IDS = [f"{mtype}.{name}" for mtype, name, _ in _FIELDS]


@pytest.mark.parametrize("mtype", sorted(SCHEMAS))
def test_every_message_type_with_its_required_fields_decodes(mtype: str) -> None:
    msg = decode(wire(_valid_header(mtype)))

    assert msg.type == mtype
    assert set(msg.fields) == set(SCHEMAS[mtype])


@pytest.mark.parametrize(("mtype", "name", "types"), _FIELDS, ids=_FIELD_IDS)
def test_missing_required_field_is_refused(mtype: str, name: str, types: tuple[type, ...]) -> None:
    hdr = _valid_header(mtype)
    del hdr[name]

    error = refused(wire(hdr))

    assert error.code == BAD_REQUEST
    assert name in error.reason


@pytest.mark.parametrize(("mtype", "name", "types"), _FIELDS, ids=_FIELD_IDS)
def test_mistyped_required_field_is_refused(mtype: str, name: str, types: tuple[type, ...]) -> None:
    hdr = _valid_header(mtype)
    hdr[name] = _WRONG[types[0]]

    error = refused(wire(hdr))

    assert error.code == BAD_REQUEST
    assert name in error.reason


@pytest.mark.parametrize(
    ("mtype", "name"),
    [(m, n) for m, n, types in _FIELDS if types[0] is int],
)
def test_a_bool_is_not_an_integer_field(mtype: str, name: str) -> None:
    hdr = _valid_header(mtype)
    hdr[name] = True

    assert refused(wire(hdr)).code == BAD_REQUEST


# -- route stacks -------------------------------------------------------------------


def test_split_envelope_of_a_direct_peer_and_of_a_peer_behind_a_relay() -> None:
    body = encode(new_message("HEARTBEAT"))

    direct_routes, direct_body = split_envelope([b"node-1", b"", *body])
    relayed_routes, relayed_body = split_envelope([b"relay-7", b"node-2", b"", *body])
    dealer_routes, dealer_body = split_envelope([b"", *body])

    assert direct_routes == (b"node-1",)
    assert relayed_routes == (b"relay-7", b"node-2")
    assert dealer_routes == ()
    assert direct_body == relayed_body == dealer_body == body
    assert decode(relayed_body).type == "HEARTBEAT"


def test_split_envelope_only_uses_the_first_empty_frame_as_delimiter() -> None:
    body = encode(new_message("JOB_RESULT", {"job_id": "j", "status": "finished"}, [b""], ["result"]))

    routes, rest = split_envelope([zmq.Frame(b"peer"), zmq.Frame(b""), *map(zmq.Frame, body)])

    assert routes == (b"peer",)
    assert all(isinstance(r, bytes) for r in routes)
    assert decode(rest).frames[0].bytes == b""  # an empty payload frame stays payload


@pytest.mark.parametrize(
    "frames",
    [[b"peer", SIGNATURE, b"header"], [], [b"peer"]],
    ids=["no-delimiter", "nothing", "route-only"],
)
def test_split_envelope_without_delimiter_is_a_protocol_error(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        split_envelope(frames)


# -- hostile input --------------------------------------------------------------------

_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=20)
)
_ANY_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=4,
)

_KEYS = sorted({"v", "t", "mid", "ref", "frames", "extra", *(n for m in SCHEMAS.values() for n in m)})
_VALUES = st.sampled_from([*_GOOD.values(), *_WRONG.values(), True, None, MID]) | _ANY_VALUE


@st.composite
def _near_messages(draw: st.DrawFn) -> list[bytes]:
    """A valid message with a few keys dropped or replaced: reaches every check in decode."""
    payload = draw(st.lists(st.binary(max_size=8), max_size=3))
    hdr = _valid_header(draw(st.sampled_from(sorted(SCHEMAS))))
    hdr["frames"] = ["data"] * len(payload)
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=3, unique=True)):
        if draw(st.booleans()):
            hdr.pop(key, None)
        else:
            hdr[key] = draw(_VALUES)
    signature = draw(st.sampled_from([SIGNATURE] * 6 + [b"GRID\x02", b"GRID", b"", SIGNATURE + b"\x00"]))
    return [signature, msgpack.packb(hdr, use_bin_type=True), *payload]


_HOSTILE_FRAMES = st.one_of(
    _near_messages(),
    st.lists(st.binary(max_size=64), max_size=6),
    st.tuples(st.just(SIGNATURE), st.binary(max_size=200)).map(list),
)


@settings(max_examples=3000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_HOSTILE_FRAMES)
def test_decode_of_arbitrary_frames_raises_only_protocol_error(frames: list[bytes]) -> None:
    try:
        msg = decode(frames)
    except ProtocolError as exc:
        assert exc.code in (BAD_REQUEST, TOO_LARGE, VERSION_MISMATCH)
    else:
        assert isinstance(msg, Message)
        assert msg.type in SCHEMAS
        assert len(msg.frames) == len(msg.labels)
