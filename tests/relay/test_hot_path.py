"""The steady-state hot path: no SQL query and no Redis round trip per request; disconnects are billed."""

import threading
import time

import httpx
import pytest
from django.conf import settings
from django.db.backends import utils as db_utils
from django.db.models import Sum

from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for

MESSAGES = [{"role": "user", "content": "Hi"}]


class Counter:
    def __init__(self):
        self.count = 0
        self.seen = []
        self.lock = threading.Lock()

    def wrap(self, fn):
        def counted(cursor, sql, *args, **kwargs):
            with self.lock:
                self.count += 1
                self.seen.append(sql[:80])
            return fn(cursor, sql, *args, **kwargs)

        return counted


@pytest.fixture
def counted_io(monkeypatch):
    """Counts SQL statements (every thread) and Redis round trips (the relay's asyncio client)."""
    sql, redis_trips = Counter(), Counter()
    monkeypatch.setattr(db_utils.CursorWrapper, "execute", sql.wrap(db_utils.CursorWrapper.execute))
    monkeypatch.setattr(db_utils.CursorWrapper, "executemany", sql.wrap(db_utils.CursorWrapper.executemany))
    if settings.REDIS_URL:
        from redis.asyncio.connection import AbstractConnection

        async_send = AbstractConnection.send_packed_command

        async def counted_send(self, *args, **kwargs):
            with redis_trips.lock:
                redis_trips.count += 1
            return await async_send(self, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted_send)
    return sql, redis_trips


def test_no_query_or_round_trip_per_request(gateway, counted_io):
    from billing import credits

    # A credit balance is held from leases like the budgets below (README "Credits"); set first, so that the
    # wait for the key's new limits also waits for it.
    account = credits.credit_account_get(organization=gateway.org, user=gateway.ctx.user)
    credits.credit_topup(actor=gateway.ctx, account=account, amount="1000", reason="hot path")
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=100_000, tpm_limit=100_000_000)
    from billing import services as billing_services

    # A hard budget needs a price to hold the request against (an unpriced model is refused under it).
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1", output_per_m="2")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="1000")
    client = gateway.client()
    wait_for(lambda: client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES).headers.get("x-ratelimit-limit-requests"))
    time.sleep(1.2)  # let every configuration change reach the relay (it polls every 0.5 s)
    for _ in range(5):  # warm: snapshots cached, leases taken
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    sql, redis_trips = counted_io
    sql.count = redis_trips.count = 0
    sql.seen.clear()
    requests = 300
    started = time.monotonic()
    for _ in range(requests):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    elapsed = time.monotonic() - started
    # Background work is allowed: version/cooldown polls (2 per 0.5 s), usage flushes (5 per s),
    # and a lease refill now and then; none of it scales with the number of requests.
    background = int(elapsed / 0.5 + 1) * 2 + int(elapsed / 0.2 + 1) + 10
    assert redis_trips.count <= background, (redis_trips.count, background)
    assert redis_trips.count < requests / 2
    if settings.REDIS_URL:
        assert sql.count == 0, sql.seen  # the ledger is the Celery drain's job
    else:  # embedded: the ledger is written directly, one small transaction per flush, whatever the traffic
        assert sql.count <= int(elapsed / 0.2 + 1) * 20, __import__("collections").Counter(q[:40] for q in sql.seen)


def test_client_disconnect_mid_stream_cancels_upstream_and_bills_what_was_generated(gateway, upstream):
    upstream.chunk_delay = 0.2
    try:
        body = {"model": "gpt-test", "messages": MESSAGES, "stream": True}
        headers = {"Authorization": f"Bearer {gateway.secret}"}
        delivered_chunks = 0
        with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=10) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    delivered_chunks += 1
                if delivered_chunks == 3:
                    break  # the client goes away
        event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])
        entry = upstream.ledger[-1]
        time.sleep(1)
        assert not entry.completed  # the upstream stream was cut, not run to its end
        generated = entry.completion_tokens
        assert event.status_code == 499 and event.error_type == "client_disconnected"
        assert 3 <= event.completion_tokens <= generated  # delivered <= billed <= generated
    finally:
        upstream.chunk_delay = 0.0


def test_usage_totals_match_across_key_team_and_org(gateway):
    for _ in range(5):
        gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).count() == 5)[1])
    by_key = UsageEvent.objects.filter(key_id=gateway.key.pk).aggregate(t=Sum("completion_tokens"))["t"]
    by_org = UsageEvent.objects.filter(organization=gateway.org).aggregate(t=Sum("completion_tokens"))["t"]
    assert by_key == by_org == 50
