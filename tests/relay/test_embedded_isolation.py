"""One relay serves the whole session. On the embedded default it keeps its state in the process, named by
row ids (deployments' cooldowns, Idempotency-Key answers by key, cached answers by organization), and
SQLite hands a flushed test's ids out again; tests/gateway.py forgets that state before each test.

Two tests, in this order, each starting its ids from 1 (django_db_reset_sequences, so the second surely
gets the first's ids): the first leaves a cooling deployment, a stored idempotent answer and a cached
answer behind; the second must meet none of them. With Redis that state is shared in Redis, and
PostgreSQL's ids never come back outside these tests: the embedded default only."""

import pytest
from django.conf import settings

from keys import services as key_services
from tests.gateway import wait_for

ASK = [{"role": "user", "content": "Hi"}]
LEFT: dict = {}

pytestmark = pytest.mark.skipif(bool(settings.REDIS_URL), reason="the embedded default's in-process state (no Redis)")


def two_deployments(gateway, primary_upstream: str):
    """A model served by `primary_upstream`, with an echo fallback (weight 0: only when the primary fails or
    cools); two failures cool the primary for 10 minutes."""
    model = key_services.model_create(actor=gateway.ctx, name="iso", cooldown_failures=2, cooldown_seconds=600)
    return [key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model=upstream,
                                             weight=weight, order=order)
            for order, (upstream, weight) in enumerate(((primary_upstream, 1), ("echo", 0)))]


def served_by(gateway) -> int:
    raw = gateway.client().chat.completions.with_raw_response.create(model="iso", messages=ASK)
    return int(raw.headers["x-tollgate-deployment"])


def cache_state(client) -> str | None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=ASK, temperature=0)
    return raw.headers.get("x-tollgate-cache")


def test_a_test_leaves_state_behind_in_the_relay(django_db_reset_sequences, gateway, upstream):
    primary, fallback = two_deployments(gateway, "fail-500")
    served_by(gateway), served_by(gateway)
    assert served_by(gateway) == fallback.pk  # the primary is cooling
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, response_cache=True)
    client = gateway.client()
    assert wait_for(lambda: cache_state(client) == "hit")  # once the relay has reloaded the key: stored, then served
    client.chat.completions.create(model="gpt-test", messages=ASK, extra_headers={"Idempotency-Key": "once"})
    LEFT.update(org=gateway.org.pk, key=gateway.key.pk, deployment=primary.pk)


def test_the_next_test_with_the_same_ids_meets_none_of_it(django_db_reset_sequences, gateway, upstream):
    if not LEFT:
        pytest.skip("runs after the test above")
    primary, _fallback = two_deployments(gateway, "echo")
    if (gateway.org.pk, gateway.key.pk, primary.pk) != (LEFT["org"], LEFT["key"], LEFT["deployment"]):
        pytest.skip("the database did not give the ids out again: nothing can carry over")
    assert served_by(gateway) == primary.pk  # not cooling: a new deployment
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, response_cache=True)
    client = gateway.client()
    assert wait_for(lambda: cache_state(client)) == "miss"  # the first lookup, once the relay has reloaded the key
    other = [{"role": "user", "content": "Something else"}]
    replied = client.chat.completions.with_raw_response.create(model="gpt-test", messages=other, extra_headers={"Idempotency-Key": "once"})
    assert replied.status_code == 200 and "idempotent-replayed" not in replied.headers
