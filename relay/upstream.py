"""The hot path's upstream client: one pooled aiohttp session per process.

Timeouts are split: connect, then `read_timeout` for the first byte and for every idle gap
between chunks (aiohttp's sock_read). Response bodies and single stream lines are capped.
"""

import asyncio
import time
from functools import lru_cache

import aiohttp
from django.conf import settings

from relay.egress import CheckedResolver, EgressRefused, check_literal, refused_error
from wire.adapters.base import Target, UpstreamRequest, UpstreamResponse
from wire.errors import UpstreamError, UpstreamTimeout

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024


def new_session() -> aiohttp.ClientSession:
    # Only checked addresses are connected to (relay/egress.py); the resolver keeps its own answers.
    resolver = CheckedResolver(ttl=settings.TOLLGATE_EGRESS_DNS_TTL)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, resolver=resolver, use_dns_cache=False, keepalive_timeout=60)
    # auto_decompress off: bodies are forwarded, never re-encoded (requests ask for identity encoding).
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, raise_for_status=False, trust_env=False)


# Sent explicitly so aiohttp has no automatic headers to compute per request.
FIXED_HEADERS = {"user-agent": "Tollgate", "accept-encoding": "identity"}


@lru_cache(maxsize=256)
def _timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=min(connect, read), sock_connect=connect, sock_read=read)


async def send(session: aiohttp.ClientSession, adapter, request: UpstreamRequest, target: Target, endpoint: str, *,
               deadline: float | None = None) -> UpstreamResponse:
    """Start the upstream call; returns the response once its headers arrived. An adapter with `local`
    answers in-process through its `local_call` hook (wire.adapters.base.LocalTransport), read alike."""
    if adapter.local:
        return await adapter.local_call(request, endpoint)
    read = target.read_timeout
    if deadline is not None:
        read = max(0.05, min(read, deadline - time.monotonic()))
    timeout = _timeout(target.connect_timeout, read if read < target.read_timeout else target.read_timeout)
    check_literal(request.url)
    try:
        return await session.request(
            request.method, request.url, data=request.body, headers={**FIXED_HEADERS, **request.headers}, timeout=timeout,
            allow_redirects=False,
        )
    except asyncio.TimeoutError as exc:
        raise UpstreamTimeout("The upstream did not answer in time.") from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, EgressRefused):
            raise refused_error() from None
        raise UpstreamError("Could not connect to the upstream.", code="upstream_connect_error") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("The upstream connection failed.", code="upstream_connect_error") from exc


async def read_body(response: UpstreamResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    try:
        body = bytearray()
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise UpstreamError("The upstream response is too large.", retryable=False)
        return bytes(body)
    except asyncio.TimeoutError as exc:
        raise UpstreamTimeout("The upstream stopped sending its answer.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("The upstream connection failed while reading.") from exc
    finally:
        response.release()


async def iter_body(response: UpstreamResponse, limit: int = MAX_RESPONSE_BYTES):
    """Yield raw chunks as they arrive (never buffered), enforcing the size cap."""
    total = 0
    completed = False
    try:
        async for chunk in response.content.iter_any():
            total += len(chunk)
            if total > limit:
                raise UpstreamError("The upstream stream is too large.", retryable=False)
            yield chunk
        completed = True
    except asyncio.TimeoutError as exc:
        raise UpstreamTimeout("The upstream stream went silent.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("The upstream connection broke mid-stream.") from exc
    finally:
        # A finished response returns its connection to the pool; an abandoned one is closed,
        # which is what cancels the generation upstream.
        response.release() if completed else response.close()
