"""gridlib: a compute grid for Python on ZeroMQ (the public API: docs/api.md).

Names are imported lazily, so that ``gridlib.protocol`` and the scheduler
never pull in cloudpickle or the client machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "JobCluster": "gridlib.cluster",
    "recover_jobs": "gridlib.recovery",
    "SharedJobCluster": "gridlib.shared",
    "HTTPServer": "gridlib.httpd",
    "DispyHTTPServer": "gridlib.httpd",
    "GridExecutor": "gridlib.executor",
    "register_joblib": "gridlib.joblib_backend",
    "Job": "gridlib.job",
    "DispyJob": "gridlib.job",
    "JobStatus": "gridlib.job",
    "Node": "gridlib.nodes",
    "DispyNode": "gridlib.nodes",
    "NodeStatus": "gridlib.nodes",
    "NodeAvailInfo": "gridlib.nodes",
    "DispyNodeAvailInfo": "gridlib.nodes",
    "NodeAllocate": "gridlib.nodes",
    "ClusterStatus": "gridlib.nodes",
    "provisional_result": "gridlib.jobctx",
    "send_file": "gridlib.jobctx",
    "job_context": "gridlib.jobctx",
    "JobContext": "gridlib.jobctx",
    "GridError": "gridlib.protocol.errors",
    "ConnectionLost": "gridlib.protocol.errors",
    "AuthenticationFailed": "gridlib.protocol.errors",
    "ProtocolVersionError": "gridlib.protocol.errors",
    "PayloadTooLarge": "gridlib.protocol.errors",
    "SerializationError": "gridlib.protocol.errors",
    "NoNodesError": "gridlib.protocol.errors",
    "RemoteJobError": "gridlib.protocol.errors",
}
_ALIASES = {
    "dispy_provisional_result": ("gridlib.jobctx", "provisional_result"),
    "dispy_send_file": ("gridlib.jobctx", "send_file"),
}

__all__ = sorted([*_EXPORTS, *_ALIASES, "logger"])


def __getattr__(name: str) -> Any:
    if name == "logger":  # dispy's module-level logger: gridlib.logger.DEBUG, .info(...)
        return importlib.import_module("gridlib.logger")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _ALIASES:
        module, attr = _ALIASES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'gridlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
