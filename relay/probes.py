"""What an operator's tooling calls: `/healthz` (the process answers), `/readyz` (it can serve /v1,
and the state of each dependency) and `/metrics` (Prometheus).

Readiness follows the README's fail-open table rather than the dependencies alone: the relay keeps
serving with Redis down (per-process counters, spooled usage) and with PostgreSQL down for every key
it holds a snapshot of, so neither makes this process unready; taking every pod out of the balancer
because a shared dependency is away would turn a degraded service into an outage. What makes a
process unready is its own state: not started yet, shutting down, or PostgreSQL down with no
snapshot to serve from. The body names each dependency's state either way.
"""

import asyncio
import hmac
import time

import orjson
from django.conf import settings
from django.db import connection

from relay import metrics
from relay.db import run_db
from wire import redis_keys
from wire.errors import NotFound, RelayError

CHECK_TIMEOUT = 1.0
PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check(probe, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; its class says why
        reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else exc.__class__.__name__
        return {"status": "down", "error": reason}
    return {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}


async def readiness(rt, timeout: float = CHECK_TIMEOUT) -> tuple[int, dict]:
    """(HTTP status, body) of the readiness probe; the checks run side by side, each within `timeout`."""
    probes = {"postgresql": lambda: run_db(_database_ping)}
    if rt.redis is not None:
        # In production the Celery broker is this same Redis (config/settings.py), so one PING covers both.
        probes["redis"] = rt.redis.ping
    results = await asyncio.gather(*(_check(probe, timeout) for probe in probes.values()))
    checks = dict(zip(probes, results))
    if "redis" not in checks:
        checks["redis"] = {"status": "not configured"}
    reasons = []
    if not rt.serving:
        reasons.append("starting" if not rt.started else "shutting down")
    elif checks["postgresql"]["status"] != "ok" and not rt.cache.holds_snapshots():
        reasons.append("PostgreSQL is down and no key is cached yet")
    body = {"status": "ready" if not reasons else "unready", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    elif any(check["status"] == "down" for check in checks.values()):
        body["status"] = "degraded"  # serving, fail-open (README: what fails open and what fails closed)
    return (200 if not reasons else 503), body


async def handle(rt, conn, path: str) -> None:
    try:
        if path == "/metrics":
            return await _metrics(rt, conn)
        if path == "/healthz":
            status, body = 200, {"status": "ok"}
        else:
            status, body = await readiness(rt)
        await conn.respond(status, orjson.dumps(body), [(b"content-type", b"application/json"), (b"cache-control", b"no-store")])
    except RelayError as error:
        await conn.respond_error(error)


def may_scrape(conn) -> bool:
    """With a token set, only a request bearing it; without one, loopback clients in DEBUG only (a
    production deployment behind a local proxy would otherwise publish its metrics)."""
    token = settings.TOLLGATE_METRICS_TOKEN
    if token:
        presented = (conn.header(b"authorization") or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(presented.encode(), token.encode())
    return settings.DEBUG and (conn.scope.get("client") or ("",))[0] in LOOPBACK


async def _metrics(rt, conn) -> None:
    if not may_scrape(conn):
        raise NotFound("Unknown endpoint GET /metrics.")  # as if absent: nothing to learn without the token
    rt.metrics.flush()  # this process's latest records, so a scrape right after a request sees it
    families = [metrics.cooling_deployments(rt.cooldowns)]
    if rt.redis is not None:
        families.append(await metrics.stream_backlog(rt.redis, redis_keys.USAGE_STREAM, redis_keys.USAGE_GROUP))
    body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition, families)
    await conn.respond(200, body, [(b"content-type", metrics.CONTENT_TYPE), (b"cache-control", b"no-store")])
