"""Each message's typed struct: built once by the codec, by the same rules in one process."""

from __future__ import annotations

import pytest

from gridlib.protocol.bodies import BODIES, FIELD_TYPES, JobAssign, JobCancel, JobResult, Welcome
from gridlib.protocol.codec import Message, decode, encode, new_message
from gridlib.protocol.errors import ProtocolError
from gridlib.protocol.messages import MESSAGE_TYPES, SCHEMAS


def test_every_message_type_has_a_struct_and_the_schemas_derive_from_them() -> None:
    assert set(BODIES) == set(MESSAGE_TYPES) == set(SCHEMAS) == set(FIELD_TYPES)
    assert SCHEMAS["JOB_ASSIGN"] == {"cluster_id": (str,), "job_id": (str,), "attempt": (int,)}
    assert FIELD_TYPES["JOB_ASSIGN"]["timeout"] == ((int, float), False)


def test_a_decoded_message_carries_its_struct_with_typed_fields() -> None:
    sent = new_message("JOB_ASSIGN", {"cluster_id": "c", "job_id": "j", "attempt": 2, "timeout": 1.5})
    got = decode(encode(sent))
    assert got.body == JobAssign("c", "j", 2, 1.5)
    assert got.as_(JobAssign) is got.body  # built once, in the codec
    assert got.as_(JobAssign).timeout == 1.5


def test_optional_fields_default_and_unknown_fields_stay_in_fields() -> None:
    got = decode(encode(new_message("JOB_RESULT", {"job_id": "j", "status": "finished",
                                                   "from_a_newer_peer": [1, 2]})))
    result = got.as_(JobResult)
    assert result.attempt is None and result.exception is None
    assert got.fields["from_a_newer_peer"] == [1, 2]


@pytest.mark.parametrize(("mtype", "fields", "complaint"), [
    ("JOB_ASSIGN", {"cluster_id": "c", "job_id": "j"}, "JOB_ASSIGN: missing field 'attempt'"),
    ("JOB_ASSIGN", {"cluster_id": "c", "job_id": "j", "attempt": True},
     "JOB_ASSIGN: field 'attempt' must be an integer"),
    ("JOB_ASSIGN", {"cluster_id": "c", "job_id": "j", "attempt": 1, "timeout": "soon"},
     "JOB_ASSIGN: field 'timeout' must be a number"),
    ("JOB_CANCEL", {"job_ids": ["a", 7]}, "JOB_CANCEL: field 'job_ids' must be a list of str"),
    ("JOB_CANCEL", {"job_ids": ["a"], "attempts": ["x"]},
     "JOB_CANCEL: field 'attempts' must be a list of int"),
    ("WELCOME", {"sid": "s", "heartbeat": 2.0, "max_msg_size": "big"},
     "WELCOME: field 'max_msg_size' must be an integer"),
    ("JOB_RESULT", {"job_id": "j", "status": "finished", "exception": "boom"},
     "JOB_RESULT: field 'exception' must be a map"),
])
def test_a_bad_field_is_refused_by_the_codec_naming_message_and_field(
        mtype: str, fields: dict[str, object], complaint: str) -> None:
    frames = encode(new_message(mtype, fields))
    with pytest.raises(ProtocolError) as caught:
        decode(frames)
    assert caught.value.reason == complaint


def test_a_message_passed_in_process_gets_its_struct_on_first_use_by_the_same_rules() -> None:
    msg = Message("WELCOME", {"sid": "s", "heartbeat": 2})
    assert msg.body is None
    assert msg.as_(Welcome).heartbeat == 2
    bad = Message("WELCOME", {"sid": "s", "heartbeat": "often"})
    with pytest.raises(ProtocolError, match="WELCOME: field 'heartbeat' must be a number"):
        bad.as_(Welcome)


def test_asking_for_another_type_s_struct_is_an_error() -> None:
    msg = Message("JOB_CANCEL", {"job_ids": ["a"]})
    assert msg.as_(JobCancel).job_ids == ["a"]
    with pytest.raises(ProtocolError, match="a JOB_CANCEL message is not JOB_ASSIGN"):
        msg.as_(JobAssign)


def test_an_unknown_message_type_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 'NOPE'"):
        Message("NOPE", {}).as_(JobAssign)
