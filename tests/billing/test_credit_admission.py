"""Credit balances enforced at admission by the real relay (leases, no round trip), with an exact credit ledger."""

import asyncio
from decimal import Decimal

import openai
import pytest
from django.conf import settings
from django.db.models import Sum

from billing import credits, services as billing_services
from billing.credit_models import CreditAccount, CreditEntry
from billing.models import UsageEvent
from tests.billing.spend import MESSAGES, PER_REQUEST, call, ledger_total, spend_recorded
from tests.gateway import drain_usage, wait_for
from wire.periods import credit_counter


def fund(gateway, amount):
    """A balance for the key's user (the owner), topped up by the owner."""
    account = credits.credit_account_get(organization=gateway.org, user=gateway.ctx.user)
    credits.credit_topup(actor=gateway.ctx, account=account, amount=amount, reason="test funds")
    return account


def test_a_used_up_balance_refuses_with_402_insufficient_quota_before_the_upstream(priced, upstream):
    account = fund(priced, "0.03")
    client = priced.client()
    for _ in range(3):
        call(client)
    calls_before = len(upstream.ledger)
    with pytest.raises(openai.APIStatusError) as info:
        call(client)
    assert info.value.status_code == 402
    assert info.value.code == "insufficient_quota"
    assert info.value.body["type"] == "insufficient_quota"
    assert "Redeem a code or ask an admin for a top-up" in info.value.message
    assert len(upstream.ledger) == calls_before
    assert wait_for(lambda: ledger_total(priced.org) == Decimal("0.03"))
    credits.credit_usage_draw()
    assert credits.credit_balance(account=account) == 0
    usage = CreditEntry.objects.get(account=account, kind="usage")
    assert usage.amount == Decimal("-0.03") and usage.requests == 3


def test_concurrent_calls_never_overdraw_beyond_one_request_and_the_credit_ledger_is_exact(priced, upstream):
    account = fund(priced, "1.00")
    client = openai.AsyncOpenAI(base_url=priced.base_url, api_key=priced.secret, max_retries=0, timeout=60)

    async def one():
        try:
            await client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
            return "ok"
        except openai.APIStatusError as error:
            return f"{error.status_code}:{error.code}"

    async def burst():
        try:
            return await asyncio.gather(*(one() for _ in range(200)))
        finally:
            await client.close()

    results = asyncio.run(burst())
    admitted = results.count("ok")
    assert 95 <= admitted <= 100, admitted
    assert results.count("402:insufficient_quota") == 200 - admitted

    def settled():
        total = ledger_total(priced.org)
        return total if UsageEvent.objects.filter(organization=priced.org).count() == 200 else None

    total = wait_for(settled)
    assert total == PER_REQUEST * admitted
    assert total <= Decimal("1.00") + PER_REQUEST  # the README's bound: one request's overspend at most
    assert len([e for e in upstream.ledger if e.completed]) == admitted
    credits.credit_usage_draw()
    balance = credits.credit_balance(account=account)
    assert balance == Decimal("1.00") - total
    assert balance >= -PER_REQUEST
    drawn = CreditEntry.objects.filter(account=account, kind="usage").aggregate(a=Sum("amount"), r=Sum("requests"))
    assert drawn["a"] == -total and drawn["r"] == admitted
    assert credits.credit_usage_draw() == 0  # nothing is drawn twice
    print(f"credit burst: admitted {admitted} of 200, ledger {total}, balance {balance}")


def test_a_request_needs_both_the_budget_and_the_credit(priced):
    fund(priced, "1.00")
    billing_services.budget_create(actor=priced.ctx, scope="org", amount="0.02", period="month")
    client = priced.client()
    call(client)
    call(client)
    with pytest.raises(openai.RateLimitError) as info:  # the budget refuses: the credit's hold is given back
        call(client)
    assert info.value.code == "budget_exceeded"


def test_the_credit_refuses_while_a_budget_still_has_room(priced):
    fund(priced, "0.02")
    billing_services.budget_create(actor=priced.ctx, scope="org", amount="5.00", period="month")
    client = priced.client()
    call(client)
    call(client)
    with pytest.raises(openai.APIStatusError) as info:
        call(client)
    assert info.value.status_code == 402


def test_a_top_up_lets_requests_through_again(priced):
    account = fund(priced, "0.01")
    client = priced.client()
    call(client)
    with pytest.raises(openai.APIStatusError):
        call(client)
    credits.credit_topup(actor=priced.ctx, account=account, amount="0.02", reason="more")

    def passes():
        try:
            call(client)
            return True
        except openai.APIStatusError:
            return False

    assert wait_for(passes)  # every process reloads the balance within its poll interval


def test_keys_without_a_balance_are_not_held_to_credit(priced):
    for _ in range(3):
        call(priced.client())  # no account for the key, its user or its team: budgets only (none here)
    assert wait_for(lambda: ledger_total(priced.org) == Decimal("0.03"))
    assert not UsageEvent.objects.filter(organization=priced.org).exclude(credit_account_id=None).exists()


def test_credit_counters_lost_in_redis_are_rebuilt_from_the_ledger(priced, counters):
    account = fund(priced, "0.05")
    spend_recorded(priced)  # 0.03
    client = priced.client()
    counters.delete(credit_counter(account.pk))
    admitted = 0
    for _ in range(4):
        try:
            call(client)
            admitted += 1
        except openai.APIStatusError:
            pass
    assert admitted == 2  # 0.03 rebuilt from the ledger + 2 x 0.01 = the 0.05 balance


def test_a_credit_counter_that_fell_behind_is_raised_by_the_reconciliation(priced, counters):
    from billing.tasks import budget_counters_reconcile

    account = fund(priced, "0.05")
    spend_recorded(priced)  # 0.03
    store = counters
    counter = credit_counter(account.pk)
    store.set(counter, 0, keepttl=True)  # lost updates
    budget_counters_reconcile()  # the periodic task: draws usage, then raises counters
    assert float(store.get(counter)) == 30_000
    assert CreditEntry.objects.get(account=account, kind="usage").amount == Decimal("-0.03")


def test_a_request_draws_from_its_keys_own_balance_before_its_users(priced):
    user_account = fund(priced, "1.00")
    key_account = credits.credit_account_get(organization=priced.org, key=priced.key)
    credits.credit_topup(actor=priced.ctx, account=key_account, amount="0.01", reason="the key's own")

    def refused():  # the key's own balance (0.01) applies once every process has reloaded the key
        try:
            call(priced.client())
            return False
        except openai.APIStatusError as error:
            return error.status_code == 402

    assert wait_for(refused)

    def charged():  # the relay flushes its usage records a moment after the answer: wait for them to land
        drain_usage()
        return set(UsageEvent.objects.filter(organization=priced.org).exclude(credit_account_id=None).values_list("credit_account_id", flat=True))

    assert wait_for(lambda: key_account.pk in charged())
    assert charged() <= {key_account.pk, user_account.pk}
    credits.credit_usage_draw()
    assert credits.credit_balance(account=key_account) == 0


def relay_saw_the_change(relay_server) -> bool:
    """The relay's snapshot cache has taken the current configuration version (it then reloads keys)."""
    from keys.invalidation import REDIS_KEY, local_version_path

    if settings.REDIS_URL:
        import redis

        store = redis.Redis.from_url(settings.REDIS_URL)
        current = store.get(REDIS_KEY)
        store.close()
    else:
        current = local_version_path().stat().st_mtime_ns
    return relay_server.relay.runtime.cache._version == current


def test_a_deduction_leaves_what_a_process_has_leased_spendable_and_that_becomes_debt(priced, relay_server):
    account = fund(priced, "1.00")
    client = priced.client()
    call(client)  # this process leases 1/20 of the balance (0.05) and spends 0.01 of it
    credits.credit_deduct(actor=priced.ctx, account=account, amount="0.99", reason="all of it")
    wait_for(lambda: relay_saw_the_change(relay_server))
    admitted = 0
    for _ in range(8):
        try:
            call(client)
            admitted += 1
        except openai.APIStatusError as error:
            assert error.status_code == 402
    assert 1 <= admitted <= 4  # what was left of the lease, never more
    assert wait_for(lambda: ledger_total(priced.org) == PER_REQUEST * (1 + admitted))
    credits.credit_usage_draw()
    balance = credits.credit_balance(account=account)
    assert balance == -PER_REQUEST * admitted and balance >= Decimal("-0.05")
    assert CreditAccount.objects.get(pk=account.pk).debt == -balance
