"""Checks on user-supplied URLs that the server will fetch (provider base URLs, webhooks).

HTTPS only (plain HTTP when TOLLGATE_EGRESS_ALLOW_HTTP), and every address the host resolves to
must be public: loopback, private, link-local (cloud metadata), multicast, reserved and mapped
forms are refused, unless the host is in TOLLGATE_EGRESS_ALLOW_HOSTS.

`check_url` runs at save time; `fetch`/`post_json` repeat the checks at connect time and are the
one client for server-side requests to such URLs (webhooks, bots, credential tests).
"""

import ipaddress
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httpx
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
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        # urlsplit silently drops tabs and line breaks, so the check would pass while the stored text keeps them.
        raise ApplicationError(_("This is not a valid URL."), field=field)
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


# --- The egress client -------------------------------------------------------------------------
# Every server-side request to a user-supplied URL goes through `fetch`/`post_json`: the host is
# resolved once, every address is checked, and the connection goes to a checked address (the URL
# is rewritten to the IP; Host header and TLS SNI/certificate check keep the original name), so a
# DNS answer that changes between check and connect (rebinding) cannot reach a private address.


class EgressRefused(ApplicationError):
    """The destination is not allowed (scheme, credentials in the URL, or a non-public address)."""

    def __init__(self, message: str, *, field: str | None = "url"):
        super().__init__(message, field=field, code="egress_refused", status=400)


class EgressFailed(ApplicationError):
    """The destination was allowed but the exchange failed (connect, TLS, timeout, protocol)."""

    def __init__(self, message: str):
        super().__init__(message, code="egress_failed", status=502)


@dataclass(frozen=True)
class EgressResponse:
    status_code: int
    body: bytes  # at most max_body bytes
    headers: dict  # lower-cased names


MAX_BODY = 2048


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # certifi roots, hostname check on


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise EgressRefused(_("The host name does not resolve.")) from exc
    return list(dict.fromkeys(info[4][0] for info in infos))  # resolver order, no duplicates


def _destination(url: str) -> tuple[httpx.URL, list[str]]:
    """The parsed URL and the addresses it may be connected to ([] = allow-listed: connect by name)."""
    try:
        check_url(url, field="url", resolve=False)  # scheme and user-info rules, shared with save time
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except ApplicationError as exc:
        raise EgressRefused(exc.message) from exc
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise EgressRefused(_("This is not a valid URL.")) from exc
    if not host:
        raise EgressRefused(_("The URL needs a host name and no user name or password."))
    if host.lower() in {h.lower() for h in settings.TOLLGATE_EGRESS_ALLOW_HOSTS}:
        return parsed, []
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise EgressRefused(_("The URL points to a private, loopback or otherwise non-public address."))
    return parsed, addresses


def _read_capped(response: httpx.Response, max_body: int, deadline: float) -> bytes:
    """Up to max_body bytes of the (decoded) body; decompression is bounded too."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None
    out = b""
    for chunk in response.iter_raw():
        if inflater is not None:
            chunk = inflater.decompress(chunk, max_body - len(out))
        out += chunk
        if len(out) >= max_body:
            break
        if time.monotonic() > deadline:
            raise EgressFailed(_("The destination was too slow to answer."))
    return out[:max_body]


def fetch(
    method: str, url: str, *, content: bytes = b"", headers: dict | None = None, timeout: float = 15, max_body: int = MAX_BODY
) -> EgressResponse:
    """One request to a user-supplied URL, pinned to checked addresses; redirects are returned, not followed.

    Raises EgressRefused for a forbidden destination, EgressFailed for a failed exchange (the
    messages never contain the URL, which may carry a token).
    """
    parsed, addresses = _destination(url)
    headers = {**(headers or {}), "Host": parsed.netloc.decode("ascii"), "Accept-Encoding": "identity"}
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with httpx.Client(
        verify=_ssl_context(), timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),  # a pooled connection is keyed by IP, not by name
    ) as client:
        for address in addresses or [None]:
            target = parsed if address is None else parsed.copy_with(host=address)
            extensions = {"sni_hostname": parsed.raw_host.decode("ascii")} if address and parsed.scheme == "https" else {}
            request = client.build_request(method, target, content=content, headers=headers, extensions=extensions)
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last_error = exc  # try the next checked address
                continue
            except httpx.TimeoutException as exc:
                raise EgressFailed(_("The destination did not answer in time.")) from exc
            except httpx.HTTPError as exc:
                raise EgressFailed(_("The request failed: %(error)s.") % {"error": exc.__class__.__name__}) from exc
            try:
                body = _read_capped(response, max_body, deadline)
            except httpx.HTTPError as exc:
                raise EgressFailed(_("Reading the answer failed: %(error)s.") % {"error": exc.__class__.__name__}) from exc
            finally:
                response.close()
            return EgressResponse(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})
    raise EgressFailed(_("Could not connect to the destination (%(error)s).") % {"error": _connect_reason(last_error)})


def _connect_reason(exc: Exception | None) -> str:
    text = str(exc or "")
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return "TLS certificate not valid for this host"
    return "connection refused or unreachable"


def post_json(url: str, payload: bytes, headers: dict, timeout: float = 15) -> tuple[int, bytes]:
    """POST a JSON body through the egress client; (status_code, first 2 KB of the body)."""
    response = fetch("POST", url, content=payload, headers={"Content-Type": "application/json", **headers}, timeout=timeout)
    return response.status_code, response.body
