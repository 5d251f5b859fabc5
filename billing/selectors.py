"""Reads for billing: budget spend, usage summaries from rollups, the request log, the A/B report."""

from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from billing.models import Budget, UsageEvent, UsageRollup
from billing.periods import period_bounds
from billing.pricing import to_micros


def budget_scope_filter(budget: Budget) -> Q:
    if budget.scope == Budget.Scope.TEAM:
        return Q(team_id=budget.team_id)
    if budget.scope == Budget.Scope.KEY:
        return Q(key_id=budget.key_id)
    if budget.scope == Budget.Scope.USER:
        return Q(user_id=budget.user_id)
    return Q()


def budget_spent(*, budget: Budget, at: datetime) -> tuple[Decimal, datetime, datetime | None]:
    """Spend of the budget's scope in the period containing `at`, from the ledger (display currency)."""
    start, end = period_bounds(budget.period, budget.organization.time_zone, at)
    events = UsageEvent.objects.filter(budget_scope_filter(budget), organization_id=budget.organization_id, created_at__gte=start)
    if end is not None:
        events = events.filter(created_at__lt=end)
    total = events.aggregate(total=Sum("cost_display"))["total"] or Decimal(0)
    return total, start, end


def budget_spent_micros(*, budget_id: int, at: float) -> int:
    budget = Budget.objects.select_related("organization").filter(pk=budget_id).first()
    if budget is None:
        return 0
    spent, _, _ = budget_spent(budget=budget, at=datetime.fromtimestamp(at, tz=dt_timezone.utc))
    return to_micros(spent)


def usage_events(*, organization, filters: dict | None = None) -> QuerySet[UsageEvent]:
    """The request log, filtered by the usage explorer's fields."""
    events = UsageEvent.objects.filter(organization=organization)
    filters = filters or {}
    for field in ("team_id", "key_id", "user_id", "model_name", "deployment_id", "status_code"):
        if filters.get(field) not in (None, ""):
            events = events.filter(**{field: filters[field]})
    if filters.get("since"):
        events = events.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(created_at__lt=filters["until"])
    if filters.get("errors_only"):
        events = events.filter(status_code__gte=400)
    return events.order_by("-created_at", "-id")


GROUPS = {"day": "bucket", "model": "model_name", "key": "key_id", "team": "team_id", "user": "user_id", "deployment": "deployment_id"}


def usage_summary(*, organization, since: datetime, until: datetime, group_by: str = "day", filters: dict | None = None) -> list[dict]:
    """Totals from the daily (or hourly, for short ranges) rollups, never the raw ledger."""
    grain = UsageRollup.Grain.HOUR if (until - since).total_seconds() <= 2 * 86400 else UsageRollup.Grain.DAY
    rows = UsageRollup.objects.filter(organization=organization, grain=grain, bucket__gte=since, bucket__lt=until)
    for field in ("team_id", "key_id", "user_id", "model_name", "deployment_id"):
        if (filters or {}).get(field) not in (None, ""):
            rows = rows.filter(**{field: filters[field]})
    column = GROUPS[group_by]
    return list(
        rows.values(column)
        .annotate(
            requests=Sum("requests"), errors=Sum("errors"), prompt_tokens=Sum("prompt_tokens"),
            cached_tokens=Sum("cached_tokens"), completion_tokens=Sum("completion_tokens"), cost=Sum("cost"),
            unpriced=Sum("unpriced"), rows=Count("id"),
        )
        .order_by(column)
    )
