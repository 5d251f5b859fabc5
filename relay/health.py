"""Probes for load balancers and Kubernetes: `/healthz` (the process answers) and `/readyz` (it can
serve /v1, and the state of each dependency).

Readiness follows the README's fail-open table rather than the dependencies alone: the relay keeps
serving with Redis down (per-process counters, spooled usage) and with PostgreSQL down for every key
it holds a snapshot of, so neither makes this process unready; taking every pod out of the balancer
because a shared dependency is away would turn a degraded service into an outage. What makes a
process unready is its own state: not started yet, shutting down, or PostgreSQL down with no
snapshot to serve from. The body names each dependency's state either way.
"""

import asyncio
import time

import orjson
from django.db import connection

from relay.db import run_db

CHECK_TIMEOUT = 1.0
PATHS = frozenset({"/healthz", "/readyz"})


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
    if path == "/healthz":
        status, body = 200, {"status": "ok"}
    else:
        status, body = await readiness(rt)
    await conn.respond(status, orjson.dumps(body), [(b"content-type", b"application/json"), (b"cache-control", b"no-store")])
