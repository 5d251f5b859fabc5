"""Redis stalled under traffic, and Redis down when a web process starts (README: fail-open table).

Both run a web process against a private redis-server (tests.faults.helpers.PrivateRedis): CLIENT
PAUSE is server-wide, and other suites share the machine's Redis. The test's own drain and config
bumps follow it through `settings.REDIS_URL`.
"""

import time
from decimal import Decimal

import httpx
from django.db.models import Sum

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.faults.helpers import (
    PrivateRedis,
    Traffic,
    WebProcess,
    burst,
    chat,
    needs_servers,
    price_echo,
)
from tests.gateway import drain_usage, wait_for
from tests.reconcile import reconcile

# The 60 s: every Redis call gives up within 1 s and the lease store retries Redis every 5 s,
# so the stall spans a dozen retry rounds, the spool's replay attempts and the snapshot cache's polls.
PAUSE_SECONDS = 60
LATENCY_BOUND = 2.5  # seconds: a request may pay one Redis timeout (0.5-1 s), never more
BUDGET = Decimal("0.30")
PER_REQUEST = Decimal("0.01")


def spent(org, key) -> Decimal:
    return UsageEvent.objects.filter(organization=org, key_id=key.pk).aggregate(t=Sum("cost_display"))["t"] or Decimal(0)


@needs_servers
def test_redis_paused_under_traffic(gateway, upstream, settings):
    """Redis stalls (CLIENT PAUSE: commands hang rather than fail) while four clients keep calling a
    web process: every request still succeeds (snapshots in process, local counters) within the
    latency bound, usage is spooled and reaches the ledger once Redis is back, and a hard key budget
    is neither overspent (during or after the stall) nor refused early."""
    redis = PrivateRedis().start()
    settings.REDIS_URL = redis.url
    price_echo(gateway)
    capped_key, capped = key_services.virtual_key_create(actor=gateway.ctx, name="capped")
    billing_services.budget_create(actor=gateway.ctx, scope="key", key=capped_key, amount=str(BUDGET), period="month")
    _, limited = key_services.virtual_key_create(actor=gateway.ctx, name="limited", rpm_limit=100_000)
    _, fresh = key_services.virtual_key_create(actor=gateway.ctx, name="first used while Redis stalls")
    web = WebProcess(redis_url=redis.url)
    traffic = None
    try:
        warm = burst([(web.url, capped, chat())] * 5 + [(web.url, limited, chat()), (web.url, gateway.secret, chat(stream=True))])
        assert {o.status for o in warm} == {200}
        wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).count() == 7)[1])

        traffic = Traffic([
            ("capped", web.url, capped, chat(), 0.4),
            ("limited", web.url, limited, chat(), 0.05),
            ("limited", web.url, limited, chat(stream=True), 0.05),
            ("plain", web.url, gateway.secret, chat(), 0.1),
        ]).start()
        time.sleep(1)
        paused_at = time.time()
        redis.pause(PAUSE_SECONDS * 1000)
        wait_for(web.spooled, timeout=5)  # usage that cannot reach the stream is kept on disk
        # Readiness answers although Redis hangs (each check has its timeout) and stays ready (fail-open), naming Redis.
        readiness_during = httpx.get(web.url.removesuffix("/v1") + "/readyz", timeout=10)
        during = burst([(web.url, fresh, chat())])[0]  # a key never seen: loaded from PostgreSQL, no Redis needed
        # Idempotency needs the shared store: refused with 503 + Retry-After (a retry is safe), never a 500
        idempotent = burst([(web.url, limited, chat(), {"Idempotency-Key": "stalled-1"})])[0]
        time.sleep(max(0.0, paused_at + PAUSE_SECONDS - time.time()))
        time.sleep(8)  # Redis answers again: the lease store goes back to it within its 5 s retry
        outcomes = traffic.stop()
        replayed = burst([(web.url, limited, chat(), {"Idempotency-Key": "stalled-1"})] * 2, concurrency=1)

        assert readiness_during.status_code == 200 and readiness_during.json()["status"] == "degraded", readiness_during.text
        redis_check = readiness_during.json()["checks"]["redis"]
        assert redis_check["status"] == "down" and redis_check["error"] in ("timeout", "TimeoutError"), redis_check  # a hang, cut short
        assert httpx.get(web.url.removesuffix("/v1") + "/readyz", timeout=10).json()["status"] == "ready"  # Redis back
        assert during.status == 200 and during.elapsed < LATENCY_BOUND, during
        assert idempotent.status == 503 and "retry-after" in idempotent.headers and idempotent.elapsed < LATENCY_BOUND, idempotent
        assert [o.status for o in replayed] == [200, 200] and replayed[1].headers.get("idempotent-replayed") == "true"
        for tag, outcome in outcomes:
            assert outcome.error == "" and outcome.complete, (tag, outcome)
            assert outcome.elapsed < LATENCY_BOUND, (tag, outcome)  # nothing hangs past its timeout
            if tag == "capped":
                assert outcome.status == 200 or outcome.code == "budget_exceeded", outcome
            else:
                assert outcome.status == 200, (tag, outcome)
        for start in range(0, PAUSE_SECONDS - 2, 3):  # requests kept succeeding all along the stall
            served = [o for o in traffic.between(paused_at + start, paused_at + start + 3) if o.status == 200]
            assert len(served) >= 5, (start, len(served))

        wait_for(lambda: not web.spooled(), timeout=15)  # replayed into the stream once Redis was back
        reconcile(gateway.org, upstream, expected_requests=len(outcomes) + 10)  # + warm-up 7, fresh 1, the idempotent call: refused while stalled 1, retried 1 (its replay adds none)
        # One process: the budget holds (README: processes x limit while Redis is out, then shared
        # counters resume) - at most one request's worst case over.
        assert spent(gateway.org, capped_key) <= BUDGET + PER_REQUEST, spent(gateway.org, capped_key)
        assert spent(gateway.org, capped_key) >= BUDGET - 3 * PER_REQUEST  # and it was really spent, not refused early
    finally:
        if traffic is not None:
            traffic.stop()
        web.stop()
        redis.stop()


@needs_servers
def test_redis_down_at_start_serves_valid_keys_then_replays_the_spool(gateway, upstream, settings):
    """A web process whose Redis refuses connections serves keys from PostgreSQL, enforces budgets
    with its own counters and spools usage; when Redis comes up, the spool goes into the stream
    without any further request, and the ledger reconciles."""
    redis = PrivateRedis()  # its port refuses connections until start()
    settings.REDIS_URL = redis.url
    price_echo(gateway)
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.05", period="month")
    web = WebProcess(redis_url=redis.url)
    try:
        outcomes = burst([(web.url, gateway.secret, chat(stream=i % 2 == 1)) for i in range(8)], concurrency=1)
        assert [o.status for o in outcomes] == [200] * 5 + [429] * 3
        assert {o.code for o in outcomes[5:]} == {"budget_exceeded"}  # the hard budget holds on local counters
        assert all(o.elapsed < LATENCY_BOUND for o in outcomes)
        wait_for(web.spooled, timeout=5)
        assert UsageEvent.objects.filter(organization=gateway.org).count() == 0  # nowhere to go yet
        readiness = httpx.get(web.url.removesuffix("/v1") + "/readyz", timeout=10)
        assert readiness.status_code == 200 and readiness.json()["status"] == "degraded", readiness.text  # serving, fail-open
        assert readiness.json()["checks"]["redis"]["status"] == "down"

        redis.start()
        assert wait_for(lambda: httpx.get(web.url.removesuffix("/v1") + "/readyz", timeout=10).json()["status"] == "ready", timeout=15)
        wait_for(lambda: not web.spooled(), timeout=15)  # replayed by the process itself, no traffic needed
        reconcile(gateway.org, upstream, expected_requests=8)
        assert spent(gateway.org, gateway.key) == Decimal("0.05")
        # Shared counters take over, rebuilt from the ledger: the budget stays exhausted.
        again = burst([(web.url, gateway.secret, chat())], concurrency=1)[0]
        assert again.status == 429 and again.code == "budget_exceeded", again
    finally:
        web.stop()
        redis.stop()
