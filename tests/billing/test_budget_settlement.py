"""Upstream usage cannot refill a budget: settling gives back at most the reservation, costs are never negative."""

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import openai
import pytest
from django.db.models import Min, Sum

from billing import services as billing_services
from billing.models import UsageEvent
from billing.periods import budget_counter
from relay.budgets import BudgetGate
from relay.leases import LeaseBook, LocalLeaseStore
from tests.gateway import drain_usage, wait_for

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
    negative reply settled far below its reservation and gave the budget back: 0.05 admitted every call."""
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD",
                                  input_per_m="0", output_per_m="1000")
    billing_services.budget_create(actor=gateway.ctx, scope="key", key=gateway.key, amount="0.05", period="total", name="Key cap")
    client = gateway.client()
    honest_admitted = 0
    for _ in range(12):
        upstream.usage_override = None
        try:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
            honest_admitted += 1
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded"
        upstream.usage_override = NEGATIVE
        try:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded"
    upstream.usage_override = None
    assert honest_admitted == 5  # 0.05 / 0.01: the budget's bound, as with honest usage alone

    events = UsageEvent.objects.filter(organization=gateway.org, status_code=200)
    wait_for(lambda: (drain_usage(), events.count() == len(upstream.ledger))[1])
    totals = events.aggregate(total=Sum("cost_display"), lowest=Min("cost_display"), prompt=Min("prompt_tokens"))
    assert totals["lowest"] >= 0 and totals["prompt"] >= 0  # never a negative cost or count
    assert totals["total"] == Decimal("0.05")
    flagged = events.exclude(usage_flags="")
    assert flagged.exists() and set(flagged.values_list("usage_flags", flat=True)) == {"negative:prompt,negative:completion"}
    assert set(flagged.values_list("completion_tokens", flat=True)) == {0}
