"""Checks on user-supplied URLs that the server will fetch (provider base URLs, webhooks).

HTTPS only (plain HTTP when TOLLGATE_EGRESS_ALLOW_HTTP), and every address the host resolves to
must be public: loopback, private, link-local (cloud metadata), multicast, reserved and mapped
forms are refused, unless the host is in TOLLGATE_EGRESS_ALLOW_HOSTS (wire.addresses has the rules).

`check_url` runs at save time and needs no network: scheme, syntax, and hosts that are non-public
without a lookup (an IP literal, localhost, .internal). Resolving is left to connect time: `fetch`/
`post_json` resolve, check every address and pin the connection, and are the one client for
server-side requests to such URLs (webhooks, bots, credential tests).
"""

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
from wire.addresses import host_allow_listed, is_local_name, is_public_address, literal_address

__all__ = ["EgressFailed", "EgressRefused", "EgressResponse", "check_url", "fetch", "is_public_address", "post_json"]


def _not_public(host: str, address: str | None = None) -> str:
    """The refusal of a non-public destination, naming the setting that would allow it."""
    if address and address != host:
        text = _("%(host)s resolves to %(address)s, a private, loopback or otherwise non-public address.") % {"host": host, "address": address}
    else:
        text = _("%(host)s is a private, loopback or otherwise non-public address.") % {"host": host}
    return text + " " + _("To reach an intranet host, the operator lists it in TOLLGATE_EGRESS_ALLOW_HOSTS.")


def check_url(url: str, *, field: str) -> None:
    """Raise ApplicationError(field) for a URL that is unsafe without looking anything up (save time)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        # urlsplit silently drops tabs and line breaks, so the check would pass while the stored text keeps them.
        raise ApplicationError(_("This is not a valid URL."), field=field)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port that is not a number or out of range
    except ValueError as exc:
        raise ApplicationError(_("This is not a valid URL."), field=field) from exc
    allowed_schemes = ("https", "http") if settings.TOLLGATE_EGRESS_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed_schemes:
        raise ApplicationError(_("The URL must start with %(schemes)s.") % {"schemes": " or ".join(f"{s}://" for s in allowed_schemes)}, field=field)
    if not host or parts.username or parts.password:
        raise ApplicationError(_("The URL needs a host name and no user name or password."), field=field)
    if host_allow_listed(host, settings.TOLLGATE_EGRESS_ALLOW_HOSTS):
        return
    address = literal_address(host)
    if (address is not None and not is_public_address(str(address))) or (address is None and is_local_name(host)):
        raise ApplicationError(_not_public(host, str(address) if address is not None else None), field=field)


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
        raise EgressFailed(_("The host name %(host)s does not resolve from this server.") % {"host": host}) from exc
    return list(dict.fromkeys(info[4][0] for info in infos))  # resolver order, no duplicates


def _destination(url: str) -> tuple[httpx.URL, list[str]]:
    """The parsed URL and the addresses it may be connected to ([] = allow-listed: connect by name)."""
    try:
        check_url(url, field="url")  # the save-time rules (scheme, user info, literal addresses) hold here too
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except ApplicationError as exc:
        raise EgressRefused(exc.message) from exc
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise EgressRefused(_("This is not a valid URL.")) from exc
    if not host:
        raise EgressRefused(_("The URL needs a host name and no user name or password."))
    if host_allow_listed(host, settings.TOLLGATE_EGRESS_ALLOW_HOSTS):
        return parsed, []
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    refused = next((a for a in addresses if not is_public_address(a)), None)
    if not addresses or refused is not None:
        raise EgressRefused(_not_public(host.strip("[]"), refused))
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
