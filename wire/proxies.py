"""Which address a request comes from, behind reverse proxies (Django-free: the relay uses it too).

`X-Forwarded-For` is believed only when the connection comes from a trusted proxy
(TOLLGATE_TRUSTED_PROXIES, CIDRs). Each proxy appends the address it saw, so the list is read from
the right: trusted proxies are skipped, and the first address that is not one is the client's.
Anything left of it was written by the client and is ignored. If every entry is a trusted proxy,
the left-most is the client (requests from inside the proxies' own networks).
"""

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; raises ValueError for a typo."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str:
    """The client's address: the peer, or from X-Forwarded-For when the peer is a trusted proxy."""
    if not peer:
        return "unknown"
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer
