"""Time ranges onto rollup rows, and the grouped sums every summary is added up from.

Periods are calendar periods in the organization's time zone; rollups are buckets of UTC hours and UTC days.
`rollup_range_q` maps one onto the other: the whole UTC days inside a range come from the daily rows, the
ragged edges from the hourly rows. Range bounds are floored to the hour, so in a zone with a half-hour
offset the first partial hour of a period is counted in that period (and not in the previous one).
"""

from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from functools import wraps

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from billing.exact_sums import ExactSum
from billing.models import UsageRollup

UTC = dt_timezone.utc
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced", "latency_ms_sum")


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def ceil_day(moment: datetime) -> datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + DAY


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


def rollup_reads(function):
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


def rollups(*, organization, key_ids: list[int] | None = None) -> QuerySet[UsageRollup]:
    """The organization's rollup rows, only those of `key_ids` when given (a member's own keys)."""
    rows = UsageRollup.objects.filter(organization=organization)
    if key_ids is not None:
        rows = rows.filter(key_id__in=key_ids)
    return rows


def grouped_sums(rows: QuerySet[UsageRollup], *columns: str) -> list[dict]:
    """Every sum per distinct value of `columns`: one scan of the rollups, from which totals and rankings are added up."""
    return list(rows.values(*columns).annotate(**{name: ExactSum(name) for name in SUMS}).order_by())


def totals_of(groups: list[dict]) -> dict:
    """The groups' sums added up, with the error rate and mean latency they give."""
    totals = dict.fromkeys(SUMS, 0)
    totals["cost"] = Decimal(0)
    for group in groups:
        for name in SUMS:
            totals[name] += group[name] or 0
    totals["error_percent"] = (Decimal(totals["errors"] * 100) / totals["requests"]).quantize(Decimal("0.1")) if totals["requests"] else None
    totals["latency_ms_avg"] = round(totals["latency_ms_sum"] / totals["requests"]) if totals["requests"] else None
    return totals
