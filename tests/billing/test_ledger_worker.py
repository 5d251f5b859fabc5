"""The usage pipeline with a real Celery worker: stopped during traffic, restarted, nothing lost or doubled."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from billing.models import UsageEvent
from tests.gateway import wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the stream and the worker need Redis")

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Hi"}]


def worker_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url() if connection.vendor == "postgresql" else os.environ.get("DATABASE_URL", ""),
        "REDIS_URL": settings.REDIS_URL,
        "TOLLGATE_USAGE_CLAIM_IDLE_MS": "1000",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--pool", "solo",
               "--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "WARNING"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    process.send_signal(sig)
    process.wait(20)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs a shared server database")
def test_worker_killed_and_restarted_drains_everything_once(gateway, upstream, tmp_path):
    client = gateway.client()
    worker = start_worker(tmp_path)
    try:
        for _ in range(30):
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() == 30, timeout=30)
        stop(worker)  # killed, mid-batch or not
        for _ in range(30):
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        time.sleep(2)
        assert UsageEvent.objects.filter(organization=gateway.org).count() == 30  # waiting in the stream
        worker = start_worker(tmp_path)
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() >= 60, timeout=60)
        time.sleep(3)  # a double count would show up now
        events = UsageEvent.objects.filter(organization=gateway.org)
        assert events.count() == 60 == len(upstream.ledger)
        assert events.aggregate(t=Sum("completion_tokens"))["t"] == sum(e.completion_tokens for e in upstream.ledger)
    finally:
        stop(worker)
