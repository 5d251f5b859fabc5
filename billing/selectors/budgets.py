"""Budgets: which ones a caller sees, each one's spend in its current period (from the rollups), and what the
shared admission counters hold beyond it."""

from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.models import Team
from accounts.permissions import Perm
from billing.exact_sums import ExactSum
from billing.models import Budget, UsageRollup
from billing.money import Money
from billing.selectors.ranges import rollup_range_q, rollup_reads, rollups
from keys.models import VirtualKey
from wire.periods import budget_counter, period_bounds
from wire.pricing import MICROS, to_micros

BUDGETS_PER_QUERY = 200  # filtered sums per aggregate query


def budget_scope_filter(budget: Budget) -> Q:
    if budget.scope == Budget.Scope.TEAM:
        return Q(team_id=budget.team_id)
    if budget.scope == Budget.Scope.KEY:
        return Q(key_id=budget.key_id)
    if budget.scope == Budget.Scope.USER:
        return Q(user_id=budget.user_id)
    return Q()


def budget_spent(*, budget: Budget, at: datetime) -> tuple[Decimal, datetime, datetime | None]:
    """Spend of the budget's scope in the period containing `at` (display currency), from the rollups,
    so a month of millions of requests is a few hundred rows; exact for whole-hour time zones."""
    start, end = period_bounds(budget.period, budget.organization.time_zone, at)
    rows = UsageRollup.objects.filter(rollup_range_q(start, end), budget_scope_filter(budget), organization_id=budget.organization_id)
    total = rows.aggregate(total=ExactSum("cost"))["total"] or Decimal(0)
    return total, start, end


def budget_spent_micros(*, budget_id: int, at: float) -> int:
    budget = Budget.objects.select_related("organization").filter(pk=budget_id).first()
    if budget is None:
        return 0
    spent, _, _ = budget_spent(budget=budget, at=datetime.fromtimestamp(at, tz=dt_timezone.utc))
    return to_micros(spent)


_counter_client = None


def _counters():
    """A pooled client for reading admission counters; short timeouts (a page must not hang on Redis)."""
    global _counter_client
    if _counter_client is None:
        import redis  # only where Redis is configured (the embedded default never gets here)

        _counter_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _counter_client


def budget_reserved(budgets: list[Budget], spent: dict[int, Decimal], *, time_zone: str, now: datetime) -> dict[int, Decimal] | None:
    """What each budget's admission counter holds beyond its ledger spend: requests in flight, leases the
    relay processes hold and usage on its way to the ledger (relay.budgets). One MGET per call; None when
    the counters are not shared (no Redis: each process counts its own) or Redis does not answer."""
    if not settings.REDIS_URL or not budgets:
        return None
    names = [budget_counter(b.pk, b.period, time_zone, now.timestamp()) for b in budgets]
    try:
        values = _counters().mget(names)
    except Exception:  # README fail-open table: pages work without Redis
        return None
    return {
        b.pk: max(Decimal(0), Decimal(value.decode()) / MICROS - spent.get(b.pk, Decimal(0))) if value else Decimal(0)
        for b, value in zip(budgets, values)
    }


def budgets_with_spend(budgets: list[Budget], *, now: datetime) -> list[Budget]:
    """Set `spent`, `period_start`, `period_end`, `percent` and `reserved` on each budget (the REST API's
    BudgetSerializer): its current period's spend, and one read of the shared counters for them all."""
    for budget in budgets:
        spent, start, end = budget_spent(budget=budget, at=now)
        budget.spent, budget.period_start, budget.period_end = spent, start, end
        budget.percent = (spent * 100 / budget.amount).quantize(Decimal("0.01")) if budget.amount else Decimal(0)
    if budgets:
        reserved = budget_reserved(budgets, {b.pk: b.spent for b in budgets}, time_zone=budgets[0].organization.time_zone, now=now) or {}
        for budget in budgets:
            budget.reserved = reserved.get(budget.pk)
    return budgets


@dataclass
class BudgetStatus:
    budget: Budget
    spent: Money
    amount: Money
    remaining: Money
    percent: Decimal
    start: datetime
    end: datetime | None
    warn_at: int
    level: str  # "ok", "warn" (at or past the warning threshold) or "over" (100% or more)
    reserved: Money | None = None  # held by requests in flight and relay leases (None: not known here)

    @property
    def bar_value(self) -> int:
        """For <progress max=100>: the share used, capped at the full bar."""
        return int(min(self.percent, Decimal(100)))

    @property
    def committed_value(self) -> int:
        """Spent and reserved together, for the bar's lighter segment."""
        if not self.reserved or not self.amount.amount:
            return self.bar_value
        return int(min((self.spent.amount + self.reserved.amount) * 100 / self.amount.amount, Decimal(100)))


def warning_threshold(thresholds: list[int] | None) -> int:
    """Where a bar turns amber: the highest alert threshold below 100% (80 for the default 50/80/100)."""
    below = [t for t in (thresholds or []) if isinstance(t, int) and t < 100]
    return max(below) if below else 80


def _spent_by_scope(budgets: list[Budget], groups: list[dict]) -> dict[int, Decimal]:
    """Each budget's spend added up from rollup sums grouped by team, key and user (the same as budget_scope_filter)."""
    total = Decimal(0)
    by_column: dict[str, dict[int, Decimal]] = {"team_id": {}, "key_id": {}, "user_id": {}}
    for group in groups:
        cost = group["cost"] or Decimal(0)
        total += cost
        for column, sums in by_column.items():
            sums[group[column]] = sums.get(group[column], Decimal(0)) + cost
    columns = {Budget.Scope.TEAM: "team_id", Budget.Scope.KEY: "key_id", Budget.Scope.USER: "user_id"}
    spent = {}
    for budget in budgets:
        column = columns.get(budget.scope)  # the budget's own field of that name says whose spend it is
        spent[budget.pk] = by_column[column].get(getattr(budget, column), Decimal(0)) if column else total
    return spent


@rollup_reads
def budget_statuses(budgets: list[Budget], *, organization, now: datetime, month_groups: list[dict] | None = None) -> list[BudgetStatus]:
    """Each budget's spend in its current period, from the rollups: one query per period kind in use.

    `month_groups`: this month's rollups of the whole organization grouped by team, key and user (the overview
    reads them anyway); monthly budgets are then added up from them rather than read again.
    """
    by_period: dict[str, list[Budget]] = {}
    for budget in budgets:
        by_period.setdefault(budget.period, []).append(budget)
    spent: dict[int, Decimal] = {}
    bounds: dict[str, tuple[datetime, datetime | None]] = {}
    for period, group in by_period.items():
        start, end = bounds[period] = period_bounds(period, organization.time_zone, now)
        if period == Budget.Period.MONTH and month_groups is not None:
            spent.update(_spent_by_scope(group, month_groups))
            continue
        rows = rollups(organization=organization).filter(rollup_range_q(start, end))
        for offset in range(0, len(group), BUDGETS_PER_QUERY):
            chunk = group[offset:offset + BUDGETS_PER_QUERY]
            sums = rows.aggregate(**{f"b{b.pk}": ExactSum("cost", filter=budget_scope_filter(b) or None) for b in chunk})
            spent.update({b.pk: sums[f"b{b.pk}"] or Decimal(0) for b in chunk})
    currency = organization.currency
    reserved = budget_reserved(budgets, spent, time_zone=organization.time_zone, now=now) or {}
    statuses = []
    for budget in budgets:
        used = spent[budget.pk]
        percent = (used * 100 / budget.amount).quantize(Decimal("0.1")) if budget.amount else Decimal(0)
        warn_at = warning_threshold(budget.thresholds)
        level = "over" if percent >= 100 else "warn" if percent >= warn_at else "ok"
        start, end = bounds[budget.period]
        statuses.append(BudgetStatus(
            budget=budget, spent=Money(used, currency), amount=Money(budget.amount, currency),
            remaining=Money(max(budget.amount - used, Decimal(0)), currency), percent=percent,
            start=start, end=end, warn_at=warn_at, level=level,
            reserved=Money(reserved[budget.pk], currency) if budget.pk in reserved else None,
        ))
    return statuses


def budget_list(*, organization) -> QuerySet[Budget]:
    return (
        Budget.objects.filter(organization=organization)
        .select_related("team", "key", "user").order_by("scope", "name", "id")
    )


def budgets_applying_to(*, organization, user, key_ids: list[int]) -> QuerySet[Budget]:
    """The budgets a member's requests count against: the org's, their own, their keys' and those keys' teams'."""
    team_ids = VirtualKey.objects.filter(pk__in=key_ids).exclude(team=None).values("team_id")
    scopes = (
        Q(scope=Budget.Scope.ORGANIZATION) | Q(scope=Budget.Scope.USER, user=user)
        | Q(scope=Budget.Scope.KEY, key_id__in=key_ids) | Q(scope=Budget.Scope.TEAM, team_id__in=team_ids)
    )
    return budget_list(organization=organization).filter(scopes)


def budgets_visible_to(org_context) -> QuerySet[Budget]:
    """Every budget for view_usage or manage_budgets; for a member, the budgets that apply to them: the org's,
    their own, their keys' and the teams' of their keys and of their membership (never another team's)."""
    org = org_context.organization
    if org_context.can(Perm.VIEW_USAGE) or org_context.can(Perm.MANAGE_BUDGETS):
        return budget_list(organization=org)
    user = org_context.user
    if user is None:
        return budget_list(organization=org).filter(scope=Budget.Scope.ORGANIZATION)
    key_ids = list(VirtualKey.objects.filter(organization=org, user=user).values_list("pk", flat=True))
    own_teams = Team.objects.filter(organization=org, memberships__user=user).values("pk")
    return budgets_applying_to(organization=org, user=user, key_ids=key_ids) | budget_list(organization=org).filter(
        scope=Budget.Scope.TEAM, team_id__in=own_teams
    )
