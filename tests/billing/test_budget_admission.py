"""Budgets enforced at admission by the real relay, priced exactly, with an exact ledger."""

import asyncio
from decimal import Decimal

import openai
import pytest
from django.db.models import Sum

from billing import services as billing_services
from billing.models import UsageEvent, UsageRollup
from tests.billing.spend import MESSAGES, PER_REQUEST, ledger_total, spend_recorded
from tests.gateway import wait_for


def budget(gateway, amount, **kwargs):
    return billing_services.budget_create(actor=gateway.ctx, scope="org", amount=amount, period="month", **kwargs)


def test_hard_budget_refuses_before_any_upstream_call(priced, upstream):
    budget(priced, "0.05", name="Team cap")
    client = priced.client()
    for _ in range(5):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    calls_before = len(upstream.ledger)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert info.value.code == "budget_exceeded"
    assert info.value.body["type"] == "insufficient_quota"
    assert "Team cap" in info.value.message
    assert len(upstream.ledger) == calls_before  # refused before the upstream
    assert wait_for(lambda: ledger_total(priced.org) == Decimal("0.05"))


def test_soft_budget_only_counts(priced):
    budget(priced, "0.01", hard=False)
    client = priced.client()
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert wait_for(lambda: ledger_total(priced.org) == Decimal("0.03"))


def test_concurrent_calls_respect_the_hard_budget_and_the_ledger_is_exact(priced, upstream):
    budget(priced, "1.00")
    client = openai.AsyncOpenAI(base_url=priced.base_url, api_key=priced.secret, max_retries=0, timeout=60)

    async def one():
        try:
            await client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
            return "ok"
        except openai.RateLimitError as error:
            return error.code

    async def burst():
        try:
            return await asyncio.gather(*(one() for _ in range(200)))
        finally:
            await client.close()

    results = asyncio.run(burst())
    admitted = results.count("ok")
    assert 95 <= admitted <= 100, admitted
    assert results.count("budget_exceeded") == 200 - admitted
    def settled():  # every request, admitted or refused, has its row
        total = ledger_total(priced.org)
        return total if UsageEvent.objects.filter(organization=priced.org).count() == 200 else None

    total = wait_for(settled)
    assert total <= Decimal("1.00") + PER_REQUEST  # overspend bound: one request's worst case
    assert total == PER_REQUEST * admitted
    # request for request, the ledger matches what the upstream served
    served = [e for e in upstream.ledger if e.completed]
    events = UsageEvent.objects.filter(organization=priced.org, status_code=200)
    assert len(served) == events.count() == admitted
    assert sum(e.completion_tokens for e in served) == events.aggregate(t=Sum("completion_tokens"))["t"]
    assert sum(e.prompt_tokens for e in served) == events.aggregate(t=Sum("prompt_tokens"))["t"]
    assert UsageEvent.objects.filter(organization=priced.org, error_type="budget_exceeded").count() == 200 - admitted
    # rollups agree with the ledger
    rolled = UsageRollup.objects.filter(organization=priced.org, grain="day").aggregate(c=Sum("cost"), r=Sum("requests"))
    assert rolled["c"] == total and rolled["r"] == 200


def test_counters_lost_in_redis_are_rebuilt_from_the_ledger(priced, counters):
    budget(priced, "0.05")
    spend_recorded(priced)  # 0.03
    client = priced.client()
    lost = counters.keys("tollgate:b:*")
    assert lost
    counters.delete(*lost)
    admitted = 0
    for _ in range(4):
        try:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
            admitted += 1
        except openai.RateLimitError:
            pass
    assert admitted == 2  # 0.03 rebuilt from the ledger + 2 x 0.01 = the 0.05 budget


def test_a_counter_that_fell_behind_the_ledger_is_raised_by_the_reconciliation(priced, counters):
    from billing.counters import budget_counters_reconcile

    cap = budget(priced, "0.05")
    spend_recorded(priced)  # 0.03
    store = counters
    (counter,) = store.keys(f"tollgate:b:{cap.pk}:*")
    for other in store.keys("tollgate:b:*"):  # earlier tests' budgets are gone from the database
        if other != counter:
            store.delete(other)
    store.set(counter, 0, keepttl=True)  # lost updates: the counter says nothing was spent
    assert budget_counters_reconcile(store) == 1
    assert float(store.get(counter)) == 30_000  # 0.03 in micro-units, from the ledger
    assert budget_counters_reconcile(store) == 0  # never lowered, nothing to do twice


def test_threshold_notices_never_wait_for_a_stalled_broker_and_coalesce(monkeypatch):
    """While the broker stalls, crossing a threshold returns at once, and repeated crossings of the same
    budget become one message, not a queue of blocked threads."""
    import threading
    import time

    from billing.tasks import budget_evaluate
    from relay.budgets import threshold_notifier

    stalled = threading.Event()
    sent = []

    def apply_async(args, **options):
        sent.append(args[0])
        assert options.get("retry") is False  # the periodic evaluation retries, not the request's thread
        stalled.wait(10)

    monkeypatch.setattr(budget_evaluate, "apply_async", apply_async)
    notify = threshold_notifier()
    started = time.monotonic()
    notify(1)
    wait_for(lambda: sent == [1], timeout=5)  # the first message is stuck in the broker
    for _ in range(50):
        notify(1)
    notify(2)
    assert time.monotonic() - started < 1
    stalled.set()
    wait_for(lambda: len(sent) == 3, timeout=5)
    time.sleep(0.2)
    assert sent == [1, 1, 2]  # the 50 crossings while stalled became one message
