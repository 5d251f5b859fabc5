"""Usage summaries: the one answer to "how much was used in [since, until), grouped by …", which the usage
explorer's totals and chart and the REST API's /usage summary both read (NetBox's one-filterset idea: the same
question gets the same answer on the page and in the API).

Exact for any bounds: the rollups cover the whole UTC hours inside the range, the ledger the partial hours at
either edge (at most two hours of raw rows), so a range starting at midnight in a half-hour time zone counts
from that instant. Buckets ("bucket") are UTC hours for ranges up to two days, else UTC days.
"""

import operator
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce

from django.db.models import Count, Q
from django.db.models.functions import TruncDay, TruncHour
from django.utils import formats

from accounts.models import Team, User
from accounts.permissions import Perm
from billing.exact_sums import ExactSum
from billing.models import UsageEvent, UsageRollup
from billing.money import Money
from billing.selectors.charts import stacked_by_model
from billing.selectors.ranges import DAY, HOUR, SUMS, UTC, ceil_day, ceil_hour, floor_day, floor_hour, grouped_sums, rollup_reads, totals_of
from billing.selectors.rankings import by_endpoint, endpoint_label
from keys.models import Deployment, VirtualKey

HOURLY_SPAN = timedelta(days=2)  # ranges up to this long are grouped (and charted) per hour
GROUPS = {"day": "bucket", "model": "model_name", "key": "key_id", "team": "team_id", "user": "user_id", "deployment": "deployment_id",
          "endpoint": "endpoint"}
FILTERS = ("team_id", "key_id", "user_id", "model_name", "deployment_id", "endpoint")
# What the daily-by-model grain keeps: a summary that asks about nothing else reads ~20 rows a day instead of thousands.
BY_MODEL_COLUMNS = {"bucket", "model_name", "endpoint"}
# A partial UTC day longer than this is read as its daily row less the hourly rows outside the range (fewer rows).
SUBTRACT_AFTER = timedelta(hours=12)


def own_key_ids(org_context) -> list[int] | None:
    """None when the caller sees everyone's usage (view_usage); else the ids of their own keys."""
    if org_context.can(Perm.VIEW_USAGE):
        return None
    if org_context.user is None:  # a token whose creator left: "own" would match the unowned keys
        return []
    return list(VirtualKey.objects.filter(organization=org_context.organization, user=org_context.user).values_list("pk", flat=True))


def _rollup_pieces(start: datetime, end: datetime, *, hourly: bool, day_grain: str) -> list[tuple[int, Q]]:
    """(sign, rows) whose signed sums are the usage in [start, end) (whole UTC hours) exactly.

    A partial UTC day is its hourly rows, or, when that is the longer part of the day, its daily row less the
    hourly rows outside the range: the ledger drain writes a day's row and its hours' rows in one transaction,
    so a daily row is exactly the sum of its hourly rows. A range up to now reads today's row less the current
    hour's rows (no later hour has any).
    """
    hour = UsageRollup.Grain.HOUR
    first_day, last_day = ceil_day(start), floor_day(end)
    if hourly or first_day > last_day:
        return [(1, Q(grain=hour, bucket__gte=start, bucket__lt=end))]
    pieces = []
    if first_day < last_day:
        pieces.append((1, Q(grain=day_grain, bucket__gte=first_day, bucket__lt=last_day)))
    if start < first_day:
        day = first_day - DAY
        if first_day - start <= SUBTRACT_AFTER:
            pieces.append((1, Q(grain=hour, bucket__gte=start, bucket__lt=first_day)))
        else:
            pieces += [(1, Q(grain=day_grain, bucket=day)), (-1, Q(grain=hour, bucket__gte=day, bucket__lt=start))]
    if last_day < end:
        if end - last_day <= SUBTRACT_AFTER:
            pieces.append((1, Q(grain=hour, bucket__gte=last_day, bucket__lt=end)))
        else:
            pieces += [(1, Q(grain=day_grain, bucket=last_day)), (-1, Q(grain=hour, bucket__gte=end, bucket__lt=last_day + DAY))]
    return pieces


def _events_grouped(events, columns: tuple[str, ...], hourly: bool) -> list[dict]:
    """The ledger's rows summed as the rollups sum them (billing.rollups.rollup_add)."""
    if "bucket" in columns:
        events = events.annotate(bucket=(TruncHour if hourly else TruncDay)("created_at", tzinfo=UTC))
    return list(events.values(*columns).annotate(
        requests=Count("id"), errors=Count("id", filter=Q(status_code__gte=400)), prompt_tokens=ExactSum("prompt_tokens"),
        cached_tokens=ExactSum("cached_tokens"), completion_tokens=ExactSum("completion_tokens"), cost=ExactSum("cost_display"),
        unpriced=Count("id", filter=Q(cost_display__isnull=True, status_code__lt=400)), latency_ms_sum=ExactSum("latency_ms"),
    ).order_by())


def _group_key(row: dict, columns: tuple[str, ...], hourly: bool) -> tuple:
    values = []
    for column in columns:
        value = row[column]
        if column == "bucket":
            value = floor_hour(value) if hourly else floor_day(value)
        elif column not in ("model_name", "endpoint"):
            value = value or 0  # the rollups' 0 for "none"
        values.append(value)
    return tuple(values)


@rollup_reads
def usage_grouped(*, organization, since: datetime, until: datetime, columns: tuple[str, ...], filters: dict | None = None,
                  key_ids: list[int] | None = None) -> list[dict]:
    """The usage in [since, until) exactly, summed per distinct value of `columns` (rollup column names; "bucket"
    is the UTC hour for ranges up to two days, else the UTC day), sorted by them. `filters`: FILTERS by value;
    `key_ids`: only these keys' usage (a member's own keys), None for all."""
    hourly = until - since <= HOURLY_SPAN
    filters = {f: v for f, v in (filters or {}).items() if f in FILTERS and v not in (None, "")}
    if key_ids is not None:
        filters["key_id__in"] = [k for k in key_ids if filters.get("key_id") in (None, k)]
    coarse = set(columns) <= BY_MODEL_COLUMNS and set(filters) <= {"model_name", "endpoint"}
    day_grain = UsageRollup.Grain.DAY_BY_MODEL if coarse else UsageRollup.Grain.DAY
    inner_start, inner_end = ceil_hour(since), floor_hour(until)
    parts: list[tuple[int, list[dict]]] = []
    if inner_start < inner_end:
        rows = UsageRollup.objects.filter(organization=organization, **filters)
        pieces = _rollup_pieces(inner_start, inner_end, hourly=hourly, day_grain=day_grain)
        for sign in (1, -1):  # the pieces are disjoint: one query per sign
            wanted = [q for piece_sign, q in pieces if piece_sign == sign]
            if wanted:
                parts.append((sign, grouped_sums(rows.filter(reduce(operator.or_, wanted)), *columns)))
        edges = [(since, inner_start), (inner_end, until)]
    else:
        edges = [(since, until)]  # inside one hour: the ledger alone
    edges = [Q(created_at__gte=start, created_at__lt=end) for start, end in edges if start < end]
    if edges:
        events = UsageEvent.objects.filter(reduce(operator.or_, edges), organization=organization, **filters)
        parts.append((1, _events_grouped(events, columns, hourly)))
    summed: dict[tuple, dict] = {}
    for sign, groups in parts:
        for row in groups:
            key = _group_key(row, columns, hourly)
            into = summed.setdefault(key, {**dict(zip(columns, key)), **dict.fromkeys(SUMS, 0), "cost": Decimal(0)})
            for name in SUMS:
                into[name] += sign * (row[name] or 0)
    # A group whose only rows were subtracted again had no usage in the range.
    return [summed[key] for key in sorted(summed) if summed[key]["requests"]]


def usage_summary(*, organization, since: datetime, until: datetime, group_by: str = "day", filters: dict | None = None,
                  key_ids: list[int] | None = None) -> list[dict]:
    """Totals of the usage in [since, until) per GROUPS[group_by] (the REST API's /usage)."""
    return usage_grouped(organization=organization, since=since, until=until, columns=(GROUPS[group_by],), filters=filters, key_ids=key_ids)


def usage_explorer_summary(*, organization, since: datetime, until: datetime, filters: dict, key_ids: list[int] | None, time_zone) -> dict:
    """The usage explorer's totals, spend chart (stacked by model) and spend per endpoint: usage_grouped's figures."""
    hourly = until - since <= HOURLY_SPAN
    grouped = usage_grouped(organization=organization, since=since, until=until, columns=("bucket", "model_name", "endpoint"),
                            filters=filters, key_ids=key_ids)
    totals = totals_of(grouped)
    points: dict[tuple, Decimal] = {}
    for row in grouped:
        key = (row["bucket"] if hourly else row["bucket"].date(), row["model_name"])
        points[key] = points.get(key, Decimal(0)) + row["cost"]
    if hourly:
        first, last = floor_hour(since), ceil_hour(until)
        buckets = [first + n * HOUR for n in range(int((last - first) / HOUR))]

        def label(moment):
            return formats.date_format(moment.astimezone(time_zone), "H:i")
    else:
        first_day, last_day = floor_day(since).date(), (until - timedelta(microseconds=1)).astimezone(UTC).date()
        buckets = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]

        def label(day: date):
            return day.strftime("%m-%d")
    chart = stacked_by_model(points, buckets, label, currency=organization.currency)
    chart["hourly"] = hourly
    return {"totals": totals, "cost": Money(totals["cost"], organization.currency), "chart": chart, "hourly": hourly,
            "by_endpoint": by_endpoint(grouped, totals["cost"], organization.currency)}


def group_labels(*, organization, group_by: str, values: list) -> dict:
    """Names for the ids a summary is grouped by, looked up inside the organization only."""
    ids = [v for v in values if v]
    if group_by == "key":
        return dict(VirtualKey.objects.filter(organization=organization, pk__in=ids).values_list("pk", "name"))
    if group_by == "team":
        return dict(Team.objects.filter(organization=organization, pk__in=ids).values_list("pk", "name"))
    if group_by == "user":
        return dict(User.objects.filter(memberships__organization=organization, pk__in=ids).values_list("pk", "email"))
    if group_by == "deployment":
        return {d.pk: str(d) for d in Deployment.objects.filter(organization=organization, pk__in=ids).select_related("credential")}
    if group_by == "endpoint":
        return {value: endpoint_label(value) for value in values}
    return {}

