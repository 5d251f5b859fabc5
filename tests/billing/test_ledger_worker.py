"""The usage pipeline with a real Celery worker: stopped during traffic, restarted, nothing lost or doubled."""

import time

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from billing.models import UsageEvent
from tests.faults.helpers import Worker
from tests.gateway import wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the stream and the worker need Redis")

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs a shared server database")
def test_worker_killed_and_restarted_drains_everything_once(gateway, upstream, tmp_path):
    client = gateway.client()
    worker = Worker(tmp_path, name="first")  # in its own process group: killing it kills its beat too
    try:
        for _ in range(30):
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() == 30, timeout=30)
        worker.kill()  # SIGKILL, mid-batch or not
        for _ in range(30):
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        time.sleep(2)
        assert UsageEvent.objects.filter(organization=gateway.org).count() == 30  # waiting in the stream
        worker = Worker(tmp_path, name="second")
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() >= 60, timeout=60)
        time.sleep(3)  # a double count would show up now
        events = UsageEvent.objects.filter(organization=gateway.org)
        assert events.count() == 60 == len(upstream.ledger)
        assert events.aggregate(t=Sum("completion_tokens"))["t"] == sum(e.completion_tokens for e in upstream.ledger)
    finally:
        worker.kill()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs a shared server database")
def test_rows_appear_without_the_beat_schedule(gateway, upstream, tmp_path):
    """The worker's own consumer thread drains the stream as it fills: no beat runs here, and nothing
    else drains (the test does not call the drain)."""
    worker = Worker(tmp_path, name="nobeat", beat=False)
    try:
        client = gateway.client()
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)  # the worker may still be starting
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() == 1, timeout=60)
        for _ in range(10):
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() == 11, timeout=10)
    finally:
        worker.stop()  # a warm shutdown stops the consumer thread too
        assert worker.process.wait(30) is not None
