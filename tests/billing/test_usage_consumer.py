"""The worker's usage consumer (billing.drain, billing.ledger.usage_consume), in this process against the
real Redis stream and database: rows appear as entries arrive, a failure is retried at once from the
consumer's own pending entries, and a stop is prompt. (tests/billing/test_ledger_worker.py runs it in a
real Celery worker without beat.)"""

import threading
import time
from datetime import datetime, timezone as dt_timezone

import orjson
import pytest
from django.conf import settings
from django.db import connection

from billing import drain, ledger
from billing.models import UsageEvent
from tests.accounts.factories import OrganizationFactory
from tests.billing.factories import usage_record
from tests.gateway import wait_for

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_URL, reason="the stream needs Redis"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the consumer thread writes beside the test: a server database"),
]
AT = datetime(2026, 3, 2, 10, 30, tzinfo=dt_timezone.utc)


@pytest.fixture
def client(transactional_db):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    ledger.usage_drain(client)  # whatever an earlier test left
    yield client
    client.close()


def add(client, *records):
    client.xadd(ledger.STREAM, {"b": orjson.dumps(list(records))})


def test_the_consumer_ingests_entries_as_they_arrive_and_stops_promptly(client):
    org = OrganizationFactory()
    consumer = drain.UsageConsumer()
    consumer.start()
    try:
        time.sleep(0.5)  # blocked on the stream now
        record = usage_record(organization=org, at=AT)
        add(client, record)
        wait_for(lambda: UsageEvent.objects.filter(request_id=record["request_id"]).exists(), timeout=5)
    finally:
        started = time.monotonic()
        consumer.stop()
        assert time.monotonic() - started < drain.BLOCK_MS / 1000 + 2
    assert ledger.usage_backlog(client)["waiting"] == 0


def test_a_failed_batch_is_taken_again_at_once_from_the_consumers_own_pending_entries(client, monkeypatch):
    org = OrganizationFactory()
    record = usage_record(organization=org, at=AT)
    add(client, record)
    real = ledger.usage_ingest
    calls = []

    def fails_once(records, **kwargs):
        calls.append(len(records))
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return real(records, **kwargs)

    monkeypatch.setattr(ledger, "usage_ingest", fails_once)
    monkeypatch.setattr(drain, "RETRY_SECONDS", (0.1,))
    consumer = drain.UsageConsumer()
    consumer.start()
    try:
        # Well before TOLLGATE_USAGE_CLAIM_IDLE_MS (60 s): the retry reads the consumer's own pending entry.
        wait_for(lambda: UsageEvent.objects.filter(request_id=record["request_id"]).exists(), timeout=5)
    finally:
        consumer.stop()
    assert calls[:2] == [1, 1]
    assert client.xpending(ledger.STREAM, ledger.GROUP)["pending"] == 0


def test_a_stop_during_the_wait_ends_the_thread(client):
    stop = threading.Event()
    thread = threading.Thread(target=ledger.usage_consume, args=(client, stop), kwargs={"block_ms": 200})
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
