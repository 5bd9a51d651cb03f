"""What a node tells schedulers about its host: its address toward them and its free resources."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import psutil

from gridlib.protocol.sockets import local_address_for, parse_endpoint

__all__ = ["address_toward", "available_resources"]


def address_toward(endpoint: str) -> str:
    """This host's address on the way to ``endpoint`` (what peers know us by)."""
    try:
        host = parse_endpoint(endpoint)[0]
        ipaddress.ip_address(host)  # never resolve names from a beacon in the loop
        return str(local_address_for(host))
    except (OSError, ValueError):
        return ""


def available_resources(prefix: Path) -> dict[str, float]:
    """Idle CPU %, free memory and disk (of ``prefix``) in bytes, swap used %; {} if unreadable."""
    try:
        return {
            "cpu": 100.0 - psutil.cpu_percent(None),
            "memory": float(psutil.virtual_memory().available),
            "disk": float(psutil.disk_usage(str(prefix)).free),
            "swap": float(psutil.swap_memory().percent),
        }
    except Exception:  # psutil may not read everything in a container
        return {}
