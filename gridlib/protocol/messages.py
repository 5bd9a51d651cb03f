"""Reading header fields: the message types' required fields, and checked readers.

Each message type's fields and their types are its struct in :mod:`.bodies`;
the codec rejects a message whose fields are missing or of the wrong type.
:func:`req` and :func:`opt` check a field of a map that is not a message
header (a job spec inside ``JOB_SUBMIT``, a node's info).
"""

from __future__ import annotations

from typing import Any, TypeVar

from .bodies import FIELD_TYPES, MESSAGE_TYPES
from .errors import ProtocolError

__all__ = ["SCHEMAS", "MESSAGE_TYPES", "opt", "req"]

T = TypeVar("T")

#: type -> {required field: accepted python types}, derived from :mod:`.bodies`
SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    mtype: {name: kinds for name, (kinds, required) in described.items() if required}
    for mtype, described in FIELD_TYPES.items()
}


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
