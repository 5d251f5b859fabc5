"""Reads for billing: budget spend, usage summaries from rollups, the request log, the A/B report."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from billing.exact_sums import ExactSum
from billing.models import Budget, ExchangeRate, Price, UsageEvent, UsageRollup
from wire.periods import period_bounds
from wire.pricing import PriceSnapshot, snapshot_from_row, to_micros


def budget_scope_filter(budget: Budget) -> Q:
    if budget.scope == Budget.Scope.TEAM:
        return Q(team_id=budget.team_id)
    if budget.scope == Budget.Scope.KEY:
        return Q(key_id=budget.key_id)
    if budget.scope == Budget.Scope.USER:
        return Q(user_id=budget.user_id)
    return Q()


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def ceil_day(moment: datetime) -> datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + timedelta(days=1)


def rollup_range_q(since: datetime, until: datetime | None = None, *, day_grain: str = UsageRollup.Grain.DAY) -> Q:
    """The rollup rows that together cover [since, until) exactly once (until None: up to now): hourly
    rows at the edges, rows of `day_grain` (a daily grain) for the whole UTC days between."""
    start = floor_hour(since)
    end = floor_hour(until) if until is not None else None
    first_day = ceil_day(start)
    last_day = floor_day(end) if end is not None else None
    hour, day = UsageRollup.Grain.HOUR, day_grain
    if last_day is not None and first_day >= last_day:
        return Q(grain=hour, bucket__gte=start, bucket__lt=end)
    q = Q(grain=hour, bucket__gte=start, bucket__lt=first_day)
    if last_day is None:
        return q | Q(grain=day, bucket__gte=first_day)
    return q | Q(grain=day, bucket__gte=first_day, bucket__lt=last_day) | Q(grain=hour, bucket__gte=last_day, bucket__lt=end)


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
        import redis
        from django.conf import settings

        _counter_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _counter_client


def budget_reserved(budgets: list[Budget], spent: dict[int, Decimal], *, time_zone: str, now: datetime) -> dict[int, Decimal] | None:
    """What each budget's admission counter holds beyond its ledger spend: requests in flight, leases the
    relay processes hold and usage on its way to the ledger (relay.budgets). One MGET per call; None when
    the counters are not shared (no Redis: each process counts its own) or Redis does not answer."""
    from django.conf import settings

    from wire.periods import budget_counter
    from wire.pricing import MICROS

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


def usage_events(*, organization, filters: dict | None = None) -> QuerySet[UsageEvent]:
    """The request log, filtered by the usage explorer's fields."""
    events = UsageEvent.objects.filter(organization=organization)
    filters = filters or {}
    for field in ("team_id", "key_id", "user_id", "model_name", "deployment_id", "endpoint", "status_code"):
        if filters.get(field) not in (None, ""):
            events = events.filter(**{field: filters[field]})
    if filters.get("since"):
        events = events.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(created_at__lt=filters["until"])
    if filters.get("errors_only"):
        events = events.filter(status_code__gte=400)
    return events.order_by("-created_at", "-id")


GROUPS = {"day": "bucket", "model": "model_name", "key": "key_id", "team": "team_id", "user": "user_id", "deployment": "deployment_id",
          "endpoint": "endpoint"}


def usage_summary(*, organization, since: datetime, until: datetime, group_by: str = "day", filters: dict | None = None) -> list[dict]:
    """Totals of the usage in [since, until) exactly: the rollups for the whole hours inside, the ledger for the
    partial hours at either edge (at most two hours of raw rows). group_by "day" groups by hour for ranges up
    to two days, else by UTC day."""
    hourly = (until - since).total_seconds() <= 2 * 86400
    column = GROUPS[group_by]
    filters = {f: (filters or {}).get(f) for f in ("team_id", "key_id", "user_id", "model_name", "deployment_id", "endpoint")}
    filters = {f: v for f, v in filters.items() if v not in (None, "")}
    inner_start, inner_end = ceil_hour(since), floor_hour(until)
    summed: dict = {}
    if inner_start < inner_end:
        whole = (
            Q(grain=UsageRollup.Grain.HOUR, bucket__gte=inner_start, bucket__lt=inner_end) if hourly
            else rollup_range_q(inner_start, inner_end)
        )
        rows = UsageRollup.objects.filter(whole, organization=organization, **filters)
        for row in rows.values(column).annotate(
            requests=ExactSum("requests"), errors=ExactSum("errors"), prompt_tokens=ExactSum("prompt_tokens"),
            cached_tokens=ExactSum("cached_tokens"), completion_tokens=ExactSum("completion_tokens"), cost=ExactSum("cost"),
            unpriced=ExactSum("unpriced"),
        ).order_by():
            _add(summed, column, _group_value(row[column], group_by, hourly), row)
        edges = [(since, inner_start), (inner_end, until)]
    else:
        edges = [(since, until)]  # inside one hour: the ledger alone
    for start, end in edges:
        if start >= end:
            continue
        events = UsageEvent.objects.filter(organization=organization, created_at__gte=start, created_at__lt=end, **filters)
        if group_by == "day":
            events = events.annotate(bucket=(TruncHour if hourly else TruncDay)("created_at", tzinfo=dt_timezone.utc))
        for row in events.values(column).annotate(
            requests=Count("id"), errors=Count("id", filter=Q(status_code__gte=400)), prompt_tokens=ExactSum("prompt_tokens"),
            cached_tokens=ExactSum("cached_tokens"), completion_tokens=ExactSum("completion_tokens"), cost=ExactSum("cost_display"),
            unpriced=Count("id", filter=Q(cost_display__isnull=True, status_code__lt=400)),  # as the rollups count
        ).order_by():
            _add(summed, column, _group_value(row[column], group_by, hourly), row)
    return [summed[group] for group in sorted(summed)]


SUMMARY_SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced")


def _group_value(value, group_by: str, hourly: bool):
    if group_by == "day":
        return floor_hour(value) if hourly else floor_day(value)
    if group_by in ("model", "endpoint"):
        return value
    return value or 0  # the rollups' 0 for "none"


def _add(summed: dict, column: str, group, row: dict) -> None:
    into = summed.setdefault(group, {column: group, **dict.fromkeys(SUMMARY_SUMS, 0), "cost": Decimal(0)})
    for name in SUMMARY_SUMS:
        into[name] += row[name] or 0


def _percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def model_variant_report(*, organization, model, since: datetime, until: datetime) -> dict:
    """Per deployment of a model: volume, errors, latency, tokens and cost, with the difference to the first."""
    from keys.models import Deployment

    rows = (
        UsageEvent.objects.filter(organization=organization, model_name=model.name, created_at__gte=since, created_at__lt=until)
        .values_list("deployment_id", "status_code", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cost_display")
        .order_by()
    )
    grouped: dict[int, list] = {}
    for row in rows.iterator(chunk_size=5000):
        grouped.setdefault(row[0], []).append(row)
    names = dict(Deployment.objects.filter(organization=organization, pk__in=[k for k in grouped if k]).values_list("pk", "upstream_model"))
    variants = []
    for deployment_id in sorted(grouped, key=lambda k: (k is None, k)):
        events = grouped[deployment_id]
        ok = [e for e in events if e[1] < 400]
        tokens = sum(e[4] + e[5] for e in ok)
        cost = sum((e[6] for e in ok if e[6] is not None), Decimal(0))
        variants.append({
            "deployment_id": deployment_id, "upstream_model": names.get(deployment_id, ""), "requests": len(events),
            "errors": len(events) - len(ok), "error_rate": round((len(events) - len(ok)) / len(events), 4),
            "latency_p50_ms": _percentile([e[2] for e in ok], 0.5), "latency_p95_ms": _percentile([e[2] for e in ok], 0.95),
            "ttft_p50_ms": _percentile([e[3] for e in ok if e[3] is not None], 0.5),
            "avg_prompt_tokens": round(sum(e[4] for e in ok) / len(ok), 2) if ok else None,
            "avg_completion_tokens": round(sum(e[5] for e in ok) / len(ok), 2) if ok else None,
            "cost_per_request": str(cost / len(ok)) if ok else None,
            "cost_per_1k_tokens": str(cost * 1000 / tokens) if tokens else None,
        })
    baseline = variants[0] if variants else None
    for variant in variants[1:]:
        variant["vs_first"] = {
            field: _difference(variant[field], baseline[field])
            for field in ("error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "cost_per_request", "cost_per_1k_tokens")
        }
    return {"model": model.name, "since": since, "until": until, "variants": variants}


def _difference(value, base):
    if value is None or base is None:
        return None
    return str(Decimal(str(value)) - Decimal(str(base)))


# --- Price book and exchange rates (the REST API and the dashboard pages alike) -----------------------------


def price_book(*, organization, provider: str | None = None, upstream_model: str | None = None) -> QuerySet[Price]:
    """The organization's effective price book: its own entries, plus the global ones of each model it has not
    priced itself yet.

    The same precedence as `prices_for`, which the relay charges with: the organization's entries
    win from the first one's effective date, and until then the global book prices the model. So a global entry
    drops out only once an own entry of that model has taken effect (one scheduled for later leaves it in force).
    """
    own = Price.objects.filter(
        organization=organization, provider=OuterRef("provider"), upstream_model=OuterRef("upstream_model"),
        effective_from__lte=timezone.now(),
    )
    prices = Price.objects.filter(Q(organization=organization) | (Q(organization=None) & ~Exists(own)))
    if provider:
        prices = prices.filter(provider=provider)
    if upstream_model:
        prices = prices.filter(upstream_model=upstream_model)
    return prices.order_by("provider", "upstream_model", "-effective_from", "-id")


def price_rank(price: Price) -> tuple:
    """The relay's order for one model's entries: the organization's own first, then newest first."""
    return (price.organization_id is None, -price.effective_from.timestamp(), -price.pk)


def prices_mark_in_force(prices: list[Price], book: QuerySet[Price], *, now: datetime | None = None) -> list[Price]:
    """Set `in_force` on each entry: the one of its model that prices requests made now (as `price_at` picks)."""
    now = now or timezone.now()
    current: dict[tuple[str, str], Price] = {}
    rows = book.filter(
        provider__in={p.provider for p in prices}, upstream_model__in={p.upstream_model for p in prices}, effective_from__lte=now,
    ).only("pk", "organization_id", "provider", "upstream_model", "effective_from")
    for row in sorted(rows, key=price_rank):
        current.setdefault((row.provider, row.upstream_model), row)
    for price in prices:
        chosen = current.get((price.provider, price.upstream_model))
        price.in_force = chosen is not None and chosen.pk == price.pk
    return prices


@dataclass
class PricedModel:
    """One provider model of the book: the entry in force, those scheduled after it, and the ones before."""

    provider: str
    upstream_model: str
    current: Price | None
    scheduled: list[Price]
    history: list[Price]

    @property
    def entries(self) -> list[Price]:
        return [*self.scheduled, *([self.current] if self.current else []), *self.history]


def price_book_models(
    *, organization, provider: str | None = None, upstream_model: str | None = None, now: datetime | None = None,
) -> list[PricedModel]:
    """The book grouped by provider and model, in one query: what the prices page lists."""
    now = now or timezone.now()
    grouped: dict[tuple[str, str], list[Price]] = {}
    for price in price_book(organization=organization, provider=provider, upstream_model=upstream_model):
        grouped.setdefault((price.provider, price.upstream_model), []).append(price)
    models = []
    for (provider_slug, upstream_model), entries in grouped.items():
        entries.sort(key=price_rank)
        current = next((p for p in entries if p.effective_from <= now), None)
        scheduled = sorted((p for p in entries if p.effective_from > now), key=lambda p: p.effective_from)
        history = [p for p in entries if p.effective_from <= now and p is not current]
        history.sort(key=lambda p: p.effective_from, reverse=True)
        for price in entries:
            price.in_force = price is current
        models.append(PricedModel(provider_slug, upstream_model, current, scheduled, history))
    return models


def exchange_rate_list(*, organization) -> QuerySet[ExchangeRate]:
    return ExchangeRate.objects.filter(organization=organization).select_related("organization").order_by("currency", "-effective_from", "-id")


def exchange_rates_mark_in_force(rates: list[ExchangeRate], *, organization, now: datetime | None = None) -> list[ExchangeRate]:
    """Set `in_force` on each rate: the newest of its currency that has taken effect."""
    current: dict[str, int] = {}
    rows = ExchangeRate.objects.filter(organization=organization, effective_from__lte=now or timezone.now())
    for pk, currency in rows.order_by("currency", "-effective_from", "-id").values_list("pk", "currency"):
        current.setdefault(currency, pk)
    for rate in rates:
        rate.in_force = current.get(rate.currency) == rate.pk
    return rates


# --- A key's spend and budget ------------------------------------------------------------------------------


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


# --- The price book as the relay charges it (relay.snapshots) and the estimator quotes it ---


def prices_for(*, organization_id: int, provider: str, upstream_model: str) -> tuple[PriceSnapshot, ...]:
    """The org's own entries (newest first), then the global book's: `price_at` takes the first in
    force, so the org's book wins from its first effective date and the global one covers before."""
    rows = Price.objects.filter(provider=provider, upstream_model=upstream_model)
    own = rows.filter(organization_id=organization_id).order_by("-effective_from")
    seeded = rows.filter(organization=None).order_by("-effective_from")
    return tuple(snapshot_from_row(row) for row in [*own, *seeded])


def exchange_rates_for(*, organization_id: int) -> tuple[tuple[str, Decimal, float], ...]:
    """Per currency, the rates scheduled after now and the one in force now (older ones can no longer apply)."""
    rates: list[tuple[str, Decimal, float]] = []
    settled: set[str] = set()
    now = timezone.now()
    for row in ExchangeRate.objects.filter(organization_id=organization_id).order_by("currency", "-effective_from", "-id"):
        if row.currency in settled:
            continue
        rates.append((row.currency, row.rate, row.effective_from.timestamp()))
        if row.effective_from <= now:
            settled.add(row.currency)
    return tuple(rates)
