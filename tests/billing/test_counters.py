"""billing.counters: the one repair of an admission counter. The relay's rebuild of a counter Redis lost
and the periodic reconciliation of one that fell behind set it to the same value for the same ledger."""

import asyncio
import time
from datetime import datetime, timezone as dt_timezone
from types import SimpleNamespace

from billing import credits, services as billing_services
from billing.counters import budget_counter_floor, budget_counters_reconcile, credit_counter_floor, credit_counters_reconcile
from billing.models import Budget
from relay.budgets import BudgetGate
from relay.credits import CreditGate
from relay.leases import LeaseBook, RedisLeaseStore
from relay.snapshots import budgets_in_force, credit_in_force
from tests.billing.spend import spend_recorded
from wire.periods import budget_counter, credit_counter


class RecordingStore(RedisLeaseStore):
    """The real Redis store, noting the value each counter is rebuilt at."""

    def __init__(self, redis):
        super().__init__(redis)
        self.rebuilt: dict[str, float] = {}

    async def initialise(self, counter, value, ttl):
        self.rebuilt[counter] = value
        await super().initialise(counter, value, ttl)


def rebuilt_by_a_fresh_relay_process(admit) -> dict[str, float]:
    """Admit one request through a new process's gate (no lease yet, nothing seen), which finds its
    counter missing and rebuilds it; returns what each counter was rebuilt at."""
    from django.conf import settings
    from redis.asyncio import Redis

    async def run():
        redis = Redis.from_url(settings.REDIS_URL)
        try:
            store = RecordingStore(redis)
            await admit(store)
            return store.rebuilt
        finally:
            await redis.aclose()

    return asyncio.run(run())


def test_a_lost_budget_counter_and_one_that_fell_behind_are_repaired_to_the_same_value(priced, counters):
    org_cap = billing_services.budget_create(actor=priced.ctx, scope="org", amount="0.05", period="month")
    key_cap = billing_services.budget_create(actor=priced.ctx, scope="key", key=priced.key, amount="1.00", period="day")
    spend_recorded(priced, calls=3)
    now = time.time()
    key = SimpleNamespace(budgets=budgets_in_force(priced.key), time_zone=priced.org.time_zone, currency=priced.org.currency)
    names = {b.id: budget_counter(b.id, b.period, key.time_zone, now) for b in key.budgets}

    counters.delete(*names.values())  # Redis lost them
    rebuilt = rebuilt_by_a_fresh_relay_process(lambda store: BudgetGate(LeaseBook(store), store).reserve(key, 1, now))

    for name in names.values():
        counters.set(name, 0, keepttl=True)  # lost updates: they say nothing was spent
    assert budget_counters_reconcile(counters) == 2
    reconciled = {name: float(counters.get(name)) for name in names.values()}

    ledger = {names[b.pk]: budget_counter_floor(budget=b, at=datetime.fromtimestamp(now, tz=dt_timezone.utc))
              for b in Budget.objects.filter(pk__in=[org_cap.pk, key_cap.pk])}
    assert rebuilt == reconciled == ledger == {names[org_cap.pk]: 30_000, names[key_cap.pk]: 30_000}


def test_a_lost_credit_counter_and_one_that_fell_behind_are_repaired_to_the_same_value(priced, counters):
    account = credits.credit_account_get(organization=priced.org, user=priced.ctx.user)
    credits.credit_topup(actor=priced.ctx, account=account, amount="0.05", reason="test funds")
    spend_recorded(priced, calls=3)
    key = SimpleNamespace(credit=credit_in_force(priced.key), currency=priced.org.currency)
    name = credit_counter(account.pk)

    counters.delete(name)
    rebuilt = rebuilt_by_a_fresh_relay_process(lambda store: CreditGate(LeaseBook(store), store).reserve(key, 1))

    counters.set(name, 0, keepttl=True)
    assert credit_counters_reconcile(counters) == 1
    reconciled = {name: float(counters.get(name))}

    assert rebuilt == reconciled == {name: credit_counter_floor(account_id=account.pk)} == {name: 30_000}
