"""What a node checks before it runs a client's code: the client's Python and protocol versions.

Code and data travel pickled, and pickles of code are only good on the same
Python minor version; a node refuses a cluster whose client runs another
(docs/reliability.md §7), naming both versions.
"""

from __future__ import annotations

import sys

from gridlib.protocol.codec import MAJOR_VERSION, MINOR_VERSION

__all__ = ["VERSIONS"]

#: sent with every cluster (CLUSTER_OPEN, then SETUP): the node compares them with its own
VERSIONS = {
    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    "protocol": f"{MAJOR_VERSION}.{MINOR_VERSION}",
}
