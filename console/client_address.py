"""Who is asking: the client's address, taken from a proxy's header only when we trust it.

Behind a reverse proxy every request comes from the proxy.  With
``ACCESSWATCH_CONSOLE_TRUSTED_PROXIES`` set, a request whose direct peer is one
of them is attributed to the rightmost address in ``X-Forwarded-For`` (or
``ACCESSWATCH_CONSOLE_CLIENT_IP_HEADER``) that is not a trusted proxy: the
hops to its left were written by the client and prove nothing.  Any other
peer's header is ignored.

>>> nets = parse_networks("10.0.0.0/8, 192.0.2.7")
>>> from_header("10.1.1.1", ["198.51.100.9, 203.0.113.5, 10.2.2.2"], nets)
'203.0.113.5'
>>> from_header("198.51.100.9", ["203.0.113.5"], nets)
'198.51.100.9'
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network

from aiohttp import web

Network = IPv4Network | IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
CLIENT_IP_HEADER = web.AppKey("client_ip_header", str)


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.0.2.7"``: addresses and CIDR blocks, comma-separated."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an address or CIDR block: {part!r}") from None
    return tuple(out)


def trust_proxies(app: web.Application, networks: tuple[Network, ...],
                  header: str = "X-Forwarded-For") -> None:
    """Take the client address from ``header`` on requests from ``networks``."""
    app[TRUSTED_PROXIES], app[CLIENT_IP_HEADER] = networks, header


def client_address(request: web.Request) -> str:
    peer = request.remote or "?"
    trusted = request.app.get(TRUSTED_PROXIES, ())
    if not trusted:
        return peer
    header = request.app.get(CLIENT_IP_HEADER, "X-Forwarded-For")
    return from_header(peer, request.headers.getall(header, []), trusted)


def from_header(peer: str, values: list[str], trusted: tuple[Network, ...]) -> str:
    if not _within(peer, trusted):
        return peer
    hops = [hop.strip() for value in values for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _address(hop) is None:
            return peer  # a proxy wrote something that is not an address: trust no further
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer  # every hop a proxy of ours: the first is the client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(text: str, trusted: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in net for net in trusted)
