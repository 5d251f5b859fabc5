"""Routing through the real relay: weighted splits, sticky variants, fallbacks, retries, cooldowns."""

import collections
import time

import openai
import pytest

from billing.models import UsageEvent
from keys import services as key_services
from relay.routing import Router
from relay.snapshots import DeploymentSnapshot, ModelSnapshot
from tests.gateway import drain_usage, wait_for
from wire.adapters.base import Target

MESSAGES = [{"role": "user", "content": "Hi"}]


def routed(gateway, name, deployments, **policy):
    """A model whose deployments are (upstream_model, weight, order) on the mock upstream."""
    model = key_services.model_create(actor=gateway.ctx, name=name, **policy)
    created = [
        key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model=upstream, weight=weight, order=order)
        for upstream, weight, order in deployments
    ]
    return model, created


def served_by(gateway, name, n, **kwargs):
    client = gateway.client(**kwargs)
    counts = collections.Counter()
    for _ in range(n):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
        counts[int(raw.headers["x-tollgate-deployment"])] += 1
    return counts


def _snapshot(weights):
    deployments = tuple(
        DeploymentSnapshot(Target(i, "custom", "openai", "http://x", "k", f"m{i}"), weight, 0, f"d{i}") for i, weight in enumerate(weights, 1)
    )
    return ModelSnapshot(id=1, organization_id=1, name="m", routing="weighted", deployments=deployments, created=0)


def test_smooth_weighted_split_70_30_over_2000():
    router, model = Router(), _snapshot([70, 30])
    picks = [router.plan(model)[0][0].target.deployment_id for _ in range(2000)]
    counts = collections.Counter(picks)
    assert counts == {1: 1400, 2: 600}
    # smooth, not bursty: never more than 3 in a row of the 70% variant
    longest = max(len(run) for run in "".join(str(p) for p in picks).split("2"))
    assert longest <= 3


def test_zero_weight_drains_but_stays_as_fallback():
    model = _snapshot([1, 0])
    ready, cooling = Router().plan(model)
    assert [d.target.deployment_id for d in ready] == [1, 2] and cooling == []
    assert all(Router().plan(model)[0][0].target.deployment_id == 1 for _ in range(10))


def test_split_through_the_relay(gateway):
    _, (a, b) = routed(gateway, "ab", [("echo", 70, 0), ("echo", 30, 1)])
    counts = served_by(gateway, "ab", 200)
    assert counts[a.pk] == 140 and counts[b.pk] == 60


def test_sticky_assignment_is_stable_per_key(gateway):
    routed(gateway, "sticky", [("echo", 50, 0), ("echo", 50, 1)], routing="sticky")
    first = served_by(gateway, "sticky", 20)
    assert len(first) == 1  # one key, one variant
    variants = set(first)
    for i in range(12):
        _, secret = key_services.virtual_key_create(actor=gateway.ctx, name=f"k{i}")
        variants |= set(served_by(gateway, "sticky", 3, secret=secret))
    assert len(variants) == 2  # different keys spread over both


@pytest.mark.parametrize("failure", ["fail-429", "fail-500", "fail-503", "reset"])
def test_fallback_on_retryable_failures(gateway, upstream, failure):
    _, (primary, fallback) = routed(gateway, "fb", [(failure, 1, 0), ("echo", 0, 1)])
    raw = gateway.client().chat.completions.with_raw_response.create(model="fb", messages=MESSAGES)
    assert int(raw.headers["x-tollgate-deployment"]) == fallback.pk
    assert raw.headers["x-tollgate-attempts"] == "2"
    event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=raw.headers["x-request-id"]).first())[1])
    assert event.attempts == 2 and [a["deployment"] for a in event.attempt_trail] == [primary.pk, fallback.pk]


def test_fallback_on_timeout(gateway):
    key_services.credential_update(actor=gateway.ctx, credential=gateway.credential, read_timeout=0.5)
    _, (_, fallback) = routed(gateway, "slowfb", [("slow-3", 1, 0), ("echo", 0, 1)])
    raw = gateway.client().chat.completions.with_raw_response.create(model="slowfb", messages=MESSAGES)
    assert int(raw.headers["x-tollgate-deployment"]) == fallback.pk


def test_no_fallback_on_400(gateway, upstream):
    routed(gateway, "bad", [("fail-400", 1, 0), ("echo", 0, 1)])
    with pytest.raises(openai.BadRequestError):
        gateway.client().chat.completions.create(model="bad", messages=MESSAGES)
    assert [r["json"]["model"] for r in upstream.requests] == ["fail-400"]


def test_context_window_error_falls_back_to_a_larger_window(gateway, upstream):
    model, (small, large) = routed(gateway, "ctx", [("fail-400-context", 1, 0), ("echo", 0, 1)])
    key_services.deployment_update(actor=gateway.ctx, deployment=small, context_window=8000)
    key_services.deployment_update(actor=gateway.ctx, deployment=large, context_window=128000)
    raw = wait_for(lambda: _try(gateway, "ctx"))
    assert int(raw.headers["x-tollgate-deployment"]) == large.pk


def _try(gateway, name):
    try:
        return gateway.client().chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
    except openai.APIError:
        return None


def test_stream_falls_back_before_the_first_byte_only(gateway, upstream):
    routed(gateway, "sfb", [("fail-500", 1, 0), ("echo", 0, 1)])
    chunks = list(gateway.client().chat.completions.create(model="sfb", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
    key_services.credential_update(actor=gateway.ctx, credential=gateway.credential, read_timeout=1)
    routed(gateway, "stall", [("stall", 1, 0), ("echo", 0, 1)])
    upstream.reset()
    received = []
    with pytest.raises(openai.APIError):
        for chunk in wait_for(lambda: gateway.client().chat.completions.create(model="stall", messages=MESSAGES, stream=True)):
            received.append(chunk)
    assert received  # the first bytes reached the client...
    assert [r["json"]["model"] for r in upstream.requests] == ["stall"]  # ...so no fallback was tried


def test_attempts_never_exceed_the_configuration(gateway, upstream):
    routed(gateway, "capped", [("fail-500", 1, 0), ("fail-502", 0, 1), ("fail-503", 0, 2), ("echo", 0, 3)], max_attempts=2, cooldown_failures=100)
    with pytest.raises(openai.InternalServerError):
        gateway.client().chat.completions.create(model="capped", messages=MESSAGES)
    assert len(upstream.requests) == 2


def test_retries_honour_retry_after(gateway, upstream):
    routed(gateway, "patient", [("fail-429", 1, 0)], retries_per_deployment=1, max_attempts=2, cooldown_failures=100)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        gateway.client().chat.completions.create(model="patient", messages=MESSAGES)
    assert len(upstream.requests) == 2
    assert time.monotonic() - started >= 1.0  # the mock says Retry-After: 1


def test_cooldown_skips_the_failing_deployment_then_recovers(gateway, upstream):
    model, (primary, fallback) = routed(gateway, "cool", [("fail-500", 1, 0), ("echo", 0, 1)], cooldown_failures=2, cooldown_seconds=2)
    client = gateway.client()
    for _ in range(2):
        client.chat.completions.create(model="cool", messages=MESSAGES)
    upstream.reset()
    for _ in range(3):
        client.chat.completions.create(model="cool", messages=MESSAGES)
    assert [r["json"]["model"] for r in upstream.requests] == ["echo"] * 3  # straight to the fallback
    key_services.deployment_update(actor=gateway.ctx, deployment=primary, upstream_model="echo")  # it recovers
    time.sleep(2.2)
    counts = served_by(gateway, "cool", 3)
    wait_for(lambda: served_by(gateway, "cool", 1)[primary.pk] == 1)
    assert counts


def test_cooldown_is_shared_with_a_second_process(gateway, upstream, second_relay):
    routed(gateway, "shared", [("fail-500", 1, 0), ("echo", 0, 1)], cooldown_failures=2, cooldown_seconds=30)
    client = gateway.client()
    for _ in range(2):
        client.chat.completions.create(model="shared", messages=MESSAGES)
    time.sleep(1)  # the other process polls the shared cooldowns every 0.5 s
    upstream.reset()
    other = openai.OpenAI(base_url=second_relay, api_key=gateway.secret, max_retries=0)
    other.chat.completions.create(model="shared", messages=MESSAGES)
    assert [r["json"]["model"] for r in upstream.requests] == ["echo"]


def test_revoked_key_is_refused_by_a_second_process_within_2_seconds(gateway, second_relay):
    other = openai.OpenAI(base_url=second_relay, api_key=gateway.secret, max_retries=0)
    other.chat.completions.create(model="gpt-test", messages=MESSAGES)  # cached there now
    key_services.virtual_key_revoke(actor=gateway.ctx, key=gateway.key)
    revoked_at = time.monotonic()

    def refused():
        try:
            other.chat.completions.create(model="gpt-test", messages=MESSAGES)
        except openai.AuthenticationError:
            return True
        return False

    wait_for(refused, timeout=2, interval=0.05)
    assert time.monotonic() - revoked_at < 2


def test_cheaper_downgrade_when_a_soft_budget_is_exhausted(gateway, upstream):
    from billing import services as billing_services

    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="0", output_per_m="1000")
    routed(gateway, "cheap", [("echo", 1, 0)])
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.01", hard=False, downgrade_model="cheap")
    client = gateway.client()
    names = [client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES, max_tokens=10).headers["x-tollgate-model"] for _ in range(3)]
    assert names[0] == "gpt-test" and names[-1] == "cheap"
    drain_usage()
    assert wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(downgraded_from="gpt-test").exists())[1])


def test_variant_report_matches_a_ledger_built_by_the_test(gateway):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone
    from rest_framework.test import APIClient

    from billing.models import UsageEvent

    model, (a, b) = routed(gateway, "report", [("echo", 1, 0), ("echo", 1, 1)])
    now = timezone.now()
    rows = [  # deployment, status, latency, ttft, prompt, completion, cost
        (a, 200, 100, 10, 10, 20, "0.010"), (a, 200, 300, 30, 30, 40, "0.030"), (a, 500, 5, None, 0, 0, None),
        (b, 200, 200, 20, 20, 20, "0.020"), (b, 200, 400, 40, 20, 20, "0.020"),
    ]
    for i, (deployment, status, latency, ttft, prompt, completion, cost) in enumerate(rows):
        UsageEvent.objects.create(
            request_id=f"r{i}", organization=gateway.org, model_name="report", deployment_id=deployment.pk, endpoint="chat",
            status_code=status, latency_ms=latency, ttft_ms=ttft, prompt_tokens=prompt, completion_tokens=completion,
            cost_display=Decimal(cost) if cost else None, created_at=now - timedelta(minutes=5),
        )
    client = APIClient()
    client.force_authenticate(gateway.ctx.user)
    report = client.get(f"/api/models/{model.pk}/report/").json()
    first, second = report["variants"]
    assert (first["deployment_id"], first["requests"], first["errors"]) == (a.pk, 3, 1)
    assert first["error_rate"] == round(1 / 3, 4)
    assert (first["latency_p50_ms"], first["latency_p95_ms"], first["ttft_p50_ms"]) == (100, 300, 10)
    assert (first["avg_prompt_tokens"], first["avg_completion_tokens"]) == (20, 30)
    assert Decimal(first["cost_per_request"]) == Decimal("0.02")
    assert Decimal(first["cost_per_1k_tokens"]) == Decimal("0.04") * 1000 / 100
    assert (second["requests"], second["errors"], second["latency_p50_ms"], second["latency_p95_ms"]) == (2, 0, 200, 400)
    assert Decimal(second["vs_first"]["latency_p50_ms"]) == 100
    assert Decimal(second["vs_first"]["cost_per_request"]) == 0


def test_single_deployment_goes_straight_to_the_fallback_model_while_cooling(gateway, upstream):
    routed(gateway, "backup", [("echo", 1, 0)])
    routed(gateway, "solo", [("fail-500", 1, 0)], fallback_models=["backup"], cooldown_failures=2, cooldown_seconds=30)
    client = gateway.client()
    for _ in range(2):
        client.chat.completions.create(model="solo", messages=MESSAGES)  # served by the fallback
    upstream.reset()
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="solo", messages=MESSAGES)
        assert raw.headers["x-tollgate-attempts"] == "1"
    assert [r["json"]["model"] for r in upstream.requests] == ["echo"] * 3  # the cooling primary is not retried
