"""The relay's upstream connections reach public addresses only, like the control plane's egress client.

Saving a base URL checks it once (keys/egress.py), but a provider host can later resolve elsewhere
(DNS rebinding: a name that answered a public address at save time answers 127.0.0.1 now) and
would then receive the provider key. So the aiohttp connector resolves through `CheckedResolver`:
every address of the answer must pass `wire.addresses.reachable` (the same rule), and aiohttp
connects only to the addresses the resolver returned, i.e. the checked ones. Answers (refusals
too) are kept per process for TOLLGATE_EGRESS_DNS_TTL seconds, so the hot path pays no lookup per
request; aiohttp's pooled connections are reused without resolving at all.

aiohttp does not ask a resolver about IP literals, so `check_literal` covers URLs with an IP host
(cached per host and allow-list, well under a microsecond per request).
"""

import asyncio
import ipaddress
import socket
import time
from functools import lru_cache
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from django.conf import settings

from wire.addresses import reachable
from wire.errors import UpstreamError

REFUSED_MESSAGE = (
    "The upstream host resolves to a private, loopback or otherwise non-public address, which the gateway "
    "does not connect to; an operator can allow the host with TOLLGATE_EGRESS_ALLOW_HOSTS."
)


class EgressRefused(OSError):
    """Raised by the resolver; aiohttp wraps it in ClientConnectorDNSError (`os_error`)."""


def refused_error() -> UpstreamError:
    return UpstreamError(REFUSED_MESSAGE, code="egress_refused", retryable=False)


class CheckedResolver(AbstractResolver):
    def __init__(self, ttl: float, resolver: AbstractResolver | None = None):
        self.ttl = ttl
        self._resolver = resolver or DefaultResolver()
        self._answers: dict[tuple, tuple[float, list | EgressRefused]] = {}
        self._pending: dict[tuple, asyncio.Future] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        key = (host, port, family)
        answer = self._answers.get(key)
        if answer is None or answer[0] <= time.monotonic():
            pending = self._pending.get(key)
            if pending is None:  # concurrent connections to one host share a single lookup
                pending = self._pending[key] = asyncio.ensure_future(self._lookup(key))
                pending.add_done_callback(lambda _: self._pending.pop(key, None))
            answer = await asyncio.shield(pending)
        if isinstance(answer[1], EgressRefused):
            raise EgressRefused(*answer[1].args)
        return answer[1]

    async def _lookup(self, key: tuple) -> tuple:
        host, port, family = key
        hosts = await self._resolver.resolve(host, port, family=family)  # a failed lookup is not kept
        if reachable(host, (entry["host"] for entry in hosts), settings.TOLLGATE_EGRESS_ALLOW_HOSTS):
            answer = (time.monotonic() + self.ttl, hosts)
        else:
            answer = (time.monotonic() + self.ttl, EgressRefused(REFUSED_MESSAGE))
        if len(self._answers) > 10_000:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def clear(self) -> None:
        self._answers.clear()

    async def close(self) -> None:
        await self._resolver.close()


def check_literal(url: str) -> None:
    """Refuse an upstream URL whose host is a non-public IP literal (names go through the resolver)."""
    netloc = url.partition("//")[2].partition("/")[0]
    if not _literal_allowed(netloc, tuple(settings.TOLLGATE_EGRESS_ALLOW_HOSTS)):
        raise refused_error()


@lru_cache(maxsize=1024)
def _literal_allowed(netloc: str, allow_hosts: tuple[str, ...]) -> bool:
    try:
        host = urlsplit("//" + netloc).hostname or ""
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True  # a name: the resolver checks it
    return reachable(host, [host], allow_hosts)
