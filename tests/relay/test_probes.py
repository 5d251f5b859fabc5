"""The probes: /healthz answers while the process lives; /readyz reports each dependency and turns
unready only for what stops this process from serving (README: what fails open and what fails closed)."""

import asyncio

import httpx
import pytest
from django.db import OperationalError

from relay import probes as health
from relay.runtime import Runtime


def test_healthz_and_readyz_over_http(gateway, relay_server):
    from django.conf import settings

    alive = httpx.get(relay_server.url + "/healthz", timeout=5)
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert alive.headers["x-request-id"]

    ready = httpx.get(relay_server.url + "/readyz", timeout=5)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["postgresql"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == ("ok" if settings.REDIS_URL else "not configured")


def test_probes_need_no_key_and_do_not_reach_django(relay_server):
    # Django would answer an unknown path with its HTML 404; the relay answers JSON.
    response = httpx.get(relay_server.url + "/readyz", timeout=5)
    assert response.headers["content-type"] == "application/json"
    assert httpx.get(relay_server.url + "/healthzz", timeout=5).status_code == 404


class FakeCache:
    def __init__(self, holds):
        self.holds = holds

    def holds_snapshots(self):
        return self.holds


class FakeRuntime:
    def __init__(self, *, redis=None, started=True, serving=True, holds=False):
        self.redis, self.started, self.serving, self.cache = redis, started, serving, FakeCache(holds)


class DownRedis:
    async def ping(self):
        raise ConnectionError("refused")


class StalledRedis:
    async def ping(self):
        await asyncio.sleep(30)


@pytest.fixture
def database_down(monkeypatch):
    def ping():
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "_database_ping", ping)


def _readiness(rt, timeout=0.2):
    return asyncio.run(health.readiness(rt, timeout=timeout))


@pytest.mark.django_db(transaction=True)
def test_redis_down_is_degraded_but_ready():
    status, body = _readiness(FakeRuntime(redis=DownRedis()))
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["redis"] == {"status": "down", "error": "ConnectionError"}
    assert body["checks"]["postgresql"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_stalled_dependency_answers_within_the_timeout():
    status, body = _readiness(FakeRuntime(redis=StalledRedis()), timeout=0.2)
    assert status == 200 and body["checks"]["redis"] == {"status": "down", "error": "timeout"}


def test_postgresql_down_keeps_a_process_with_snapshots_ready(database_down):
    status, body = _readiness(FakeRuntime(holds=True))
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["postgresql"]["status"] == "down"


def test_postgresql_down_without_snapshots_is_unready(database_down):
    status, body = _readiness(FakeRuntime(holds=False))
    assert status == 503 and body["status"] == "unready"
    assert body["reasons"] == ["PostgreSQL is down and no key is cached yet"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("started", "reason"), [(False, "starting"), (True, "shutting down")])
def test_a_process_not_serving_is_unready(started, reason):
    status, body = _readiness(FakeRuntime(started=started, serving=False))
    assert status == 503 and body["reasons"] == [reason]


@pytest.mark.django_db(transaction=True)
def test_runtime_marks_itself_serving_and_stops_serving_at_shutdown():
    async def lifecycle():
        rt = Runtime()
        assert (rt.started, rt.serving) == (False, False)
        await rt.start()
        assert (rt.started, rt.serving) == (True, True)
        await rt.stop()
        return rt

    rt = asyncio.run(lifecycle())
    assert (rt.started, rt.serving) == (True, False)


def test_snapshot_cache_knows_whether_it_holds_keys():
    from relay.cache import SnapshotCache

    cache = SnapshotCache()
    assert not cache.holds_snapshots()
    cache._entries[("models", 1)] = (0, [("demo", 0)])
    assert not cache.holds_snapshots()  # a model list alone authenticates nobody
    cache._entries[("key", "hash")] = (0, object())
    assert cache.holds_snapshots()
