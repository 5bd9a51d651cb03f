"""One typed struct per message type: its header fields, checked once (docs/architecture.md §3).

Every message type has a frozen dataclass here naming each header field it
may carry, with its type; a field without a default is required.  The codec
builds a message's body when it decodes the frames
(:func:`~gridlib.protocol.codec.decode`), so a handler reads
``msg.body.job_id`` as a ``str`` it never re-checks; a message passed between
objects in one process (the embedded scheduler and its client) builds its
body on first use, by the same rules.  A missing required field, a field of
the wrong type or an unknown message type is a :class:`ProtocolError` naming
the message and the field.  Fields a struct does not name are ignored (a
newer peer may send more) and stay readable in ``msg.fields``.

Types accepted: ``str``, ``int`` (not ``bool``), ``float`` (an ``int`` too),
``bool``, ``bytes``, ``dict``, ``list``, ``list[str]``, ``list[int]``,
``Any``, and any of them ``| None`` (absent and nil are the same).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import ProtocolError

__all__ = ["Body", "BODIES", "body_of", "MESSAGE_TYPES", "FIELD_TYPES"]

B = TypeVar("B", bound="Body")

#: message type -> its struct
BODIES: dict[str, type[Body]] = {}
#: message type -> {field: (python types accepted, required)}: for tools and tests
FIELD_TYPES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {}

_Check = Callable[[Any], bool]
_MISSING = dataclasses.MISSING


class Body:
    """Base of the message structs; ``parse`` builds one from a decoded header."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[B], header: dict[str, Any]) -> B:
        """Build the struct from a decoded header (compiled per type at import)."""
        raise NotImplementedError  # replaced by :func:`message`


def _is(kind: type) -> _Check:
    if kind is int:
        return lambda v: type(v) is int or (isinstance(v, int) and not isinstance(v, bool))
    if kind is float:
        return lambda v: type(v) is float or (isinstance(v, (int, float)) and not isinstance(v, bool))
    return lambda v: isinstance(v, kind)


def _list_of(kind: type) -> _Check:
    item = _is(kind)
    return lambda v: isinstance(v, list) and all(item(x) for x in v)


def _python_types(hint: Any) -> tuple[type, ...]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    origin = typing.get_origin(hint) or hint
    return {Any: (object,), float: (int, float)}.get(origin, (origin,))


def _checker(hint: Any) -> tuple[_Check, str]:
    """A value test and a description for one annotation (``X | None`` is X's)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if len(args) != 1:
            raise TypeError(f"unsupported annotation {hint!r}")
        hint = args[0]
    if hint is Any:
        return (lambda v: True), "any value"
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if item is Any:
            return _is(list), "a list"
        return _list_of(item), f"a list of {item.__name__}"
    if origin is dict:
        return _is(dict), "a map"
    if hint in (str, int, float, bool, bytes, list, dict):
        return _is(hint), {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
                           bytes: "bytes", list: "a list", dict: "a map"}[hint]
    raise TypeError(f"unsupported annotation {hint!r}")


# the common checks written inline in the generated parser (the rest call their function)
_INLINE = {
    "a string": "isinstance({v}, str)",
    "an integer": "(type({v}) is int or (isinstance({v}, int) and not isinstance({v}, bool)))",
    "a number": "(type({v}) in (float, int) or (isinstance({v}, (int, float)) "
                "and not isinstance({v}, bool)))",
    "a boolean": "isinstance({v}, bool)",
    "a map": "isinstance({v}, dict)",
    "a list": "isinstance({v}, list)",
    "any value": "True",
}


def _compile(cls: type[B], specs: list[tuple[str, _Check, str, bool, Any]]) -> Any:
    """``cls.parse``, generated: one straight-line check per field (about 1 µs for ten)."""
    env: dict[str, Any] = {"cls": cls, "ProtocolError": ProtocolError}
    lines = ["def parse(klass, header):", "    get = header.get"]
    for i, (name, check, kind, required, default) in enumerate(specs):
        env[f"check{i}"], env[f"default{i}"] = check, default
        lines += [f"    v{i} = get({name!r})", f"    if v{i} is None:"]
        if required:
            lines.append(f"        raise ProtocolError({f'{cls.TYPE}: missing field {name!r}'!r})")
        else:
            lines.append(f"        v{i} = default{i}")
        test = _INLINE.get(kind, "check{i}({v})").format(v=f"v{i}", i=i)
        lines += [f"    elif not {test}:",
                  f"        raise ProtocolError({f'{cls.TYPE}: field {name!r} must be {kind}'!r})"]
    keyword = {f.name for f in dataclasses.fields(cls) if f.kw_only}  # type: ignore[arg-type]
    args = [f"{spec[0]}=v{i}" if spec[0] in keyword else f"v{i}" for i, spec in enumerate(specs)]
    args.sort(key=lambda a: "=" in a)  # positional first, in field order
    lines.append(f"    return cls({', '.join(args)})")
    exec("\n".join(lines), env)  # noqa: S102 -- source built above from our own annotations
    return classmethod(env["parse"])


def message(mtype: str) -> Callable[[type[B]], type[B]]:
    """Register a struct as ``mtype``'s body (after ``@dataclass``)."""

    def register(cls: type[B]) -> type[B]:
        hints = typing.get_type_hints(cls)
        specs = []
        described: dict[str, tuple[tuple[type, ...], bool]] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            check, kind = _checker(hints[f.name])
            required = f.default is _MISSING and f.default_factory is _MISSING
            specs.append((f.name, check, kind, required, None if required else f.default))
            described[f.name] = (_python_types(hints[f.name]), required)
        FIELD_TYPES[mtype] = described
        cls.TYPE = mtype
        cls.parse = _compile(cls, specs)  # type: ignore[method-assign]
        BODIES[mtype] = cls
        return cls

    return register


def body_of(mtype: str, header: dict[str, Any]) -> Body:
    """The struct for a decoded header (raises :class:`ProtocolError`)."""
    cls = BODIES.get(mtype)
    if cls is None:
        raise ProtocolError(f"unknown message type {mtype!r}")
    return cls.parse(header)




# -- replies -------------------------------------------------------------------------------------
@message("OK")
@dataclass(frozen=True, slots=True)
class Ok(Body):
    """A request went through; what it answers depends on the request."""

    cluster_id: str | None = None  # CLUSTER_OPEN
    targets: int | None = None  # DISCOVER: how many addresses were announced to
    name: str | None = None  # FILE_PUT on a node: the file written
    size: int | None = None  # ... and its size
    cpus: int | None = None  # NODE_CONTROL: the CPUs the cluster now uses there
    state: str | None = None  # NODE_CONTROL: the node's state for the cluster


@message("ERROR")
@dataclass(frozen=True, slots=True)
class Error(Body):
    code: int
    reason: str


# -- client <-> scheduler ------------------------------------------------------------------------
@message("HELLO")
@dataclass(frozen=True, slots=True)
class Hello(Body):
    name: str
    batches: bool | None = None  # the client reads JOBS_RESULT


@message("WELCOME")
@dataclass(frozen=True, slots=True)
class Welcome(Body):
    sid: str
    heartbeat: float
    lost_after: int | None = None
    suspect_after: int | None = None
    max_msg_size: int | None = None
    nodes: list[Any] | None = None
    batches: bool | None = None  # (to a node) the scheduler reads JOBS_RESULT
    lookahead: bool | None = None  # (to a node) the scheduler grants jobs ahead (LOOKAHEAD)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterOptions(Body):
    """A cluster's options: what CLUSTER_OPEN carries, and SETUP passes on to each node."""

    files: list[Any] | None = None
    setup_args: list[Any] | None = None
    dest_path: str | None = None
    cleanup: bool | None = None
    exclusive: bool | None = None
    reentrant: bool | None = None
    recover: bool | None = None
    max_attempts: int | None = None
    node_wait: float | None = None
    python: str | None = None
    protocol: str | None = None


@message("CLUSTER_OPEN")
@dataclass(frozen=True, slots=True)
class ClusterOpen(ClusterOptions):
    cluster_id: str
    kind: str


@message("CLUSTER_CLOSE")
@dataclass(frozen=True, slots=True)
class ClusterClose(Body):
    cluster_id: str


@message("JOB_SUBMIT")
@dataclass(frozen=True, slots=True)
class JobSubmit(Body):
    cluster_id: str
    jobs: list[Any]


@message("JOB_EVENT")
@dataclass(frozen=True, slots=True)
class JobEvent(Body):
    job_id: str
    event: str  # "running" | "provisional"
    start_time: float | None = None
    node: str | None = None
    ip_addr: str | None = None


@message("JOB_RESULT")
@dataclass(frozen=True, slots=True)
class JobResult(Body):
    job_id: str
    status: str
    attempt: int | None = None
    cluster_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    node: str | None = None
    ip_addr: str | None = None
    attempts: int | None = None
    exception: dict[str, Any] | None = None
    reason: str | None = None


@message("JOBS_RESULT")
@dataclass(frozen=True, slots=True)
class JobsResult(Body):
    """Several JOB_RESULTs from one node in one message: each entry is ``[JOB_RESULT fields,
    number of frames]``, the frames (and their labels) in the same order
    (:mod:`gridlib.protocol.result_batches`)."""

    results: list[Any]


@message("RESULT_ACK")
@dataclass(frozen=True, slots=True)
class ResultAck(Body):
    job_ids: list[str]


@message("JOB_CANCEL")
@dataclass(frozen=True, slots=True)
class JobCancel(Body):
    job_ids: list[str]
    attempts: list[int] | None = None  # scheduler -> node: each job's attempt, in order
    terminate: bool | None = None


@message("JOB_FILE")
@dataclass(frozen=True, slots=True)
class JobFile(Body):
    job_id: str
    path: str
    attempt: int | None = None
    node: str | None = None


@message("STATUS")
@dataclass(frozen=True, slots=True)
class Status(Body):
    """A request (no field) or its answer (the scheduler's snapshot)."""

    nodes: list[Any] | None = None
    clusters: list[Any] | None = None
    others: dict[str, Any] | None = None
    policy: str | None = None


@message("NODE_EVENT")
@dataclass(frozen=True, slots=True)
class NodeEvent(Body):
    event: str
    node: dict[str, Any]
    cluster_id: str | None = None
    reason: str | None = None


@message("CLUSTER_EVENT")
@dataclass(frozen=True, slots=True)
class ClusterEvent(Body):
    cluster_id: str
    event: str
    waited: float | None = None
    queued: int | None = None
    nodes: int | None = None
    rejected: int | None = None
    reason: str | None = None


@message("NODE_ALLOCATE")
@dataclass(frozen=True, slots=True)
class NodeAllocate(Body):
    cluster_id: str
    node_id: str
    cpus: int
    files: list[Any] | None = None
    setup_args: list[Any] | None = None


@message("NODE_CONTROL")
@dataclass(frozen=True, slots=True)
class NodeControl(Body):
    cluster_id: str
    node: str
    op: str
    cpus: int | None = None
    terminate: bool | None = None


@message("FILE_PUT")
@dataclass(frozen=True, slots=True)
class FilePut(Body):
    cluster_id: str
    name: str
    mode: int | None = None
    node: str | None = None  # client -> scheduler: which node


@message("DISCOVER")
@dataclass(frozen=True, slots=True)
class Discover(Body):
    nodes: list[Any]
    port: int | None = None


# -- node <-> scheduler --------------------------------------------------------------------------
@message("READY")
@dataclass(frozen=True, slots=True)
class Ready(Body):
    node_id: str
    name: str
    cpus: int
    ip_addr: str | None = None
    port: int | None = None
    pid: int | None = None
    platform: str | None = None
    python: str | None = None
    protocol: str | None = None
    max_msg_size: int | None = None
    session: str | None = None
    spooled: int | None = None
    batches: bool | None = None  # the node reads JOBS_ASSIGN


@message("SETUP")
@dataclass(frozen=True, slots=True)
class Setup(ClusterOptions):
    """CLUSTER_OPEN's options, and the CPUs of the node the cluster may use."""

    cluster_id: str
    kind: str
    cpus: int | None = None


@message("SETUP_OK")
@dataclass(frozen=True, slots=True)
class SetupOk(Body):
    cluster_id: str
    running: list[Any] | None = None  # [job_id, attempt] of jobs it still runs
    results: list[Any] | None = None  # ... whose results it holds
    dropped: list[Any] | None = None  # ... it dropped unstarted (fenced after a freeze)


@message("SETUP_FAIL")
@dataclass(frozen=True, slots=True)
class SetupFail(Body):
    cluster_id: str
    reason: str


@message("TEARDOWN")
@dataclass(frozen=True, slots=True)
class Teardown(Body):
    cluster_id: str
    keep_files: bool | None = None
    terminate: bool | None = None


@message("JOB_ASSIGN")
@dataclass(frozen=True, slots=True)
class JobAssign(Body):
    cluster_id: str
    job_id: str
    attempt: int
    timeout: float | None = None
    label: str | None = None  # the job's id as its user knows it (GRID_JOB_ID)


@message("JOBS_ASSIGN")
@dataclass(frozen=True, slots=True)
class JobsAssign(Body):
    """Several JOB_ASSIGNs to one node in one message: each entry is ``[cluster_id, job_id,
    attempt, timeout or nil, number of payload frames, label or nil]``, the frames in the
    same order (an entry of 5 has no label)."""

    jobs: list[Any]


@message("JOB_STARTED")
@dataclass(frozen=True, slots=True)
class JobStarted(Body):
    job_id: str
    attempt: int
    start_time: float | None = None


@message("JOB_PROVISIONAL")
@dataclass(frozen=True, slots=True)
class JobProvisional(Body):
    job_id: str
    attempt: int


@message("LOOKAHEAD")
@dataclass(frozen=True, slots=True)
class Lookahead(Body):
    """(node -> scheduler) May each worker of the cluster hold ``depth`` jobs behind the one it
    runs?  Granted (``LOOKAHEAD_OK``), the scheduler counts them as jobs that may have started
    when it settles the jobs of this node if it is lost."""

    cluster_id: str
    depth: int


@message("LOOKAHEAD_OK")
@dataclass(frozen=True, slots=True)
class LookaheadOk(Body):
    cluster_id: str
    depth: int


@message("NODE_ALERT")
@dataclass(frozen=True, slots=True)
class NodeAlert(Body):
    reason: str


@message("HEARTBEAT")
@dataclass(frozen=True, slots=True)
class Heartbeat(Body):
    avail: dict[str, Any] | None = None


@message("DISCONNECT")
@dataclass(frozen=True, slots=True)
class Disconnect(Body):
    reason: str | None = None


MESSAGE_TYPES = frozenset(BODIES)
