"""What an admission counter should hold, and the one way a counter that holds less is repaired.

A budget's counter (wire.periods.budget_counter, one per period) and a credit account's counter
(wire.periods.credit_counter) count the micro-units spent and reserved against them; the relay admits
from them through leases (relay.leases). The ledger holds what was spent, so a counter never holds less
than its ledger spend: that spend is its floor. A counter below it lost updates (Redis restarted, failed
over, a partial restore). Two places notice: the relay, which finds a counter missing before a lease
(relay.budgets, relay.credits, through relay.control), and the periodic reconciliation (billing.tasks),
which finds one that fell behind. Both repair it here, the same way: to its floor, or to the figure the
repairer last saw of it when that is more (spend still on its way to the ledger), and never lower (the
rest are reservations and leases processes hold; lowering the counter would let them be spent twice).
"""

from datetime import datetime

from django.utils import timezone

from billing.credit_models import CreditAccount
from billing.credit_selectors import credit_spent_micros
from billing.models import Budget
from billing.selectors import budget_spent, budget_spent_micros
from wire.periods import budget_counter, credit_counter
from wire.pricing import to_micros

# A repair on a counter that exists: raise it to ARGV[1], never lower it, keep its expiry. A counter that
# is missing is left alone: the relay rebuilds it before its next lease, with what it last saw of it.
RAISE_TO_FLOOR = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
  return 1
end
return 0
"""


def budget_counter_floor(*, budget: Budget, at: datetime) -> int:
    """The least a budget's counter for the period holding `at` holds: the ledger's spend of the budget's
    scope in that period (rollups, display currency), in micro-units."""
    spent, _, _ = budget_spent(budget=budget, at=at)
    return to_micros(spent)


def credit_counter_floor(*, account_id: int) -> int:
    """The least a credit account's counter holds: everything its requests cost, drawn or not yet drawn."""
    return credit_spent_micros(account_id=account_id)


def counter_repaired(*, floor: int, seen: float = 0) -> float:
    """The value a repaired counter takes: its floor, or what the repairer last saw of it when that is more."""
    return max(floor, seen)


def budget_counter_repair(*, budget_id: int, at: float, seen: float = 0) -> float:
    """What the relay rebuilds a missing budget counter at (`seen`: the counter at this process's last
    lease). A budget deleted meanwhile has spent nothing."""
    return counter_repaired(floor=budget_spent_micros(budget_id=budget_id, at=at), seen=seen)


def credit_counter_repair(*, account_id: int, seen: float = 0) -> float:
    """What the relay rebuilds a missing credit counter at (`seen` as for budgets)."""
    return counter_repaired(floor=credit_counter_floor(account_id=account_id), seen=seen)


def budget_counters_reconcile(client, *, now: datetime | None = None) -> int:
    """Raise every budget's counter of the current period that fell behind the ledger; returns how many."""
    now = now or timezone.now()
    repair = client.register_script(RAISE_TO_FLOOR)
    raised = 0
    for budget in Budget.objects.select_related("organization"):
        counter = budget_counter(budget.pk, budget.period, budget.organization.time_zone, now.timestamp())
        raised += repair(keys=[counter], args=[counter_repaired(floor=budget_counter_floor(budget=budget, at=now))])
    return raised


def credit_counters_reconcile(client) -> int:
    """Raise every credit account's counter that fell behind the credit ledger; returns how many."""
    repair = client.register_script(RAISE_TO_FLOOR)
    raised = 0
    for account_id in CreditAccount.objects.values_list("pk", flat=True):
        raised += repair(keys=[credit_counter(account_id)], args=[counter_repaired(floor=credit_counter_floor(account_id=account_id))])
    return raised


def counters_reconcile(client, *, now: datetime | None = None) -> int:
    """The periodic repair (billing.tasks.budget_counters_reconcile): budget and credit counters."""
    return budget_counters_reconcile(client, now=now) + credit_counters_reconcile(client)
