"""The web monitor for your own clusters: ``gridlib.httpd.HTTPServer(cluster)`` (docs/monitor.md).

The server lives below the client (``gridlib.daemons.monitor``, shared with the
``gridlib scheduler --httpd`` daemon); this one also takes a ``JobCluster`` or
``SharedJobCluster`` of this process, seen through
:class:`~gridlib.monitor_cluster.ClusterSource`.
"""

from __future__ import annotations

from typing import Any

from gridlib.daemons.monitor import httpd as _server
from gridlib.daemons.monitor.httpd import MAX_BODY
from gridlib.daemons.monitor.source import MonitorSource
from gridlib.monitor_cluster import ClusterSource

__all__ = ["HTTPServer", "DispyHTTPServer", "MAX_BODY"]


class HTTPServer(_server.HTTPServer):
    """The monitor of clusters of this process (dispy's ``DispyHTTPServer``)."""

    def _source_for(self, cluster: Any) -> MonitorSource:
        if isinstance(cluster, MonitorSource):
            return cluster
        return ClusterSource(cluster, self.history, self.show_job_args)


DispyHTTPServer = HTTPServer
