"""Node address patterns: host names, IPs, ``host:port``, ``a.b.c.*`` and CIDR."""

from __future__ import annotations

import ipaddress

__all__ = ["MAX_TARGETS", "expand_targets", "split_host_port"]

MAX_TARGETS = 1024  # a /22: wider patterns are refused with a clear error


def split_host_port(spec: str, default_port: int) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or a bare IPv6 -> (host, port)."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty node address")
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if spec.count(":") == 1:
        host, port = spec.split(":")
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"bad port in node address {spec!r}")
        return host, int(port)
    return spec, default_port


def expand_targets(specs: list[str], default_port: int) -> list[tuple[str, int]]:
    """Every (host, port) the patterns name, in order, without duplicates."""
    out: dict[tuple[str, int], None] = {}
    for spec in specs:
        if "/" in spec:  # CIDR, optionally with ":port" after the prefix length
            net_part, sep, port_part = spec.partition(":") if spec.count(":") == 1 else (spec, "", "")
            host, port = net_part, default_port
            if sep:
                if not (port_part.isascii() and port_part.isdigit() and 0 < int(port_part) < 65536):
                    raise ValueError(f"bad port in node address {spec!r}")
                port = int(port_part)
        else:
            host, port = split_host_port(spec, default_port)
        if "*" in host:
            parts = host.split(".")
            if len(parts) != 4 or parts[-1] != "*" or "*" in "".join(parts[:3]):
                raise ValueError(f"wildcard {spec!r}: only the last part may be '*' (a.b.c.*)")
            host = ".".join(parts[:3]) + ".0/24"
        if "/" in host:
            try:
                net = ipaddress.ip_network(host, strict=False)
            except ValueError as exc:
                raise ValueError(f"bad network {spec!r}: {exc}") from None
            if net.num_addresses > MAX_TARGETS:
                raise ValueError(
                    f"network {spec!r} has {net.num_addresses} addresses; "
                    f"the widest allowed is /22 ({MAX_TARGETS})"
                )
            hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
            for ip in hosts:
                out[(str(ip), port)] = None
        else:
            out[(host, port)] = None
        if len(out) > MAX_TARGETS:
            raise ValueError(f"more than {MAX_TARGETS} node addresses in total")
    return list(out)
