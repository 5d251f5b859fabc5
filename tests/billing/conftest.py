"""Fixtures of billing's relay tests: a priced model, and the Redis holding the admission counters."""

import pytest
from django.conf import settings

from billing import services as billing_services


@pytest.fixture
def priced(gateway):
    """The gateway with the mock upstream's model at 1000 USD per 1M output tokens: a 10-token answer
    (and max_tokens=10) costs exactly 0.01 (tests.billing.spend)."""
    billing_services.price_create(
        actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="0", output_per_m="1000",
    )
    return gateway


@pytest.fixture
def counters():
    """A client on the Redis holding the shared admission counters. Without Redis each process counts its
    own, and the tests that make Redis lose or lower a counter do not apply."""
    if not settings.REDIS_URL:
        pytest.skip("counters live in this process without Redis")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()
