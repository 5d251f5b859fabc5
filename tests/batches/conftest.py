"""Batch tests: a real Celery worker (its own process, beat included) beside the relay and the mock upstream."""

import pytest
from django.conf import settings
from django.db import connection

from tests.faults.helpers import Worker, price_echo

BATCH_WORKER_ENV = {"TOLLGATE_BATCH_STALE_SECONDS": "3", "TOLLGATE_BATCH_SWEEP_SECONDS": "1", "TOLLGATE_BATCH_CONCURRENCY": "8",
                    # Native batches (the providers' batch APIs, on the loopback mock): poll every second, over plain HTTP.
                    "TOLLGATE_BATCH_NATIVE_POLL_SECONDS": "1", "TOLLGATE_EGRESS_ALLOW_HTTP": "true"}


@pytest.fixture
def batch_worker(gateway, tmp_path):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the worker shares state with the test through PostgreSQL and Redis")
    price_echo(gateway)  # the mock's 10-word answer costs 0.01 (output 1000 per 1M tokens, input free)
    worker = Worker(tmp_path, env=BATCH_WORKER_ENV, name="batch")
    yield worker
    worker.kill()
