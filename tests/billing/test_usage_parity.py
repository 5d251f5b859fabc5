"""The usage explorer's page and the REST API's /usage summary answer the same question with the same figures,
from the same function (billing.selectors.usage_grouped), exactly as the ledger has them, however the range's
bounds fall on the rollups' UTC hours and days (NetBox's one filterset: the page and the API never drift)."""

from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.urls import reverse

from billing import ledger
from billing.exact_sums import ExactSum
from billing.models import UsageEvent
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
KOLKATA = timedelta(hours=5, minutes=30)  # a half-hour zone: its midnight is no UTC hour
FIRST, LAST = date(2026, 3, 10), date(2026, 3, 12)  # local days, in the past


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - KOLKATA


@pytest.fixture
def traffic(org, other_org):
    """Requests on both sides of each bound: the half hour before local midnight (another UTC hour's rollup rows),
    a UTC day mostly outside the range (read as its daily row less hours), errors, an unpriced one, two endpoints."""
    org.time_zone = "Asia/Kolkata"
    org.save()
    key = VirtualKeyFactory(organization=org)
    since, until = _local_midnight(FIRST), _local_midnight(LAST + timedelta(days=1))
    minute = timedelta(minutes=1)
    moments = [
        since - minute, since, since + minute, since + timedelta(minutes=29), since + timedelta(hours=3),  # the first edge
        datetime(2026, 3, 10, 0, 0, tzinfo=UTC), datetime(2026, 3, 10, 12, 15, tzinfo=UTC),  # whole UTC days inside
        datetime(2026, 3, 11, 7, 45, tzinfo=UTC), datetime(2026, 3, 12, 3, 0, tzinfo=UTC),
        until - timedelta(hours=1), until - minute, until, until + minute, until + timedelta(hours=4),  # the last edge
    ]
    records = []
    for n, at in enumerate(moments):
        records.append(usage_record(organization=org, at=at, key=key, model_name="alpha" if n % 2 else "beta",
                                    endpoint="chat" if n % 3 else "embeddings", cost_display=f"0.{n + 1:02d}0125",
                                    prompt_tokens=100 + n, completion_tokens=n))
        records.append(usage_record(organization=other_org, at=at, model_name="alpha", cost_display="9"))
    records.append(usage_record(organization=org, at=since + timedelta(minutes=5), key=key, status_code=502, cost_display=None))
    records.append(usage_record(organization=org, at=until - timedelta(minutes=5), key=key, model_name="alpha", cost_display=None))
    ledger.usage_ingest(records)
    return since, until


def _ledger_truth(org, since, until) -> dict:
    events = UsageEvent.objects.filter(organization=org, created_at__gte=since, created_at__lt=until)
    sums = events.aggregate(requests=Count("id"), errors=Count("id", filter=Q(status_code__gte=400)), prompt_tokens=Sum("prompt_tokens"),
                            completion_tokens=Sum("completion_tokens"), cost=ExactSum("cost_display"),
                            unpriced=Count("id", filter=Q(cost_display__isnull=True, status_code__lt=400)))
    sums["cost"] = Decimal(str(sums["cost"]))  # SQLite gives the exact sum back as a float
    return sums


def _page_and_api(client, *, first: date, last: date):
    page = client.get(reverse("usage"), {"range": "custom", "since": first.isoformat(), "until": last.isoformat()})
    assert page.status_code == 200
    api = client.get("/api/usage/", {"since": first.isoformat(), "until": (last + timedelta(days=1)).isoformat(), "group_by": "endpoint"})
    assert api.status_code == 200, api.content
    return page.context["summary"], api.json()


FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "unpriced")


def test_the_page_and_the_api_give_the_ledgers_figures_across_a_half_hour_time_zone(client, org, owner, traffic):
    since, until = traffic
    client.force_login(owner)
    summary, body = _page_and_api(client, first=FIRST, last=LAST)
    truth = _ledger_truth(org, since, until)
    assert truth["requests"] == 10 + 2  # the two minutes and the hours outside the range are not in it
    page = {name: summary["totals"][name] for name in FIELDS} | {"cost": summary["totals"]["cost"]}
    api = {name: body["totals"][name] for name in FIELDS} | {"cost": Decimal(body["totals"]["cost"])}
    assert page == api == truth
    assert [(r.ident, r.requests, r.cost.amount) for r in summary["by_endpoint"]] == sorted(
        [(r["group"], r["requests"], Decimal(r["cost"])) for r in body["results"]], key=lambda row: (-row[2], -row[1], row[0]))


def test_hourly_buckets_are_the_same_on_the_page_and_in_the_api(client, org, owner, traffic):
    """One local day (hourly buckets): each hour's spend on the page's chart is the API's for that hour."""
    since, until = traffic
    client.force_login(owner)
    page = client.get(reverse("usage"), {"range": "custom", "since": FIRST.isoformat(), "until": FIRST.isoformat()}).context["summary"]
    body = client.get("/api/usage/", {"since": FIRST.isoformat(), "until": (FIRST + timedelta(days=1)).isoformat(), "group_by": "day"}).json()
    assert page["hourly"] and len(body["results"]) >= 4
    first_hour = since.replace(minute=0)  # the chart starts at the hour the range starts in
    chart = [sum(dataset["data"][i] for dataset in page["chart"]["datasets"]) for i in range(len(page["chart"]["labels"]))]
    for row in body["results"]:
        hour = datetime.fromisoformat(row["group"].replace("Z", "+00:00"))
        assert chart[int((hour - first_hour) / timedelta(hours=1))] == pytest.approx(float(row["cost"]), abs=1e-9), row["group"]
    assert page["totals"]["requests"] == body["totals"]["requests"] == _ledger_truth(org, since, since + timedelta(days=1))["requests"]
    assert sum(chart) == pytest.approx(float(body["totals"]["cost"]), abs=1e-9)


@pytest.mark.parametrize("query", [{}, {"model": "alpha"}, {"key": "own"}])
def test_a_range_from_the_middle_of_a_utc_day_is_exact(client, org, owner, traffic, query):
    """A first UTC day mostly inside the range is read as its daily row less the hours before the range: the
    request at midnight UTC, before the range, is not counted (by model grain, filtered, and by key alike)."""
    client.force_login(owner)
    since, until = datetime(2026, 3, 10, 3, 0, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)
    if query.get("key") == "own":
        query = {"key": UsageEvent.objects.filter(organization=org).exclude(key_id=None).values_list("key_id", flat=True).first()}
    body = client.get("/api/usage/", {"since": since.isoformat(), "until": until.isoformat(), "group_by": "model", **query}).json()
    events = UsageEvent.objects.filter(organization=org, created_at__gte=since, created_at__lt=until)
    if "model" in query:
        events = events.filter(model_name=query["model"])
    truth = _ledger_truth(org, since, until) if not query else None
    expected = {row["model_name"]: (row["n"], Decimal(str(row["cost"])))
                for row in events.values("model_name").annotate(n=Count("id"), cost=ExactSum("cost_display")).order_by()}
    assert {r["group"]: (r["requests"], Decimal(r["cost"])) for r in body["results"]} == expected
    if truth is not None:
        assert body["totals"]["requests"] == truth["requests"]
