"""Which addresses a server-side connection may reach: one rule for the control plane's egress client
(keys/egress.py) and the relay's upstream connector (relay/egress.py). Django-free on purpose.

Public addresses only: loopback, private, link-local (cloud metadata), multicast, reserved and the
IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo) are refused, unless the host name is
allow-listed (TOLLGATE_EGRESS_ALLOW_HOSTS; compared case-insensitively, a trailing dot ignored).
"""

import ipaddress
from collections.abc import Iterable


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None:
            return is_public_address(str(mapped))
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_private)


def allow_listed(host: str, allow_hosts: Iterable[str]) -> bool:
    name = host.rstrip(".").lower()
    return any(name == allowed.rstrip(".").lower() for allowed in allow_hosts)


def reachable(host: str, addresses: Iterable[str], allow_hosts: Iterable[str]) -> bool:
    """May a connection to `host`, which resolved to `addresses`, go ahead? Every address must pass."""
    if allow_listed(host, allow_hosts):
        return True
    addresses = list(addresses)
    return bool(addresses) and all(is_public_address(address) for address in addresses)
