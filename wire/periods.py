"""Budget periods: calendar day, week (Monday) and month in the organization's time zone, or all time."""

import zoneinfo
from datetime import datetime, timedelta, timezone as dt_timezone

from wire import redis_keys

EPOCH = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


def period_bounds(period: str, time_zone: str, at: datetime) -> tuple[datetime, datetime | None]:
    """(start, end) of the period containing `at`, as aware datetimes; end is None for "total"."""
    if period == "total":
        return EPOCH, None
    local = at.astimezone(zoneinfo.ZoneInfo(time_zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = midnight, midnight + timedelta(days=1)
    elif period == "week":
        start = midnight - timedelta(days=midnight.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    # Re-localise so a DST change inside the period gives the right wall-clock boundary.
    tz = zoneinfo.ZoneInfo(time_zone)
    return start.replace(tzinfo=None).replace(tzinfo=tz), end.replace(tzinfo=None).replace(tzinfo=tz)


_current: dict[tuple[str, str], tuple[float, float, int]] = {}


def period_start_epoch(period: str, time_zone: str, at_epoch: float) -> int:
    """Start of the period containing `at_epoch`; remembered until the period ends (hot path)."""
    cached = _current.get((period, time_zone))
    if cached is not None and cached[0] <= at_epoch < cached[1]:
        return cached[2]
    start, end = period_bounds(period, time_zone, datetime.fromtimestamp(at_epoch, tz=dt_timezone.utc))
    start_epoch = start.timestamp()
    _current[(period, time_zone)] = (start_epoch, end.timestamp() if end else float("inf"), int(start_epoch))
    return int(start_epoch)


def budget_counter(budget_id: int, period: str, time_zone: str, at_epoch: float) -> str:
    """The shared admission counter of a budget's current period (relay.budgets)."""
    return redis_keys.budget_counter(budget_id, period_start_epoch(period, time_zone, at_epoch))


def credit_counter(account_id: int) -> str:
    """The shared admission counter of a credit account: its spend, with no period (relay.credits)."""
    return redis_keys.credit_counter(account_id)
