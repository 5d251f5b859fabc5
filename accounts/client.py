"""The client's address on the Django side, behind trusted reverse proxies (TOLLGATE_TRUSTED_PROXIES):
the one helper for the login throttle, the audit log and anything else that needs it. The relay reads
the same rule from wire.proxies over its ASGI scope."""

import ipaddress

from django.conf import settings

from wire import proxies


def client_address(request) -> str:
    """The connection's address, or the one a trusted proxy reports; "unknown" without a request."""
    if request is None:
        return "unknown"
    networks = proxies.parse_networks(tuple(settings.TOLLGATE_TRUSTED_PROXIES))
    return proxies.client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"), networks)


def client_ip(request) -> str | None:
    """The client's address as the audit log stores it (an IP address), or None when there is none."""
    address = client_address(request).split("%", 1)[0]  # an IPv6 zone is not part of the address
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
