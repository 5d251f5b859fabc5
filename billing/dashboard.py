"""Reads for the dashboard pages, all from the usage rollups except the request log itself.

Periods are calendar periods in the organization's time zone; rollups are buckets of UTC hours and UTC days.
`rollup_range_q` maps one onto the other: the whole UTC days inside a range come from the daily rows, the
ragged edges from the hourly rows. Range bounds are floored to the hour, so in a zone with a half-hour
offset the first partial hour of a period is counted in that period (and not in the previous one).

Every function here runs a fixed number of queries whatever the number of rollup rows (aggregates are
computed by the database), so the overview stays fast with millions of usage events.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import wraps

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Value
from django.utils import formats, timezone
from django.utils.translation import gettext as _, gettext_lazy

from accounts.models import Team, User
from accounts.permissions import Perm
from billing.exact_sums import ExactSum
from billing.models import AlertChannel, AlertDelivery, Budget, UsageEvent, UsageRollup
from billing.selectors import budget_reserved, budget_scope_filter, ceil_hour, floor_day, floor_hour, rollup_range_q, usage_events
from keys.models import VirtualKey
from wire.periods import period_bounds

UTC = dt_timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOURLY_SPAN = timedelta(days=2)  # ranges up to this long are charted per hour
CHART_DAYS = 30
CHART_MODELS = 7  # models drawn on their own in stacked charts; the rest is "Other"
TOP = 5
BUDGETS_PER_QUERY = 200  # filtered sums per aggregate query
SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced", "latency_ms_sum")


def _rollup_reads(function):
    """Run a reader of many rollup rows without PostgreSQL's JIT compilation.

    A month of rollups is ~140,000 rows at 10M usage events: the planner's estimate passes `jit_above_cost`, and
    compiling the query took longer than the sum itself (measured: 50-80 ms of JIT for a 40 ms sum). SET LOCAL
    keeps it to the reader's own transaction.
    """

    @wraps(function)
    def wrapper(*args, **kwargs):
        if connection.vendor != "postgresql":
            return function(*args, **kwargs)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
            return function(*args, **kwargs)

    return wrapper


# --- Money ------------------------------------------------------------------------------------------------

CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$", "KRW": "₩", "INR": "₹"}
_SMALLEST = Decimal("0.000001")


class Money:
    """An amount in a currency, rendered for the active locale with 2 to 6 decimals.

    Amounts of 1 or more get 2 decimals; smaller ones as many as they need (up to 6), so that a
    request costing 0.00042 does not show as 0.00. Rendered where it is printed (`str()`), so the
    language of the request applies.
    """

    __slots__ = ("amount", "currency")

    def __init__(self, amount, currency: str):
        self.amount = Decimal(amount) if amount is not None else None
        self.currency = currency

    def __str__(self) -> str:
        if self.amount is None:
            return _("unpriced")
        amount = self.amount
        if amount and abs(amount) < _SMALLEST:
            return "< " + self._with_symbol(formats.number_format(_SMALLEST, 6, use_l10n=True, force_grouping=True))
        places = 2 if not amount or abs(amount) >= 1 else (4 if abs(amount) >= Decimal("0.01") else 6)
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        decimals = max(2, -rounded.normalize().as_tuple().exponent) if rounded else 2
        return self._with_symbol(formats.number_format(rounded, min(decimals, places), use_l10n=True, force_grouping=True))

    def __eq__(self, other):
        return isinstance(other, Money) and (self.amount, self.currency) == (other.amount, other.currency)

    def __hash__(self):
        return hash((self.amount, self.currency))

    def __repr__(self):
        return f"Money({self.amount!r}, {self.currency!r})"

    def _with_symbol(self, number: str) -> str:
        negative = number.startswith("-")
        number = number.lstrip("-")
        symbol = CURRENCY_SYMBOLS.get(self.currency)
        text = f"{symbol}{number}" if symbol else f"{number} {self.currency}"
        return f"-{text}" if negative else text


def chart_number(amount) -> float:
    """A cost for Chart.js (a float is fine for drawing; tables keep the Decimal)."""
    return float(Decimal(amount or 0).quantize(Decimal("0.000001")))


# --- Ranges -----------------------------------------------------------------------------------------------


def rollups(*, organization, key_ids: list[int] | None = None) -> QuerySet[UsageRollup]:
    """The organization's rollup rows, only those of `key_ids` when given (a member's own keys)."""
    rows = UsageRollup.objects.filter(organization=organization)
    if key_ids is not None:
        rows = rows.filter(key_id__in=key_ids)
    return rows


def own_key_ids(org_context) -> list[int] | None:
    """None when the caller sees everyone's usage (view_usage); else the ids of their own keys."""
    if org_context.can(Perm.VIEW_USAGE):
        return None
    if org_context.user is None:
        return []
    return list(VirtualKey.objects.filter(organization=org_context.organization, user=org_context.user).values_list("pk", flat=True))


def _grouped(rows: QuerySet[UsageRollup], *columns: str) -> list[dict]:
    """Every sum per distinct value of `columns`: one scan of the rollups, from which totals and rankings are added up."""
    return list(rows.values(*columns).annotate(**{name: ExactSum(name) for name in SUMS}).order_by())


def _totals(groups: list[dict]) -> dict:
    """The groups' sums added up, with the error rate and mean latency they give."""
    totals = dict.fromkeys(SUMS, 0)
    totals["cost"] = Decimal(0)
    for group in groups:
        for name in SUMS:
            totals[name] += group[name] or 0
    totals["error_percent"] = (Decimal(totals["errors"] * 100) / totals["requests"]).quantize(Decimal("0.1")) if totals["requests"] else None
    totals["latency_ms_avg"] = round(totals["latency_ms_sum"] / totals["requests"]) if totals["requests"] else None
    return totals


# --- Budgets ----------------------------------------------------------------------------------------------


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


@_rollup_reads
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


# --- What a role is shown (the role matrix, in one place for pages and the API) -------------------------------


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


def alert_channels_visible_to(org_context) -> QuerySet[AlertChannel]:
    """Every channel by name, with `shown_target` and `shown_hint`: its addresses and its URL's hint for
    manage_budgets, else empty (an address or a bot URL is not for every member's eyes)."""
    channels = AlertChannel.objects.filter(organization=org_context.organization).order_by("name", "id")
    if org_context.can(Perm.MANAGE_BUDGETS):
        return channels.annotate(shown_target=F("target"), shown_hint=F("url_hint"))
    return channels.annotate(shown_target=Value(""), shown_hint=Value(""))


def shown_destination(channel) -> str:
    """A channel from alert_channels_visible_to as it may be shown: email addresses, or a URL's hint."""
    return channel.shown_hint if channel.has_url else channel.shown_target


def alert_deliveries_visible_to(org_context) -> QuerySet[AlertDelivery]:
    """The delivery log of the alerts about what the caller may see: budget alerts of visible budgets, and the rest."""
    deliveries = AlertDelivery.objects.filter(organization=org_context.organization).select_related("alert", "channel")
    if not (org_context.can(Perm.VIEW_USAGE) or org_context.can(Perm.MANAGE_BUDGETS)):
        deliveries = deliveries.filter(Q(alert__budget=None) | Q(alert__budget__in=budgets_visible_to(org_context).values("pk")))
    return deliveries.order_by("-created_at", "-id")


# --- Overview ---------------------------------------------------------------------------------------------


@dataclass
class Ranked:
    label: str
    cost: Money
    requests: int
    share: int  # percent of the period's spend, for a <meter>
    ident: object = None


@dataclass
class Overview:
    currency: str
    period_start: datetime
    period_end: datetime
    totals: dict
    spent: Money
    forecast: Money | None
    top_models: list[Ranked] = field(default_factory=list)
    top_keys: list[Ranked] = field(default_factory=list)
    top_teams: list[Ranked] = field(default_factory=list)
    by_endpoint: list[Ranked] = field(default_factory=list)
    chart: dict = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)  # the organization's month by key, team and user (budget_statuses)

    @property
    def period_last_day(self) -> datetime:
        """The period's last instant (its end is exclusive), for "forecast to <date>"."""
        return self.period_end - timedelta(microseconds=1)


def model_label(name: str) -> str:
    """A request refused before it named a usable model is in the ledger without one."""
    return name or "—"


# The relay's endpoints (relay.pipeline.ENDPOINTS, relay.messages.PATHS) as the dashboard names them.
ENDPOINT_LABELS = {
    "chat": gettext_lazy("Chat completions"), "completions": gettext_lazy("Completions"), "embeddings": gettext_lazy("Embeddings"),
    "rerank": gettext_lazy("Rerank"), "messages": gettext_lazy("Anthropic Messages"), "count_tokens": gettext_lazy("Token counting"),
    "responses": gettext_lazy("Responses"),
}


def endpoint_label(endpoint: str) -> str:
    """"" is usage rolled up before endpoints were (migration billing 0014) whose ledger rows were pruned."""
    return str(ENDPOINT_LABELS.get(endpoint, endpoint)) if endpoint else str(_("Not recorded"))


def by_endpoint(groups: list[dict], total: Decimal, currency: str) -> list[Ranked]:
    """Spend and requests per endpoint, dearest first, from groups that carry an `endpoint`."""
    return _ranked(_top(groups, "endpoint", limit=None), total, currency, "endpoint", endpoint_label)


def _ranked(rows, total: Decimal, currency: str, column: str, label_of) -> list[Ranked]:
    result = []
    for row in rows:
        cost = row["cost"] or Decimal(0)
        share = int((cost * 100 / total).to_integral_value()) if total else 0
        result.append(Ranked(label=label_of(row[column]), cost=Money(cost, currency), requests=row["requests"] or 0,
                             share=min(share, 100), ident=row[column]))
    return result


def _top(groups: list[dict], column: str, limit: int | None = TOP) -> list[dict]:
    """The TOP values of `column` by cost, then requests, then the value itself."""
    by_value: dict = {}
    for group in groups:
        row = by_value.setdefault(group[column], {column: group[column], "cost": Decimal(0), "requests": 0})
        row["cost"] += group["cost"] or 0
        row["requests"] += group["requests"] or 0
    return sorted(by_value.values(), key=lambda row: (-row["cost"], -row["requests"], row[column]))[:limit]


def forecast(spent: Decimal, *, start: datetime, end: datetime, now: datetime) -> Decimal | None:
    """The period's end spend at the pace so far; None in the first hour, when a pace means nothing."""
    elapsed = (now - start).total_seconds()
    if elapsed < 3600:
        return None
    return spent * Decimal((end - start).total_seconds()) / Decimal(elapsed)


@_rollup_reads
def overview(*, organization, now: datetime, key_ids: list[int] | None = None) -> Overview:
    """This month's spend, pace, volume and top spenders, and a 30-day chart by model, from rollups only.

    The organization's month is read from the coarse daily grains, once by model and once by key (with its
    team and user): a row per model or key and day however many requests. Totals and rankings are added up
    from those groups. A member's month is their own keys' daily rows, grouped by model.
    """
    currency = organization.currency
    start, end = period_bounds("month", organization.time_zone, now)
    if key_ids is None:
        rows = rollups(organization=organization)
        by_model = _grouped(rows.filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_MODEL)), "model_name", "endpoint")
        groups = _grouped(rows.filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_KEY)), "key_id", "team_id", "user_id")
    else:
        by_model = _grouped(rollups(organization=organization, key_ids=key_ids).filter(rollup_range_q(start, end)), "model_name", "endpoint")
        groups = []
    totals = _totals(by_model)
    spent = totals["cost"]
    projected = forecast(spent, start=start, end=end, now=now)
    result = Overview(
        currency=currency, period_start=start, period_end=end, totals=totals, spent=Money(spent, currency),
        forecast=Money(projected, currency) if projected is not None else None, groups=groups,
    )
    result.top_models = _ranked(_top(by_model, "model_name"), spent, currency, "model_name", model_label)
    result.by_endpoint = by_endpoint(by_model, spent, currency)
    if key_ids is None:  # a member's view is theirs alone: no ranking of keys and teams
        key_rows = _top([group for group in groups if group["key_id"] != 0], "key_id")
        team_rows = _top(groups, "team_id")
        key_names = dict(VirtualKey.objects.filter(organization=organization, pk__in=[r["key_id"] for r in key_rows]).values_list("pk", "name"))
        team_names = dict(Team.objects.filter(organization=organization, pk__in=[r["team_id"] for r in team_rows if r["team_id"]]).values_list("pk", "name"))
        result.top_keys = _ranked(key_rows, spent, currency, "key_id", lambda pk: key_names.get(pk) or _("Deleted key #%(id)s") % {"id": pk})
        result.top_teams = _ranked(
            team_rows, spent, currency, "team_id",
            lambda pk: (team_names.get(pk) or _("Deleted team #%(id)s") % {"id": pk}) if pk else _("No team"),
        )
    result.chart = daily_chart(organization=organization, now=now, key_ids=key_ids)
    return result


def _stack(points: dict[tuple, Decimal], buckets: list, label_of, *, currency: str) -> dict:
    """Chart.js data for a stacked bar chart: the biggest models on their own, the rest as "Other"."""
    per_model: dict[str, Decimal] = {}
    for (_bucket, model), value in points.items():
        per_model[model] = per_model.get(model, Decimal(0)) + value
    ranked = sorted(per_model, key=lambda m: (-per_model[m], m))
    shown, rest = ranked[:CHART_MODELS], set(ranked[CHART_MODELS:])
    index = {bucket: i for i, bucket in enumerate(buckets)}
    series = {model: [0.0] * len(buckets) for model in shown}
    other = [0.0] * len(buckets)
    for (bucket, model), value in points.items():
        if bucket not in index:
            continue
        target = other if model in rest else series[model]
        target[index[bucket]] = round(target[index[bucket]] + chart_number(value), 6)
    datasets = [{"label": model_label(model), "data": series[model]} for model in shown]
    if rest:
        datasets.append({"label": _("Other models"), "data": other})
    return {"labels": [label_of(bucket) for bucket in buckets], "datasets": datasets, "currency": currency, "empty": not points}


def daily_chart(*, organization, now: datetime, key_ids: list[int] | None = None, days: int = CHART_DAYS) -> dict:
    """Spend per UTC day over the last `days` days, stacked by model: the daily rollups only."""
    first = floor_day(now) - (days - 1) * DAY
    grain = UsageRollup.Grain.DAY_BY_MODEL if key_ids is None else UsageRollup.Grain.DAY  # a member: own keys' rows
    rows = (
        rollups(organization=organization, key_ids=key_ids)
        .filter(grain=grain, bucket__gte=first)
        .values("bucket", "model_name").annotate(cost=ExactSum("cost")).order_by()
    )
    points = {(row["bucket"].astimezone(UTC).date(), row["model_name"]): row["cost"] or Decimal(0) for row in rows}
    buckets = [(first + n * DAY).date() for n in range(days)]
    return _stack(points, buckets, lambda d: d.strftime("%m-%d"), currency=organization.currency)


# --- Usage explorer ---------------------------------------------------------------------------------------


def _rollup_filters(rows: QuerySet[UsageRollup], filters: dict) -> QuerySet[UsageRollup]:
    for name in ("team_id", "key_id", "user_id", "model_name", "endpoint"):
        if filters.get(name) not in (None, ""):
            rows = rows.filter(**{name: filters[name]})
    return rows


@_rollup_reads
def usage_summary(*, organization, since: datetime, until: datetime, filters: dict, key_ids: list[int] | None, time_zone) -> dict:
    """Totals and a spend chart for the explorer, from the rollups (hours up to two days, else UTC days)."""
    rows = _rollup_filters(rollups(organization=organization, key_ids=key_ids), filters)
    hourly = until - since <= HOURLY_SPAN
    # The hour `until` falls in counts whole: a range up to now includes the current hour so far.
    end = ceil_hour(until)
    if hourly:
        rows = rows.filter(grain=UsageRollup.Grain.HOUR, bucket__gte=floor_hour(since), bucket__lt=end)
    else:
        # A range up to now takes today's daily row rather than its hourly ones (the same events: none are later
        # than now), which halves the rows a 7-day range reads.
        rows = rows.filter(rollup_range_q(since, None if end > timezone.now() else end))
    grouped = _grouped(rows, "bucket", "model_name", "endpoint")  # one scan: the chart's points, the totals and the endpoints
    totals = _totals(grouped)
    points: dict[tuple, Decimal] = {}
    for row in grouped:
        bucket = row["bucket"].astimezone(UTC)
        key = (bucket if hourly else bucket.date(), row["model_name"])
        points[key] = points.get(key, Decimal(0)) + (row["cost"] or Decimal(0))
    if hourly:
        first, last = floor_hour(since), end
        buckets = [first + timedelta(hours=n) for n in range(int((last - first).total_seconds() // 3600))]

        def label(moment):
            return formats.date_format(moment.astimezone(time_zone), "H:i")
    else:
        first_day, last_day = floor_day(since).date(), (until - timedelta(microseconds=1)).astimezone(UTC).date()
        buckets = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]

        def label(day: date):
            return day.strftime("%m-%d")
    chart = _stack(points, buckets, label, currency=organization.currency)
    chart["hourly"] = hourly
    return {"totals": totals, "cost": Money(totals["cost"], organization.currency), "chart": chart, "hourly": hourly,
            "by_endpoint": by_endpoint(grouped, totals["cost"], organization.currency)}


STATUS_FILTERS = {
    "success": Q(status_code__lt=400),
    "errors": Q(status_code__gte=400),
    "4xx": Q(status_code__gte=400, status_code__lt=500),
    "5xx": Q(status_code__gte=500),
    "429": Q(status_code=429),
}


def request_log(*, organization, filters: dict, key_ids: list[int] | None) -> QuerySet[UsageEvent]:
    """The request log for the explorer and its CSV export: newest first, a member's own keys only."""
    events = usage_events(organization=organization, filters={k: v for k, v in filters.items() if k != "status"})
    if filters.get("status") in STATUS_FILTERS:
        events = events.filter(STATUS_FILTERS[filters["status"]])
    if key_ids is not None:
        events = events.filter(key_id__in=key_ids)
    return events


@dataclass
class LogPage:
    """A page of the request log, without COUNT(*): counting millions of rows to draw "page 3 of N" is not worth it.

    Pages are read by keyset: "Next" carries the position of the page's last row (`after`) and "Previous" that of
    its first (`before`), so page 200 costs what page 1 does. A page number alone (an old bookmark) is served by offset.
    """

    rows: list
    number: int
    has_next: bool
    next_cursor: str = ""
    previous_cursor: str = ""

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1


def log_cursor(event: UsageEvent) -> str:
    """A row's position in the log's order (newest first, then highest id): microseconds since the epoch and id."""
    micros = (event.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{event.pk}"


def _parse_cursor(cursor) -> tuple[datetime, int] | None:
    try:
        micros, pk = (int(part) for part in str(cursor).split("_"))
        return EPOCH + timedelta(microseconds=micros), pk
    except (TypeError, ValueError, OverflowError):
        return None


def log_page(events: QuerySet[UsageEvent], *, page, after=None, before=None, size: int = 50, max_page: int = 1000) -> LogPage:
    try:
        number = max(int(page), 1)
    except (TypeError, ValueError):
        number = 1
    after = _parse_cursor(after) if after and number > 1 else None
    before = _parse_cursor(before) if before and not after else None
    if after is not None:
        # `created_at <= moment` bounds the index scan; the id only breaks ties within one microsecond.
        moment, pk = after
        rows = list(events.filter(created_at__lte=moment).exclude(created_at=moment, id__gte=pk)[:size + 1])
        has_next = len(rows) > size
        rows = rows[:size]
    elif before is not None:
        moment, pk = before
        rows = list(events.filter(created_at__gte=moment).exclude(created_at=moment, id__lte=pk).reverse()[:size])[::-1]
        has_next = True  # the page it was reached from follows
    else:
        number = min(number, max_page)
        offset = (number - 1) * size
        rows = list(events[offset:offset + size + 1])
        has_next = len(rows) > size
        rows = rows[:size]
    return LogPage(
        rows=rows, number=number, has_next=has_next, next_cursor=log_cursor(rows[-1]) if has_next and rows else "",
        previous_cursor=log_cursor(rows[0]) if number > 1 and rows else "",
    )


def names_for(*, organization, key_ids=(), team_ids=(), user_ids=()) -> dict:
    """Display names of the keys, teams and users a page mentions, looked up inside the organization only."""
    key_ids, team_ids, user_ids = ({i for i in ids if i} for ids in (key_ids, team_ids, user_ids))
    return {
        "keys": dict(VirtualKey.objects.filter(organization=organization, pk__in=key_ids).values_list("pk", "name")) if key_ids else {},
        "teams": dict(Team.objects.filter(organization=organization, pk__in=team_ids).values_list("pk", "name")) if team_ids else {},
        "users": dict(
            User.objects.filter(memberships__organization=organization, pk__in=user_ids).values_list("pk", "email")
        ) if user_ids else {},
    }
