"""Which destinations server-side requests may reach: pure rules on host names and addresses.

No Django, no network: shared by the control plane's egress client (keys.egress) and the relay's
upstream connector (relay.egress), which both resolve a host, check every address (`reachable`) and
connect only to a checked address. Save-time checks use `literal_address` and `is_local_name`,
which need no DNS, so a URL can be saved offline or under split DNS.
"""

import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that never reach a public address (RFC 6761 localhost, RFC 6762 mDNS, RFC 8375 home
# networks, ICANN's private-use .internal, e.g. metadata.google.internal).
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form hosts are compared in."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_allow_listed(host: str, allow_hosts) -> bool:
    """Whether `host` is one of TOLLGATE_EGRESS_ALLOW_HOSTS (case-insensitive, trailing dot ignored)."""
    name = normalize_host(host)
    return bool(name) and any(normalize_host(h) == name for h in allow_hosts if h)


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; mapped, 6to4 and Teredo forms are judged by what they wrap."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None:
            return is_public_address(str(mapped))
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_private)


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, in any form a resolver accepts (127.1, 0x7f.0.0.1, 2130706433)."""
    name = normalize_host(host).split("%", 1)[0]
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if name and all(c in "0123456789abcdefx." for c in name) and name[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))  # the libc parser, no lookup
        except OSError:
            return None
    return None


def is_local_name(host: str) -> bool:
    name = normalize_host(host)
    return name in LOCAL_NAMES or name.endswith(LOCAL_SUFFIXES)


def reachable(host: str, addresses: Iterable[str], allow_hosts: Iterable[str]) -> bool:
    """May a connection to `host`, which resolved to `addresses`, go ahead? Every address must pass."""
    if host_allow_listed(host, allow_hosts):
        return True
    addresses = list(addresses)
    return bool(addresses) and all(is_public_address(address) for address in addresses)
