"""Checks on user-supplied URLs that the server will fetch (provider base URLs, webhooks).

HTTPS only (plain HTTP when TOLLGATE_EGRESS_ALLOW_HTTP), and every address the host resolves to
must be public: loopback, private, link-local (cloud metadata), multicast, reserved and mapped
forms are refused, unless the host is in TOLLGATE_EGRESS_ALLOW_HOSTS.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None:
            return is_public_address(str(mapped))
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_private)


def check_url(url: str, *, field: str, resolve: bool = True) -> list[str]:
    """Raise ApplicationError(field) for an unsafe URL; returns the checked addresses."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ApplicationError(_("This is not a valid URL."), field=field) from exc
    allowed_schemes = ("https", "http") if settings.TOLLGATE_EGRESS_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed_schemes:
        raise ApplicationError(_("The URL must start with %(schemes)s.") % {"schemes": " or ".join(f"{s}://" for s in allowed_schemes)}, field=field)
    if not host or parts.username or parts.password:
        raise ApplicationError(_("The URL needs a host name and no user name or password."), field=field)
    if host.lower() in {h.lower() for h in settings.TOLLGATE_EGRESS_ALLOW_HOSTS}:
        return []
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ApplicationError(_("The host name does not resolve."), field=field) from exc
    addresses = sorted({info[4][0] for info in infos})
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise ApplicationError(_("The URL points to a private, loopback or otherwise non-public address."), field=field)
    return addresses
