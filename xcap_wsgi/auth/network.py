"""Where a request comes from: the client address behind trusted proxies, and whether it used TLS.

::

    proxies = Networks(["10.0.0.1", "192.168.0.0/24"])
    address = client_address(environ, proxies)         # "203.0.113.7"
    Networks(["10.1.2.0/24"]).contains(address)        # a trusted peer?

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when ``REMOTE_ADDR`` is a
configured proxy; from anyone else they are client-controlled text and ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks:
    """A list of CIDR blocks (a bare address is a /32 or /128). Raises ValueError."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                self.networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or CIDR block: {cidr!r}") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, address: str) -> bool:
        """True when ``address`` (IPv4, IPv6, IPv4-mapped IPv6) lies in one of the blocks."""
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)


def _as_networks(trusted_proxies: Networks | Sequence[str]) -> Networks:
    return trusted_proxies if isinstance(trusted_proxies, Networks) else Networks(trusted_proxies)


def _strip_port(hop: str) -> str:
    """``1.2.3.4:5678`` → ``1.2.3.4``; ``[::1]:80`` → ``::1``; a bare IPv6 stays whole."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1: hop.find("]")] if "]" in hop else hop
    return hop.rsplit(":", 1)[0] if hop.count(":") == 1 else hop


def client_address(environ: dict[str, Any], trusted_proxies: Networks | Sequence[str]) -> str:
    """``REMOTE_ADDR``, or ``X-Forwarded-For``'s right-most hop that is not a trusted proxy
    when ``REMOTE_ADDR`` is one (every proxy appends the address it received from, so only
    the hops our own proxies added can be believed)."""
    proxies = _as_networks(trusted_proxies)
    remote = str(environ.get("REMOTE_ADDR", ""))
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
    if not forwarded or not proxies.contains(remote):
        return remote
    hops = [_strip_port(h) for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not proxies.contains(hop):
            return hop
    return hops[0] if hops else remote


def is_https(environ: dict[str, Any], trusted_proxies: Networks | Sequence[str]) -> bool:
    """TLS to this server, or to a trusted proxy that says so in ``X-Forwarded-Proto``
    (the last value: the one our proxy set)."""
    if environ.get("wsgi.url_scheme") == "https":
        return True
    proto = str(environ.get("HTTP_X_FORWARDED_PROTO", ""))
    if not proto or not _as_networks(trusted_proxies).contains(str(environ.get("REMOTE_ADDR", ""))):
        return False
    return proto.split(",")[-1].strip().lower() == "https"
