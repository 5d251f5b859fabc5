"""The overview page: this month's spend, pace, volume, top spenders and a 30-day chart, from the rollups only.

Every function here runs a fixed number of queries whatever the number of rollup rows (aggregates are
computed by the database), so the overview stays fast with millions of usage events.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils.translation import gettext as _

from accounts.models import Team
from billing.exact_sums import ExactSum
from billing.models import UsageRollup
from billing.money import Money
from billing.selectors.charts import stacked_by_model
from billing.selectors.ranges import DAY, UTC, floor_day, grouped_sums, rollup_range_q, rollup_reads, rollups, totals_of
from billing.selectors.rankings import Ranked, by_endpoint, model_label, ranked, top
from keys.models import VirtualKey
from wire.periods import period_bounds

CHART_DAYS = 30


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


def forecast(spent: Decimal, *, start: datetime, end: datetime, now: datetime) -> Decimal | None:
    """The period's end spend at the pace so far; None in the first hour, when a pace means nothing."""
    elapsed = (now - start).total_seconds()
    if elapsed < 3600:
        return None
    return spent * Decimal((end - start).total_seconds()) / Decimal(elapsed)


@rollup_reads
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
        by_model = grouped_sums(rows.filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_MODEL)), "model_name", "endpoint")
        groups = grouped_sums(rows.filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_KEY)), "key_id", "team_id", "user_id")
    else:
        by_model = grouped_sums(rollups(organization=organization, key_ids=key_ids).filter(rollup_range_q(start, end)), "model_name", "endpoint")
        groups = []
    totals = totals_of(by_model)
    spent = totals["cost"]
    projected = forecast(spent, start=start, end=end, now=now)
    result = Overview(
        currency=currency, period_start=start, period_end=end, totals=totals, spent=Money(spent, currency),
        forecast=Money(projected, currency) if projected is not None else None, groups=groups,
    )
    result.top_models = ranked(top(by_model, "model_name"), spent, currency, "model_name", model_label)
    result.by_endpoint = by_endpoint(by_model, spent, currency)
    if key_ids is None:  # a member's view is theirs alone: no ranking of keys and teams
        key_rows = top([group for group in groups if group["key_id"] != 0], "key_id")
        team_rows = top(groups, "team_id")
        key_names = dict(VirtualKey.objects.filter(organization=organization, pk__in=[r["key_id"] for r in key_rows]).values_list("pk", "name"))
        team_names = dict(Team.objects.filter(organization=organization, pk__in=[r["team_id"] for r in team_rows if r["team_id"]]).values_list("pk", "name"))
        result.top_keys = ranked(key_rows, spent, currency, "key_id", lambda pk: key_names.get(pk) or _("Deleted key #%(id)s") % {"id": pk})
        result.top_teams = ranked(
            team_rows, spent, currency, "team_id",
            lambda pk: (team_names.get(pk) or _("Deleted team #%(id)s") % {"id": pk}) if pk else _("No team"),
        )
    result.chart = daily_chart(organization=organization, now=now, key_ids=key_ids)
    return result


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
    return stacked_by_model(points, buckets, lambda d: d.strftime("%m-%d"), currency=organization.currency)
