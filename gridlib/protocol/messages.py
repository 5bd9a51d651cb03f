"""Message types and their required header fields (docs/architecture.md §3).

Each message type names the fields its header must carry and their types.
The codec rejects a message whose required fields are missing or of the
wrong type, so handlers can read them without re-checking.  Optional fields
are read with :func:`opt`, which also type-checks.
"""

from __future__ import annotations

from typing import Any, TypeVar

from .errors import ProtocolError

__all__ = ["SCHEMAS", "MESSAGE_TYPES", "opt", "req"]

T = TypeVar("T")

_ANY: tuple[type, ...] = (object,)
_NUM: tuple[type, ...] = (int, float)

#: type -> {field: accepted python types}; all listed fields are required.
SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    # replies
    "OK": {},
    "ERROR": {"code": (int,), "reason": (str,)},
    # client <-> scheduler
    "HELLO": {"name": (str,)},
    "WELCOME": {"sid": (str,), "heartbeat": _NUM},
    "CLUSTER_OPEN": {"cluster_id": (str,), "kind": (str,)},
    "CLUSTER_CLOSE": {"cluster_id": (str,)},
    "JOB_SUBMIT": {"cluster_id": (str,), "jobs": (list,)},
    "JOB_EVENT": {"job_id": (str,), "event": (str,)},
    "JOB_RESULT": {"job_id": (str,), "status": (str,)},
    "RESULT_ACK": {"job_ids": (list,)},
    "JOB_CANCEL": {"job_ids": (list,)},
    "JOB_FILE": {"job_id": (str,), "path": (str,)},
    "STATUS": {},
    "NODE_EVENT": {"event": (str,), "node": (dict,)},
    "CLUSTER_EVENT": {"cluster_id": (str,), "event": (str,)},
    "NODE_ALLOCATE": {"cluster_id": (str,), "node_id": (str,), "cpus": (int,)},
    "NODE_CONTROL": {"cluster_id": (str,), "node": (str,), "op": (str,)},
    "FILE_PUT": {"cluster_id": (str,), "name": (str,)},
    "DISCOVER": {"nodes": (list,)},
    # node <-> scheduler
    "READY": {"node_id": (str,), "name": (str,), "cpus": (int,)},
    "SETUP": {"cluster_id": (str,), "kind": (str,)},
    "SETUP_OK": {"cluster_id": (str,)},
    "SETUP_FAIL": {"cluster_id": (str,), "reason": (str,)},
    "TEARDOWN": {"cluster_id": (str,)},
    "JOB_ASSIGN": {"cluster_id": (str,), "job_id": (str,), "attempt": (int,)},
    "JOB_STARTED": {"job_id": (str,), "attempt": (int,)},
    "JOB_PROVISIONAL": {"job_id": (str,), "attempt": (int,)},
    "NODE_ALERT": {"reason": (str,)},
    "HEARTBEAT": {},
    "DISCONNECT": {},
}

MESSAGE_TYPES = frozenset(SCHEMAS)


def validate_fields(mtype: str, header: dict[str, Any]) -> None:
    """Raise :class:`ProtocolError` unless ``header`` carries ``mtype``'s fields."""
    schema = SCHEMAS.get(mtype)
    if schema is None:
        raise ProtocolError(f"unknown message type {mtype!r}")
    for name, types in schema.items():
        if name not in header:
            raise ProtocolError(f"{mtype}: missing field {name!r}")
        value = header[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{mtype}: field {name!r} has the wrong type")


def req(fields: dict[str, Any], name: str, kind: type[T]) -> T:
    """Read a required field of type ``kind`` from a decoded map."""
    value = fields.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"field {name!r} must be {kind.__name__}")
    return value


def opt(fields: dict[str, Any], name: str, kind: type[T] | tuple[type, ...], default: Any = None) -> Any:
    """Read an optional field; ``None`` or absent gives ``default``."""
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"field {name!r} has the wrong type")
    return value
