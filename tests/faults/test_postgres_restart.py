"""PostgreSQL restarted under the relay (README: fail-open table): cached keys keep working, a key
not cached yet gets 503 with Retry-After (never 401: it cannot be checked, so it is not called
invalid), and afterwards everything works again on fresh connections (relay.db drops broken ones).

This stops and starts the machine's PostgreSQL server (briefly: a few seconds), so it is marked
serial: `make test` runs it alone, after the parallel part.
"""

import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from django.db import connection

from billing import services as billing_services
from keys import services as key_services
from tests.faults.helpers import WebProcess, burst, chat, price_echo
from tests.gateway import wait_for
from tests.reconcile import reconcile

pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="restarts the PostgreSQL server the tests use"),
]


def _cluster() -> tuple[str, str]:
    """(version, port) of the local cluster serving the test database, or skip."""
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    clusters = sorted(p.name for p in Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if host not in ("127.0.0.1", "localhost", "::1") or len(clusters) != 1 or not shutil.which("pg_ctlcluster"):
        pytest.skip("the test database is not this machine's single pg_ctlcluster-managed server")
    return clusters[0], str(connection.settings_dict.get("PORT") or 5432)


def pg(version: str, action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True, timeout=60,
                   capture_output=True)


def pg_ready(port: str) -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", port], timeout=10, check=False).returncode == 0


def test_postgresql_restart(gateway, upstream, relay_server):
    version, port = _cluster()
    price_echo(gateway)
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="100", period="month")
    _, uncached = key_services.virtual_key_create(actor=gateway.ctx, name="not used before the restart")
    url, cached = gateway.base_url, gateway.secret
    cache = relay_server.relay.runtime.cache
    served = []

    def cached_now() -> bool:
        """Used, and so cached (a load that overlaps a configuration change is not kept: use it again)."""
        loads = cache.loads
        served.extend(burst([(url, cached, chat()), (url, cached, chat(stream=True))], concurrency=1))
        return cache.loads == loads

    wait_for(cached_now, timeout=10, interval=0.6)
    assert {o.status for o in served} == {200}
    cold = WebProcess()  # a web process that has served no key yet: nothing to serve from without PostgreSQL
    cold_ready = cold.url.removesuffix("/v1") + "/readyz"
    assert httpx.get(cold_ready, timeout=10).json()["status"] == "ready"

    connection.close()
    try:
        pg(version, "stop")  # a restart, with the probes below while the server is down
        try:
            probes = burst([
                (url, cached, chat()), (url, cached, chat(stream=True)),  # snapshot, leases and the stream: no SQL
                (url, uncached, chat()), (url, "tg-" + secrets.token_urlsafe(32), chat()),  # cannot be checked now
            ], concurrency=1)
            readiness_during = httpx.get(relay_server.url + "/readyz", timeout=10)
            cold_during = httpx.get(cold_ready, timeout=10)
        finally:
            pg(version, "start")
        wait_for(lambda: pg_ready(port), timeout=30)
        connection.close()
        # The cold process is taken out of the balancer while the database is away, and back in after.
        assert cold_during.status_code == 503, cold_during.text
        assert cold_during.json()["status"] == "unready" and cold_during.json()["checks"]["postgresql"]["status"] == "down"
        assert wait_for(lambda: httpx.get(cold_ready, timeout=10).status_code == 200, timeout=15)
    finally:
        cold.stop()

    # Still ready (it serves its cached keys), degraded, naming the database (README: fail-open table).
    assert readiness_during.status_code == 200, readiness_during.text
    assert readiness_during.json()["status"] == "degraded"
    assert readiness_during.json()["checks"]["postgresql"]["status"] == "down"
    assert wait_for(lambda: httpx.get(relay_server.url + "/readyz", timeout=10).json()["status"] == "ready", timeout=15)
    for probe in probes:
        assert probe.elapsed < 6, probe  # no hang: connections fail fast, the connect timeout is 5 s
    assert [(p.status, p.complete) for p in probes[:2]] == [(200, True), (200, True)], probes[:2]
    for probe in probes[2:]:
        assert probe.status == 503 and probe.code == "service_unavailable", probe
        assert int(probe.headers["retry-after"]) > 0

    # Back: the key that could not be checked works, as does a key created after the restart.
    assert wait_for(lambda: burst([(url, uncached, chat())])[0].status == 200, timeout=15)
    _, newer = key_services.virtual_key_create(actor=gateway.ctx, name="created after the restart")
    after = burst([(url, newer, chat()), (url, cached, chat(stream=True))])
    assert [(o.status, o.complete) for o in after] == [(200, True), (200, True)], after
    reconcile(gateway.org, upstream, expected_requests=len(served) + 2 + 1 + 2, runtime=relay_server.relay.runtime)
