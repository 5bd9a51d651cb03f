"""gridlib: a compute grid for Python on ZeroMQ (the public API: docs/api.md).

Names are imported lazily, so that ``gridlib.protocol`` and the scheduler
never pull in cloudpickle or the client machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "JobCluster": "gridlib.cluster",
    "recover_jobs": "gridlib.recovery",
    "SharedJobCluster": "gridlib.shared",
    "HTTPServer": "gridlib.httpd",
    "DispyHTTPServer": "gridlib.httpd",
    "GridExecutor": "gridlib.executor",
    "register_joblib": "gridlib.joblib_backend",
    "progress": "gridlib.progress_view",
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
    "provisional_result": "gridlib.daemons.runtime.jobctx",
    "send_file": "gridlib.daemons.runtime.jobctx",
    "job_context": "gridlib.daemons.runtime.jobctx",
    "JobContext": "gridlib.daemons.runtime.jobctx",
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
    "dispy_provisional_result": ("gridlib.daemons.runtime.jobctx", "provisional_result"),
    "dispy_send_file": ("gridlib.daemons.runtime.jobctx", "send_file"),
}

__all__ = sorted([*_EXPORTS, *_ALIASES, "logger"])

if TYPE_CHECKING:  # what a type checker sees: the real names (at run time they load lazily)
    from gridlib import logger as logger
    from gridlib.cluster import JobCluster as JobCluster
    from gridlib.daemons.runtime.jobctx import JobContext as JobContext
    from gridlib.daemons.runtime.jobctx import job_context as job_context
    from gridlib.daemons.runtime.jobctx import provisional_result as dispy_provisional_result  # noqa: F401
    from gridlib.daemons.runtime.jobctx import provisional_result as provisional_result
    from gridlib.daemons.runtime.jobctx import send_file as dispy_send_file  # noqa: F401
    from gridlib.daemons.runtime.jobctx import send_file as send_file
    from gridlib.executor import GridExecutor as GridExecutor
    from gridlib.httpd import DispyHTTPServer as DispyHTTPServer
    from gridlib.httpd import HTTPServer as HTTPServer
    from gridlib.job import DispyJob as DispyJob
    from gridlib.job import Job as Job
    from gridlib.job import JobStatus as JobStatus
    from gridlib.joblib_backend import register_joblib as register_joblib
    from gridlib.nodes import ClusterStatus as ClusterStatus
    from gridlib.nodes import DispyNode as DispyNode
    from gridlib.nodes import DispyNodeAvailInfo as DispyNodeAvailInfo
    from gridlib.nodes import Node as Node
    from gridlib.nodes import NodeAllocate as NodeAllocate
    from gridlib.nodes import NodeAvailInfo as NodeAvailInfo
    from gridlib.nodes import NodeStatus as NodeStatus
    from gridlib.progress_view import progress as progress
    from gridlib.protocol.errors import AuthenticationFailed as AuthenticationFailed
    from gridlib.protocol.errors import ConnectionLost as ConnectionLost
    from gridlib.protocol.errors import GridError as GridError
    from gridlib.protocol.errors import NoNodesError as NoNodesError
    from gridlib.protocol.errors import PayloadTooLarge as PayloadTooLarge
    from gridlib.protocol.errors import ProtocolVersionError as ProtocolVersionError
    from gridlib.protocol.errors import RemoteJobError as RemoteJobError
    from gridlib.protocol.errors import SerializationError as SerializationError
    from gridlib.recovery import recover_jobs as recover_jobs
    from gridlib.shared import SharedJobCluster as SharedJobCluster
else:  # at run time, names load on first use: gridlib.protocol never pulls in the client
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
