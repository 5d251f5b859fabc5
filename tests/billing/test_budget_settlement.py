"""Upstream usage cannot refill a budget: settling gives back at most the reservation, costs are never negative."""

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import openai
import pytest
from django.db.models import Min, Sum

from billing import services as billing_services
from billing.models import UsageEvent
from relay.budgets import BudgetGate
from relay.leases import LeaseBook, LocalLeaseStore
from tests.gateway import drain_usage, wait_for
from wire.periods import budget_counter

MESSAGES = [{"role": "user", "content": "Hi"}]
NEGATIVE = {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000}


def test_settling_below_zero_gives_back_only_the_reservation():
    async def run():
        store = LocalLeaseStore()
        budget = SimpleNamespace(id=7, period="total", hard=True, limit_micros=100, scope="key", label="k", thresholds=[], downgrade_model="")
        key = SimpleNamespace(budgets=[budget], time_zone="UTC")
        counter = budget_counter(budget.id, budget.period, key.time_zone, 0)
        await store.initialise(counter, 60, 3600)  # 60 already spent by earlier requests
        gate = BudgetGate(LeaseBook(store), store)
        held, _ = await gate.reserve(key, 40, 0)
        await gate.settle(held, 40, -1_000_000)  # an upstream's negative usage, priced
        assert gate.book.spent_estimate(counter) == 60  # the reservation came back, nothing more
        assert not await gate.book.take(counter, budget.limit_micros, 41, ttl=3600, must_exist=True)

    asyncio.run(run())


def test_negative_upstream_usage_cannot_refill_a_hard_key_budget(gateway, upstream):
    """Honest calls cost 0.01 each; between them the upstream reports negative usage. Before the fix each
    negative reply settled far below its reservation and gave the budget back: 0.05 admitted every call.
    Now a negative reply is billed from the estimate (about what an honest one costs), so the budget
    admits five calls in all, whatever the upstream claims."""
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD",
                                  input_per_m="0", output_per_m="1000")
    billing_services.budget_create(actor=gateway.ctx, scope="key", key=gateway.key, amount="0.05", period="total", name="Key cap")
    client = gateway.client()
    admitted = 0
    for _ in range(12):
        for override in (None, NEGATIVE):
            upstream.usage_override = override
            try:
                client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
                admitted += 1
            except openai.RateLimitError as exc:
                assert exc.code == "budget_exceeded"
    upstream.usage_override = None
    assert admitted == 5  # 0.05 / 0.01: the budget's bound, as with honest usage alone

    events = UsageEvent.objects.filter(organization=gateway.org, status_code=200)
    wait_for(lambda: (drain_usage(), events.count() == len(upstream.ledger))[1])
    totals = events.aggregate(total=Sum("cost_display"), lowest=Min("cost_display"), prompt=Min("prompt_tokens"))
    assert totals["lowest"] > 0 and totals["prompt"] >= 0  # never a negative (or free) cost, never a negative count
    assert totals["total"] <= Decimal("0.05")
    flagged = events.exclude(usage_flags="")
    assert flagged.exists() and set(flagged.values_list("usage_flags", "usage_source")) == {
        ("negative:prompt,negative:completion", "estimated")}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_negative_upstream_usage_is_billed_from_the_estimate_not_free(gateway, upstream, stream):
    """A reply claiming negative usage was billed 0 (the figures clamped to 0): a broken upstream gave
    free requests. It is billed from the offline estimate of the request and of what was delivered."""
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD",
                                  input_per_m="1000", output_per_m="1000")
    upstream.usage_override = NEGATIVE
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    answer = gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10, **extra)
    if stream:
        assert "".join(chunk.choices[0].delta.content or "" for chunk in answer if chunk.choices)
    upstream.usage_override = None
    event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).first())[1])
    assert (event.usage_flags, event.usage_source) == ("negative:prompt,negative:completion", "estimated")
    assert event.prompt_tokens > 0 and event.completion_tokens > 0 and event.cost_display > 0
