"""The request log (the ledger, newest first) for the usage explorer, its CSV export and the REST API, read a
page at a time by keyset."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from accounts.models import Team, User
from billing.models import UsageEvent
from billing.selectors.ranges import UTC
from billing.selectors.usage import own_key_ids
from keys.models import Deployment, VirtualKey

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STATUS_FILTERS = {
    "success": Q(status_code__lt=400),
    "errors": Q(status_code__gte=400),
    "4xx": Q(status_code__gte=400, status_code__lt=500),
    "5xx": Q(status_code__gte=500),
    "429": Q(status_code=429),
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


def events_visible_to(org_context) -> QuerySet[UsageEvent]:
    """Every organization's requests for view_usage, else only those of the caller's own keys (scope it to one
    organization with accounts.tenancy before use)."""
    key_ids = own_key_ids(org_context)
    events = UsageEvent.objects.all()
    return events if key_ids is None else events.filter(key_id__in=key_ids)


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


def log_cursor(event) -> str:
    """A row's position in the log's order (newest first, then highest id): microseconds since the epoch and id."""
    micros = (event.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{event.pk}"


def _parse_cursor(cursor) -> tuple[datetime, int] | None:
    try:
        micros, pk = (int(part) for part in str(cursor).split("_"))
        return EPOCH + timedelta(microseconds=micros), pk
    except (TypeError, ValueError, OverflowError):
        return None


def log_page(events: QuerySet, *, page, after=None, before=None, size: int = 50, max_page: int = 1000) -> LogPage:
    try:
        number = max(int(page), 1)
    except (TypeError, ValueError):
        number = 1
    after = _parse_cursor(after) if after and number > 1 else None
    before = _parse_cursor(before) if before and not after else None
    if after is not None:
        # `created_at <= moment` bounds the index scan; the id only breaks ties within one microsecond.
        moment, pk = after
        rows = list(events.filter(Q(created_at__lt=moment) | Q(id__lt=pk), created_at__lte=moment)[:size + 1])
        has_next = len(rows) > size
        rows = rows[:size]
    elif before is not None:
        moment, pk = before
        rows = list(events.filter(Q(created_at__gt=moment) | Q(id__gt=pk), created_at__gte=moment).reverse()[:size])[::-1]
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


def names_all(*, organization) -> dict:
    """Every key, team and member name of the organization (the CSV export reads them once before streaming)."""
    return {
        "keys": dict(VirtualKey.objects.filter(organization=organization).values_list("pk", "name")),
        "teams": dict(Team.objects.filter(organization=organization).values_list("pk", "name")),
        "users": dict(User.objects.filter(memberships__organization=organization).values_list("pk", "email")),
    }


def deployment_names(*, organization, ids) -> dict[int, str]:
    return {d.pk: str(d) for d in Deployment.objects.filter(organization=organization, pk__in=list(ids)).select_related("credential")}
