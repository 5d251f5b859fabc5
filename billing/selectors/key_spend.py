"""A key's spend in its current period and what its own budget leaves (the keys pages, billing.key_budgets)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from billing.exact_sums import ExactSum
from billing.models import Budget, UsageRollup
from billing.selectors.ranges import rollup_range_q
from wire.periods import period_bounds


@dataclass(frozen=True)
class KeySpend:
    """A key's spend in its current period (its own budget's period, else the calendar month), in the org's
    currency, and what its own budget leaves."""

    spent: Decimal
    period: str
    start: datetime
    end: datetime | None
    budget: Budget | None
    remaining: Decimal | None
    percent: Decimal | None


def key_budgets(*, organization, key_ids) -> dict[int, Budget]:
    """Each key's own budget (scope key; the first one when several were made through the API)."""
    budgets: dict[int, Budget] = {}
    for budget in Budget.objects.filter(organization=organization, scope=Budget.Scope.KEY, key_id__in=list(key_ids)).order_by("id"):
        budgets.setdefault(budget.key_id, budget)
    return budgets


def key_spend(*, organization, key_ids, now: datetime | None = None) -> dict[int, KeySpend]:
    """Spend per key from the rollups (daily-by-key rows, hourly at the edges): one query for the budgets and
    one per kind of period in use, however many keys."""
    now = now or timezone.now()
    key_ids = list(key_ids)
    budgets = key_budgets(organization=organization, key_ids=key_ids)
    by_period: dict[str, list[int]] = {}
    for key_id in key_ids:
        budget = budgets.get(key_id)
        by_period.setdefault(budget.period if budget else Budget.Period.MONTH, []).append(key_id)
    result = {}
    for period, ids in by_period.items():
        start, end = period_bounds(period, organization.time_zone, now)
        rows = (
            UsageRollup.objects.filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_KEY), organization=organization, key_id__in=ids)
            .values("key_id").annotate(cost=ExactSum("cost")).order_by()
        )
        spent = {row["key_id"]: row["cost"] or Decimal(0) for row in rows}
        for key_id in ids:
            used = spent.get(key_id, Decimal(0))
            budget = budgets.get(key_id)
            remaining = max(budget.amount - used, Decimal(0)) if budget else None
            percent = (used * 100 / budget.amount).quantize(Decimal("0.1")) if budget and budget.amount else None
            result[key_id] = KeySpend(used, period, start, end, budget, remaining, percent)
    return result
