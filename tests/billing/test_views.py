"""The billing dashboard through Django's test client: overview, usage explorer and CSV, budgets and alert
channels, estimator, playground; the role matrix, tenancy, escaping, bad input and bounded queries."""

import csv
import io
import json
import re
import socket
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core import mail
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from billing import ledger, selectors
from billing.models import AlertChannel, AlertDelivery, Budget, UsageEvent, UsageRollup
from billing.money import Money
from tests.accounts.factories import TeamFactory
from tests.billing.factories import (
    AlertChannelFactory,
    AlertDeliveryFactory,
    BudgetFactory,
    ExchangeRateFactory,
    PriceFactory,
    UsageEventFactory,
    usage_record,
)
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
EVERYONE = set(Role)
KEY_HOLDERS = {Role.OWNER, Role.ADMIN, Role.MEMBER}
MANAGERS = {Role.OWNER, Role.ADMIN}


@pytest.fixture(autouse=True)
def _egress(settings):
    # No DNS in tests: this host counts as public; the SSRF test empties the list.
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["hooks.example.com"]


def logged_in(client, user):
    client.force_login(user)
    return client


def ingest(org, *, at=None, **fields) -> UsageEvent:
    """One request through the ledger (event + rollups), as the drain records it."""
    record = usage_record(organization=org, at=at or timezone.now(), **fields)
    ledger.usage_ingest([record])
    return UsageEvent.objects.get(request_id=record["request_id"])


def html_of(response) -> str:
    return response.content.decode()


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 byte order mark (Excel)"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


# --- Access: login and the role matrix --------------------------------------------------------------------

PAGES = {"overview": EVERYONE, "usage": EVERYONE, "usage_export": EVERYONE, "usage_cost": EVERYONE,
         "budgets": EVERYONE, "estimator": EVERYONE, "playground": KEY_HOLDERS}


@pytest.mark.parametrize("name", list(PAGES))
def test_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_access_by_role(client, org, member_of, name, role):
    logged_in(client, member_of(org, role).user)
    response = client.get(reverse(name))
    assert response.status_code == (200 if role in PAGES[name] else 403)


def test_home_is_the_overview(client, org, owner):
    logged_in(client, owner)
    response = client.get(reverse("home"))
    assert reverse("home") == reverse("overview") == "/"
    assert response.status_code == 200 and [t.name for t in response.templates][0] == "billing/overview.html"


@pytest.mark.parametrize("role", list(Role))
def test_nav_follows_role(client, org, member_of, role):
    logged_in(client, member_of(org, role).user)
    nav = html_of(client.get(reverse("home")))
    assert reverse("usage") in nav and reverse("budgets") in nav and reverse("estimator") in nav
    assert (reverse("playground") in nav) is (role in KEY_HOLDERS)


@pytest.mark.parametrize("role", list(Role))
def test_budget_writes_by_role(client, org, member_of, role):
    budget = BudgetFactory(organization=org, name="Existing")
    doomed = BudgetFactory(organization=org, name="Doomed")
    logged_in(client, member_of(org, role).user)
    allowed = role in MANAGERS
    assert client.get(reverse("budget_edit", args=[budget.pk])).status_code == (200 if allowed else 403)
    page = html_of(client.get(reverse("budgets")))
    assert (reverse("budget_create") in page) is allowed
    assert (reverse("budget_edit", args=[budget.pk]) in page) is allowed
    expected = 302 if allowed else 403
    assert client.post(reverse("budget_create"), {"scope": "org", "amount": "50", "period": "month", "hard": "on",
                                                  "thresholds": "50, 80, 100", "name": "New"}).status_code == expected
    assert client.post(reverse("budget_edit", args=[budget.pk]), {"name": "Edited", "amount": "75", "period": "week",
                                                                  "thresholds": "90"}).status_code == expected
    assert client.post(reverse("budget_delete", args=[doomed.pk])).status_code == expected
    assert Budget.objects.filter(organization=org, name="New", amount=50).exists() is allowed
    budget.refresh_from_db()
    assert ((budget.name, budget.amount, budget.period, budget.thresholds, budget.hard) == ("Edited", 75, "week", [90], False)) is allowed
    assert Budget.objects.filter(pk=doomed.pk).exists() is not allowed


@pytest.mark.parametrize("role", list(Role))
def test_channel_writes_by_role(client, org, member_of, role):
    email = AlertChannelFactory(organization=org, name="Ops mail")
    hook = AlertChannelFactory(organization=org, name="Hook", webhook=True)
    doomed = AlertChannelFactory(organization=org, name="Doomed")
    logged_in(client, member_of(org, role).user)
    allowed = role in MANAGERS
    assert client.get(reverse("channel_edit", args=[email.pk])).status_code == (200 if allowed else 403)
    page = html_of(client.get(reverse("budgets")))
    assert "Ops mail" in page  # everyone with view_org reads the channels
    assert (reverse("channel_create") in page) is allowed
    assert (reverse("channel_test", args=[email.pk]) in page) is allowed
    assert client.post(reverse("channel_create"), {"name": "Finance", "kind": "email", "target": "fin@example.com"}).status_code == (302 if allowed else 403)
    assert client.post(reverse("channel_edit", args=[email.pk]), {"name": "Ops", "target": "ops@example.com"}).status_code == (302 if allowed else 403)
    assert client.post(reverse("channel_test", args=[email.pk])).status_code == (302 if allowed else 403)
    assert client.post(reverse("channel_rotate", args=[hook.pk])).status_code == (200 if allowed else 403)
    assert client.post(reverse("channel_delete", args=[doomed.pk])).status_code == (302 if allowed else 403)
    assert AlertChannel.objects.filter(organization=org, name="Finance").exists() is allowed
    email.refresh_from_db()
    assert (email.name == "Ops" and not email.enabled) is allowed  # the checkbox was not sent: disabled
    assert (len(mail.outbox) == 1) is allowed
    assert AlertChannel.objects.filter(pk=doomed.pk).exists() is not allowed


def test_get_is_not_a_write(client, org, owner):
    budget = BudgetFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    logged_in(client, owner)
    for name, args in [("budget_create", []), ("budget_delete", [budget.pk]), ("channel_create", []),
                       ("channel_delete", [channel.pk]), ("channel_test", [channel.pk]), ("channel_rotate", [channel.pk])]:
        assert client.get(reverse(name, args=args)).status_code == 405, name
    assert client.post(reverse("usage")).status_code == 405
    assert Budget.objects.filter(pk=budget.pk).exists() and AlertChannel.objects.filter(pk=channel.pk).exists()


# --- Tenancy and a member's own usage ---------------------------------------------------------------------


def test_other_organizations_objects_are_404(client, org, other_org, owner):
    budget = BudgetFactory(organization=other_org)
    channel = AlertChannelFactory(organization=other_org, webhook=True)
    event = ingest(other_org)
    logged_in(client, owner)
    assert client.get(reverse("budget_edit", args=[budget.pk])).status_code == 404
    assert client.post(reverse("budget_edit", args=[budget.pk]), {"amount": "1", "period": "month"}).status_code == 404
    assert client.post(reverse("budget_delete", args=[budget.pk])).status_code == 404
    assert client.get(reverse("channel_edit", args=[channel.pk])).status_code == 404
    for name in ("channel_edit", "channel_delete", "channel_test", "channel_rotate"):
        assert client.post(reverse(name, args=[channel.pk]), {"name": "x"}).status_code == 404, name
    assert client.get(reverse("usage_event", args=[event.pk])).status_code == 404
    assert client.get(reverse("usage_cost"), {"request_id": event.request_id}).json() == {"found": False}
    assert Budget.objects.filter(pk=budget.pk).exists() and AlertChannel.objects.filter(pk=channel.pk).exists()
    assert AlertDelivery.objects.count() == 0
    pages = html_of(client.get(reverse("usage"))) + html_of(client.get(reverse("budgets"))) + html_of(client.get(reverse("home")))
    assert event.request_id not in pages and channel.name not in pages and budget.name not in pages
    assert csv_rows(client.get(reverse("usage_export"))) == []


def test_member_sees_only_their_own_keys_usage(client, org, member_of):
    member = member_of(org, Role.MEMBER).user
    colleague = member_of(org, Role.MEMBER).user
    own_key = VirtualKeyFactory(organization=org, user=member, name="Mine")
    their_key = VirtualKeyFactory(organization=org, user=colleague, name="Theirs")
    mine = [ingest(org, key=own_key, model_name="own-model") for _ in range(2)]
    theirs = ingest(org, key=their_key, model_name="their-model", cost_display="5")
    own_budget = BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=own_key, name="My key budget", amount=Decimal("0.04"))
    BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=their_key, name="Their key budget")
    BudgetFactory(organization=org, name="Company budget")
    logged_in(client, member)

    home = client.get(reverse("home"))
    html = html_of(home)
    assert home.context["full"] is False
    assert "Mine" in html and "own-model" in html and "their-model" not in html and "Theirs" not in html
    assert "My key budget" in html and "Company budget" in html and "Their key budget" not in html
    assert str(home.context["data"].spent) == "$0.02"
    own_status = next(s for s in home.context["budgets"] if s.budget == own_budget)
    assert (own_status.percent, own_status.level, str(own_status.remaining)) == (Decimal("50.0"), "ok", "$0.02")

    usage = client.get(reverse("usage"))
    assert {row["event"].pk for row in usage.context["rows"]} == {e.pk for e in mine}
    assert usage.context["summary"]["totals"]["requests"] == 2
    assert "filter_user" not in html_of(usage) and "filter_team" not in html_of(usage)
    # A colleague's key as a filter is refused, and never widens the view.
    filtered = client.get(reverse("usage"), {"key": their_key.pk})
    assert filtered.status_code == 200 and "key" in filtered.context["form"].errors
    assert {row["event"].pk for row in filtered.context["rows"]} == {e.pk for e in mine}

    assert {row["request_id"] for row in csv_rows(client.get(reverse("usage_export")))} == {e.request_id for e in mine}
    assert client.get(reverse("usage_event", args=[mine[0].pk])).status_code == 200
    assert client.get(reverse("usage_event", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("usage_cost"), {"request_id": theirs.request_id}).json() == {"found": False}
    assert client.get(reverse("usage_cost"), {"request_id": mine[0].request_id}).json()["found"] is True


def test_viewer_sees_everyone_read_only(client, org, member_of):
    key = VirtualKeyFactory(organization=org, user=member_of(org, Role.MEMBER).user, name="Someone's key")
    event = ingest(org, key=key, model_name="shared-model")
    logged_in(client, member_of(org, Role.VIEWER).user)
    home = client.get(reverse("home"))
    assert home.context["full"] is True and "Someone&#x27;s key" in html_of(home)
    assert client.get(reverse("usage_event", args=[event.pk])).status_code == 200
    assert [row["request_id"] for row in csv_rows(client.get(reverse("usage_export")))] == [event.request_id]


# --- Overview ---------------------------------------------------------------------------------------------


def test_overview_shows_spend_budgets_top_lists_and_chart(client, org, owner):
    team = TeamFactory(organization=org, name="Platform")
    big = VirtualKeyFactory(organization=org, team=team, name="Batch jobs")
    small = VirtualKeyFactory(organization=org, name="Chat")
    ingest(org, key=big, model_name="gpt-big", cost_display="3")
    ingest(org, key=big, model_name="gpt-big", cost_display="3", status_code=500)
    ingest(org, key=small, model_name="gpt-small", cost_display="1")
    ingest(org, key=small, model_name="gpt-small", cost_display=None)  # unpriced
    BudgetFactory(organization=org, name="Calm", amount=Decimal("100"))  # 7%
    BudgetFactory(organization=org, name="Close", amount=Decimal("8"), thresholds=[50, 80, 100])  # 87.5%
    BudgetFactory(organization=org, name="Blown", scope=Budget.Scope.TEAM, team=team, amount=Decimal("5"))  # 120%
    logged_in(client, owner)
    response = client.get(reverse("home"))
    html = html_of(response)
    data = response.context["data"]
    assert str(data.spent) == "$7.00"
    assert (data.totals["requests"], data.totals["errors"], data.totals["unpriced"]) == (4, 1, 1)
    assert data.totals["error_percent"] == Decimal("25.0")
    assert [r.label for r in data.top_models] == ["gpt-big", "gpt-small"]
    assert [(r.label, str(r.cost), r.share) for r in data.top_keys] == [("Batch jobs", "$6.00", 86), ("Chat", "$1.00", 14)]
    assert [r.label for r in data.top_teams] == ["Platform", "No team"]
    levels = {s.budget.name: s.level for s in response.context["budgets"]}
    assert levels == {"Calm": "ok", "Close": "warn", "Blown": "over"}
    assert 'class="budget-bar level-over" max="100" value="100"' in html
    assert 'class="budget-bar level-warn" max="100" value="87"' in html
    assert "had no known price" in html
    chart = json.loads(re.search(r'<script id="daily-spend-data" type="application/json">(.*?)</script>', html).group(1))
    assert len(chart["labels"]) == 30 and chart["currency"] == "USD"
    assert {d["label"]: d["data"][-1] for d in chart["datasets"]} == {"gpt-big": 6.0, "gpt-small": 1.0}
    assert '<canvas id="daily-spend" data-chart="daily-spend-data"' in html


def test_overview_without_usage_suggests_next_steps(client, org, owner):
    logged_in(client, owner)
    html = html_of(client.get(reverse("home")))
    assert "Next steps" in html and "No spend in this range yet" in html and "application/json" not in html


def test_overview_query_count_does_not_grow_with_rollups(client, org, owner):
    key = VirtualKeyFactory(organization=org)
    BudgetFactory(organization=org, period=Budget.Period.MONTH)
    BudgetFactory(organization=org, period=Budget.Period.DAY, scope=Budget.Scope.KEY, key=key)
    logged_in(client, owner)

    def rollup_rows(count, offset):
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        rows = []
        for n in range(offset, offset + count):
            grain = UsageRollup.Grain.DAY if n % 2 else UsageRollup.Grain.HOUR
            bucket = now - timedelta(hours=n % 24) if grain == UsageRollup.Grain.HOUR else (now - timedelta(days=n % 30)).replace(hour=0)
            rows.append(UsageRollup(organization=org, grain=grain, bucket=bucket, key_id=key.pk if n % 3 else n + 10_000,
                                    team_id=n % 7, model_name=f"model-{n % 40}", deployment_id=n, requests=3, errors=n % 2,
                                    cost=Decimal("0.5")))
        UsageRollup.objects.bulk_create(rows)

    rollup_rows(10, 0)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("home")).status_code == 200
    rollup_rows(990, 10)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("home")).status_code == 200
    assert len(few) == len(many), [q["sql"] for q in many.captured_queries]
    assert not any("billing_usageevent" in q["sql"] for q in many.captured_queries), "the overview never reads the ledger"


def test_rollup_spend_matches_the_ledger_across_period_edges():
    """Budget spend from rollups (days + hourly edges) equals the ledger's sum, in a zone ahead of UTC."""
    from tests.accounts.factories import OrganizationFactory

    org = OrganizationFactory(time_zone="Asia/Shanghai")
    now = datetime(2026, 3, 18, 9, 30, tzinfo=UTC)  # 17:30 in Shanghai
    moments = [
        datetime(2026, 2, 28, 15, 59, tzinfo=UTC),  # 23:59 on Feb 28 in Shanghai: last month
        datetime(2026, 2, 28, 16, 0, tzinfo=UTC),  # 00:00 on Mar 1 in Shanghai: this month
        datetime(2026, 3, 1, 3, 0, tzinfo=UTC),
        datetime(2026, 3, 16, 15, 0, tzinfo=UTC),  # Mar 16 23:00 local, a Monday: this week
        datetime(2026, 3, 17, 16, 5, tzinfo=UTC),  # Mar 18 00:05 local: today
        datetime(2026, 3, 18, 9, 0, tzinfo=UTC),
    ]
    for n, moment in enumerate(moments):
        ingest(org, at=moment, cost_display=str(n + 1))
    for period in Budget.Period.values:
        budget = BudgetFactory(organization=org, period=period, amount=Decimal("100"))
        (status,) = selectors.budget_statuses([budget], organization=org, now=now)
        expected, start, _end = selectors.budget_spent(budget=budget, at=now)
        assert status.spent.amount == expected, period
        assert status.start == start
    month = selectors.overview(organization=org, now=now)
    assert month.spent.amount == Decimal(2 + 3 + 4 + 5 + 6)
    assert month.forecast.amount > month.spent.amount


def test_overview_rankings_from_the_coarse_daily_grains_equal_the_ledger():
    """The organization's overview reads the by-model and by-key daily grains: its totals and rankings
    are the ledger's, and each daily grain sums to the ledger per key, team and model."""
    from tests.accounts.factories import OrganizationFactory
    from tests.reconcile import _rollups_agree

    org = OrganizationFactory(time_zone="America/New_York")
    now = datetime(2026, 3, 18, 15, 0, tzinfo=UTC)
    teams = [TeamFactory(organization=org), TeamFactory(organization=org)]
    keys = [VirtualKeyFactory(organization=org, team=teams[n % 2], name=f"key {n}") for n in range(4)]
    spend: dict = {}
    for n in range(40):
        key, model = keys[n % 4], ("alpha", "beta", "gamma")[n % 3]
        moment = datetime(2026, 3, 1, 5, 0, tzinfo=UTC) + timedelta(hours=7 * n)  # from the month's first local hour on
        cost = Decimal(n + 1) / 100
        ingest(org, key=key, model_name=model, at=moment, cost_display=str(cost), deployment_id=1 + n % 2)
        for kind, value in (("model", model), ("key", key.pk), ("team", key.team_id)):
            spend[(kind, value)] = spend.get((kind, value), Decimal(0)) + cost
    ingest(org, key=keys[0], at=datetime(2026, 3, 1, 4, 59, tzinfo=UTC), cost_display="9")  # still February in New York
    data = selectors.overview(organization=org, now=now)
    assert data.spent.amount == sum(Decimal(n + 1) / 100 for n in range(40))
    assert {r.ident: r.cost.amount for r in data.top_models} == {m: spend[("model", m)] for m in ("alpha", "beta", "gamma")}
    assert {r.ident: r.cost.amount for r in data.top_keys} == {k.pk: spend[("key", k.pk)] for k in keys}
    assert {r.ident: r.cost.amount for r in data.top_teams} == {t.pk: spend[("team", t.pk)] for t in teams}
    _rollups_agree(org)


def test_forecast_is_the_pace_over_the_whole_period():
    start = datetime(2026, 4, 1, tzinfo=UTC)
    end = datetime(2026, 5, 1, tzinfo=UTC)
    assert selectors.forecast(Decimal("10"), start=start, end=end, now=start + timedelta(days=3)) == Decimal("100")
    assert selectors.forecast(Decimal("10"), start=start, end=end, now=start + timedelta(minutes=30)) is None


@pytest.mark.parametrize("amount, text", [
    ("0", "$0.00"), ("12.345", "$12.35"), ("1234.5", "$1,234.50"), ("0.48", "$0.48"), ("0.0123", "$0.0123"),
    ("0.0015015", "$0.001502"), ("0.00000001", "< $0.000001"),
])
def test_money_has_two_to_six_decimals(amount, text):
    assert str(Money(Decimal(amount), "USD")) == text


def test_money_in_other_currencies():
    assert str(Money(Decimal("7"), "CNY")) == "¥7.00"
    assert str(Money(Decimal("7"), "CHF")) == "7.00 CHF"
    assert str(Money(None, "USD")) == "unpriced"


# --- Usage explorer, request detail and CSV ---------------------------------------------------------------


def test_usage_filters_totals_and_log(client, org, owner):
    team = TeamFactory(organization=org)
    key = VirtualKeyFactory(organization=org, team=team, name="Team key")
    other = VirtualKeyFactory(organization=org, name="Other key")
    old = ingest(org, key=key, at=timezone.now() - timedelta(days=20), model_name="alpha")
    recent_ok = ingest(org, key=key, model_name="alpha", cost_display="0.25")
    recent_error = ingest(org, key=key, model_name="alpha", status_code=429, cost_display=None)
    ingest(org, key=other, model_name="beta")
    logged_in(client, owner)

    week = client.get(reverse("usage"))
    assert {r["event"].pk for r in week.context["rows"]} >= {recent_ok.pk, recent_error.pk}
    assert old.pk not in {r["event"].pk for r in week.context["rows"]}
    filtered = client.get(reverse("usage"), {"range": "30d", "key": key.pk, "model": "alpha", "status": "errors"})
    assert filtered.status_code == 200 and not filtered.context["form"].errors
    assert [r["event"].pk for r in filtered.context["rows"]] == [recent_error.pk]
    totals = filtered.context["summary"]["totals"]
    assert (totals["requests"], totals["errors"]) == (3, 1)  # rollups: the status filter is for the log only
    assert filtered.context["summary"]["hourly"] is False
    by_team = client.get(reverse("usage"), {"range": "24h", "team": team.pk})
    assert by_team.context["summary"]["hourly"] is True and by_team.context["summary"]["totals"]["requests"] == 2
    html = html_of(by_team)
    assert f'href="{reverse("usage_export")}?range=24h&amp;team={team.pk}"' in html


def test_usage_log_pages_without_counting(client, org, owner):
    key = VirtualKeyFactory(organization=org)
    base = timezone.now() - timedelta(hours=1)
    ledger.usage_ingest([usage_record(organization=org, key=key, at=base + timedelta(seconds=n)) for n in range(55)])
    logged_in(client, owner)
    first = client.get(reverse("usage"))
    second = client.get(reverse("usage"), {"page": 2})
    assert len(first.context["rows"]) == 50 and first.context["page"].has_next
    assert len(second.context["rows"]) == 5 and not second.context["page"].has_next
    assert client.get(reverse("usage"), {"page": "x"}).context["page"].number == 1


@pytest.mark.parametrize("params", [
    {"range": "bogus"}, {"range": "custom"}, {"range": "custom", "since": "not-a-date"},
    {"range": "custom", "since": "2026-05-10", "until": "2026-05-01"}, {"range": "custom", "since": "1990-01-01"},
    {"key": "999999"}, {"key": "abc"}, {"team": "-1"}, {"user": "0"}, {"status": "teapot"}, {"model": "x" * 500},
    {"page": "-3"}, {"range": "custom", "since": "2999-01-01"},
])
def test_bad_usage_filters_are_reported_never_500(client, org, owner, params):
    ingest(org)
    logged_in(client, owner)
    response = client.get(reverse("usage"), params)
    assert response.status_code == 200
    assert client.get(reverse("usage_export"), params).status_code == 200


def test_custom_dates_are_days_in_the_org_time_zone(client, org, owner):
    org.time_zone = "Asia/Shanghai"
    org.save()
    inside = ingest(org, at=datetime(2026, 5, 1, 16, 30, tzinfo=UTC))  # May 2, 00:30 in Shanghai
    outside = ingest(org, at=datetime(2026, 5, 1, 15, 30, tzinfo=UTC))  # May 1, 23:30 in Shanghai
    logged_in(client, owner)
    response = client.get(reverse("usage"), {"range": "custom", "since": "2026-05-02", "until": "2026-05-02"})
    assert [r["event"].pk for r in response.context["rows"]] == [inside.pk]
    assert outside.pk not in [r["event"].pk for r in response.context["rows"]]
    assert "00:30:00" in html_of(response)  # shown in the org's time zone


def test_csv_export_is_streamed_and_matches_the_filter(client, org, owner):
    key = VirtualKeyFactory(organization=org, name="=cmd|' /C calc'!A0")  # a name that a spreadsheet would run
    wanted = [ingest(org, key=key, model_name="alpha", status_code=502, cost_display=None) for _ in range(3)]
    ingest(org, key=key, model_name="alpha")
    ingest(org, key=key, model_name="beta", status_code=500)
    logged_in(client, owner)
    response = client.get(reverse("usage_export"), {"model": "alpha", "status": "5xx"})
    assert response.streaming is True
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=\"usage-")
    assert "no-store" in response["Cache-Control"]
    rows = csv_rows(response)
    assert [r["request_id"] for r in rows] == [e.request_id for e in reversed(wanted)]
    assert {(r["model"], r["status"], r["cost"], r["key"]) for r in rows} == {("alpha", "502", "", "'=cmd|' /C calc'!A0")}


def test_csv_export_reads_through_an_iterator(client, org, owner, monkeypatch):
    """The export never materialises the queryset: it walks `.iterator()` in chunks."""
    from django.db.models import QuerySet

    calls = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        calls.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    ingest(org)
    logged_in(client, owner)
    response = client.get(reverse("usage_export"))
    assert calls == []  # nothing read before the response is consumed
    assert len(csv_rows(response)) == 1 and calls == [2000]


def test_csv_export_streams_asynchronously_under_asgi(org, owner):
    ingest(org, model_name="async-model")
    client = AsyncClient()
    client.force_login(owner)

    async def fetch():
        response = await client.get(reverse("usage_export"))
        assert response.streaming and response.is_async  # a sync iterator would be read in full first
        return b"".join([chunk async for chunk in response.streaming_content]).decode("utf-8-sig")

    rows = list(csv.DictReader(io.StringIO(async_to_sync(fetch)())))
    assert [r["model"] for r in rows] == ["async-model"]


def test_csv_export_of_thousands_of_rows_streams_in_bounded_memory(client, org, owner, monkeypatch):
    """4,000 rows arrive one per chunk, in Chinese that Excel reads (BOM), while memory stays at one batch."""
    import tracemalloc

    from billing import usage_views as views

    monkeypatch.setattr(views, "EXPORT_CHUNK", 100)
    key = VirtualKeyFactory(organization=org, name="研发部的密钥")
    now = timezone.now()
    UsageEvent.objects.bulk_create([
        UsageEvent(organization=org, request_id=f"req-bulk-{i:05d}", model_name="通义千问", endpoint="chat", status_code=200,
                   key_id=key.pk, created_at=now - timedelta(seconds=i))
        for i in range(4000)
    ], batch_size=1000)
    logged_in(client, owner)
    response = client.get(reverse("usage_export"))
    tracemalloc.start()
    try:
        stream = iter(response.streaming_content)
        first, second = next(stream), next(stream)
        size, chunks = len(first) + len(second), 2
        for chunk in stream:
            size += len(chunk)
            chunks += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.startswith("\ufefftime,request_id,".encode())
    assert chunks == 4001  # the header, then one chunk per row: nothing is joined in memory
    # Materialised, the 4,000 rows would take several MB; one batch of 100 stays well below the CSV itself.
    assert peak < size, f"peak {peak} bytes while streaming {size} bytes"
    (row,) = csv.DictReader(io.StringIO((first + second).decode("utf-8-sig")))
    assert (row["request_id"], row["model"], row["key"]) == ("req-bulk-00000", "通义千问", "研发部的密钥")


def test_usage_event_detail(client, org, owner):
    credential = ProviderCredentialFactory(organization=org, name="Primary")
    deployment = DeploymentFactory(organization=org, credential=credential, upstream_model="gpt-4o-mini")
    key = VirtualKeyFactory(organization=org, name="Detail key", user=owner)
    event = ingest(org, key=key, deployment_id=deployment.pk, cost_display="0.00042", attempts=2, ttft_ms=87,
                   attempt_trail=[{"deployment": deployment.pk, "status": 503, "error": "upstream_unavailable", "ms": 40},
                                  {"deployment": deployment.pk, "status": 200, "error": "", "ms": 300}, "junk"],
                   cost="0.003", currency="CNY", exchange_rate="0.14", usage_source="estimated")
    logged_in(client, owner)
    response = client.get(reverse("usage_event", args=[event.pk]))
    html = html_of(response)
    assert response.status_code == 200
    for text in (event.request_id, "Detail key", owner.email, "Primary:gpt-4o-mini", "upstream_unavailable", "87 ms",
                 "1 CNY = 0.14 USD", "$0.00042", "¥0.003", "Estimated with an offline tokenizer"):
        assert text in html, text
    assert len(response.context["trail"]) == 2


@pytest.mark.parametrize("query", [
    {"page": "2", "after": "garbage"}, {"page": "2", "after": "1_99999999999999999999999999"},
    {"page": "2", "after": "99999999999999999999999999_1"}, {"before": "-5_-5"}, {"page": "3", "after": "1_2_3"},
    {"before": "1' OR '1'='1"}, {"page": "-4"}, {"page": "99999999999999999999"},
])
def test_hostile_log_cursors_are_ignored_not_errors(client, org, owner, query):
    ingest(org, model_name="alpha")
    logged_in(client, owner)
    response = client.get(reverse("usage"), query)
    assert response.status_code == 200


def test_a_refused_request_without_a_model_shows_a_dash(client, org, owner):
    """The relay records a known key's refused request even when its body named no model."""
    key = VirtualKeyFactory(organization=org, name="Refused key")
    event = ingest(org, key=key, model_name="", status_code=400, error_type="invalid_request_error", prompt_tokens=0,
                   completion_tokens=0, cost_display=None, provider="", upstream_model="", attempts=0)
    ingest(org, key=key, model_name="alpha", cost_display="0.25")
    logged_in(client, owner)
    log = client.get(reverse("usage"))
    assert log.status_code == 200 and event.pk in {r["event"].pk for r in log.context["rows"]}
    assert "<td>—" in html_of(log)
    assert "—" in html_of(client.get(reverse("usage_event", args=[event.pk])))
    overview = client.get(reverse("home"))
    assert overview.status_code == 200
    assert "" not in {m.label for m in overview.context["data"].top_models}


def test_usage_cost_for_the_playground(client, org, owner):
    key = VirtualKeyFactory(organization=org, user=owner)
    event = ingest(org, key=key, cost_display="0.0021", prompt_tokens=12, completion_tokens=34)
    logged_in(client, owner)
    assert client.get(reverse("usage_cost"), {"request_id": "req_unknown"}).json() == {"found": False}
    assert client.get(reverse("usage_cost")).json() == {"found": False}
    data = client.get(reverse("usage_cost"), {"request_id": event.request_id}).json()
    assert data == {
        "found": True, "request_id": event.request_id, "cost": "0.0021", "cost_text": "$0.0021", "currency": "USD",
        "prompt_tokens": 12, "completion_tokens": 34, "usage_source": "provider", "status": 200,
        "url": reverse("usage_event", args=[event.pk]),
    }


# --- Budgets and alert channels ---------------------------------------------------------------------------


def test_budget_create_for_each_scope(client, org, owner, member_of):
    team = TeamFactory(organization=org)
    key = VirtualKeyFactory(organization=org)
    member = member_of(org, Role.MEMBER).user
    logged_in(client, owner)
    base = {"amount": "12.5", "period": "day", "thresholds": "80%，100", "name": ""}
    for scope, target in [("team", team), ("key", key), ("user", member)]:
        # Targets of other scopes are ignored: only the chosen scope's counts.
        data = {**base, "scope": scope, "team": team.pk, "key": key.pk, "user": member.pk}
        assert client.post(reverse("budget_create"), data).status_code == 302, scope
        budget = Budget.objects.get(organization=org, scope=scope)
        assert getattr(budget, scope) == target and budget.thresholds == [80, 100] and not budget.hard
        assert [b for b in ("team", "key", "user") if getattr(budget, f"{b}_id")] == [scope]
    assert Budget.objects.get(scope="team").amount == Decimal("12.5")


@pytest.mark.parametrize("data, field", [
    ({"scope": "org", "amount": "-5", "period": "month"}, "amount"),
    ({"scope": "org", "amount": "0", "period": "month"}, "amount"),
    ({"scope": "org", "amount": "abc", "period": "month"}, "amount"),
    ({"scope": "org", "amount": "1e30", "period": "month"}, "amount"),
    ({"scope": "org", "amount": "NaN", "period": "month"}, "amount"),
    ({"scope": "org", "amount": "5", "period": "decade"}, "period"),
    ({"scope": "galaxy", "amount": "5", "period": "month"}, "scope"),
    ({"scope": "team", "amount": "5", "period": "month"}, "team"),
    ({"scope": "team", "amount": "5", "period": "month", "team": "999999"}, "team"),
    ({"scope": "org", "amount": "5", "period": "month", "thresholds": "fifty"}, "thresholds"),
    ({"scope": "org", "amount": "5", "period": "month", "thresholds": "0, 2000"}, "thresholds"),
    ({"scope": "org", "amount": "5", "period": "month", "downgrade_model": "nope"}, "downgrade_model"),
])
def test_budget_form_errors(client, org, owner, data, field):
    logged_in(client, owner)
    response = client.post(reverse("budget_create"), data)
    assert response.status_code == 400
    assert field in response.context["budget_form"].errors
    assert not Budget.objects.filter(organization=org).exists()


def test_budget_from_another_org_cannot_be_targeted(client, org, other_org, owner):
    foreign_team = TeamFactory(organization=other_org)
    foreign_key = VirtualKeyFactory(organization=other_org)
    logged_in(client, owner)
    for scope, target in [("team", foreign_team.pk), ("key", foreign_key.pk)]:
        response = client.post(reverse("budget_create"), {"scope": scope, scope: target, "amount": "5", "period": "month"})
        assert response.status_code == 400 and scope in response.context["budget_form"].errors
    assert not Budget.objects.exists()


def test_budget_edit_errors(client, org, owner):
    budget = BudgetFactory(organization=org, amount=Decimal("10"))
    logged_in(client, owner)
    response = client.post(reverse("budget_edit", args=[budget.pk]), {"amount": "-1", "period": "month"})
    assert response.status_code == 400 and "amount" in response.context["form"].errors
    budget.refresh_from_db()
    assert budget.amount == Decimal("10")


def test_webhook_secret_is_shown_once(client, org, owner):
    logged_in(client, owner)
    response = client.post(reverse("channel_create"), {"name": "Receiver", "kind": "webhook", "target": "https://hooks.example.com/t"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in html_of(response)
    assert "It will not be shown again" in html_of(response)
    channel = AlertChannel.objects.get(name="Receiver")
    assert secret not in html_of(client.get(reverse("budgets"))) and secret not in html_of(client.get(reverse("channel_edit", args=[channel.pk])))
    rotated = client.post(reverse("channel_rotate", args=[channel.pk]))
    assert rotated.status_code == 200 and rotated.context["secret"] not in (secret, None) and "no-store" in rotated["Cache-Control"]
    email = AlertChannelFactory(organization=org)
    assert client.post(reverse("channel_rotate", args=[email.pk])).status_code == 302  # no secret to rotate: a message


def test_bot_urls_are_never_shown_in_full(client, org, owner):
    channel = AlertChannelFactory(organization=org, kind=AlertChannel.Kind.FEISHU, target="https://hooks.example.com/bot/hook/tok-123456")
    logged_in(client, owner)
    for page in (client.get(reverse("budgets")), client.get(reverse("channel_edit", args=[channel.pk]))):
        assert "tok-123456" not in html_of(page) and "https://hooks.example.com/…3456" in html_of(page)
    # An empty URL on edit keeps the stored one.
    assert client.post(reverse("channel_edit", args=[channel.pk]), {"name": "Bot", "target": "", "enabled": "on"}).status_code == 302
    channel.refresh_from_db()
    assert channel.url().endswith("tok-123456") and channel.name == "Bot"


@pytest.mark.parametrize("data, field", [
    ({"name": "Meta", "kind": "webhook", "target": "https://169.254.169.254/latest/meta-data"}, "target"),
    ({"name": "Local", "kind": "webhook", "target": "http://127.0.0.1:8000/hook"}, "target"),
    ({"name": "Plain", "kind": "dingtalk", "target": "not a url"}, "target"),
    ({"name": "Mail", "kind": "email", "target": "not-an-address"}, "target"),
    ({"name": "", "kind": "email", "target": "a@example.com"}, "name"),
    ({"name": "Odd", "kind": "pager", "target": "a@example.com"}, "kind"),
    ({"name": "WeCom", "kind": "wecom", "target": "https://hooks.example.com/x", "secret": "abc"}, "secret"),
])
def test_channel_form_errors(client, org, owner, settings, data, field):
    if "hooks.example.com" not in data["target"]:
        settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []  # nothing is exempt from the private-address check
    logged_in(client, owner)
    response = client.post(reverse("channel_create"), data)
    assert response.status_code == 400
    assert field in response.context["channel_form"].errors
    assert not AlertChannel.objects.exists()


def test_channel_edit_refuses_a_private_url(client, org, owner, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    channel = AlertChannelFactory(organization=org, webhook=True)
    logged_in(client, owner)
    response = client.post(reverse("channel_edit", args=[channel.pk]), {"name": "Hook", "target": "https://169.254.169.254/x", "enabled": "on"})
    assert response.status_code == 400 and "target" in response.context["form"].errors
    channel.refresh_from_db()
    assert channel.url() == "https://hooks.example.com/tollgate"


@pytest.fixture
def dns(monkeypatch, settings):
    """A DNS of our own: names in the table resolve, every other name does not (offline, split DNS)."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    return table


def test_channels_save_without_dns_and_their_url_is_encrypted(client, org, owner, dns):
    logged_in(client, owner)
    url = "https://open.feishu.invalid/open-apis/bot/v2/hook/tok-0123456789abcdef"
    response = client.post(reverse("channel_create"), {"name": "Bot", "kind": "feishu", "target": url})
    assert response.status_code == 302, response.context["channel_form"].errors
    channel = AlertChannel.objects.get(organization=org, name="Bot")
    assert channel.target == "" and "tok-0123456789abcdef" not in channel.url_encrypted and channel.url() == url
    assert channel.url_hint == "https://open.feishu.invalid/…cdef"
    new_url = "https://oapi.dingtalk.invalid/robot/send?access_token=tok-fedcba9876543210"
    response = client.post(reverse("channel_edit", args=[channel.pk]), {"name": "Bot", "target": new_url, "enabled": "on"})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.url() == new_url
    html = html_of(client.get(reverse("budgets")))
    assert "tok-fedcba9876543210" not in html and "https://oapi.dingtalk.invalid/…3210" in html


def test_a_private_address_is_refused_when_connecting_naming_the_allow_list(client, org, owner, dns):
    """Saved without a lookup; the test alert resolves the name, refuses the private address and says why."""
    dns["hooks.corp.example"] = ["10.0.0.5"]
    logged_in(client, owner)
    response = client.post(reverse("channel_create"), {"name": "Corp", "kind": "wecom", "target": "https://hooks.corp.example/send?key=k-123"})
    assert response.status_code == 302
    channel = AlertChannel.objects.get(organization=org, name="Corp")
    html = html_of(client.post(reverse("channel_test", args=[channel.pk]), follow=True))
    assert "hooks.corp.example resolves to 10.0.0.5" in html and "TOLLGATE_EGRESS_ALLOW_HOSTS" in html and "k-123" not in html
    response = client.post(reverse("channel_create"), {"name": "Literal", "kind": "wecom", "target": "https://10.0.0.5/send?key=k-456"})
    assert response.status_code == 400
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in " ".join(response.context["channel_form"].errors["target"])


def test_a_refused_channel_form_keeps_what_was_typed_except_the_url_and_secret(client, org, owner):
    logged_in(client, owner)
    response = client.post(reverse("channel_create"), {
        "name": "", "kind": "dingtalk", "target": "https://hooks.example.com/robot/send?access_token=tok-typed-1", "secret": "SECtyped-2",
    })
    assert response.status_code == 400
    form = response.context["channel_form"]
    assert "name" in form.errors
    assert form["target"].errors == ["Re-enter the URL: it carries a token and is never sent back to the browser."]
    assert form["secret"].errors == ["Re-enter the signing secret: it is never sent back to the browser."]
    html = html_of(response)
    assert "tok-typed-1" not in html and "SECtyped-2" not in html and '<option value="dingtalk" selected' in html
    # Email addresses are no secret: kept as typed.
    response = client.post(reverse("channel_create"), {"name": "", "kind": "email", "target": "ops@example.com"})
    assert response.status_code == 400 and 'value="ops@example.com"' in html_of(response)
    assert "Re-enter" not in html_of(response)
    # Editing: a refused new URL is not echoed either.
    channel = AlertChannelFactory(organization=org, kind=AlertChannel.Kind.FEISHU, target="https://hooks.example.com/bot/hook/tok-old")
    response = client.post(reverse("channel_edit", args=[channel.pk]), {
        "name": "", "target": "https://hooks.example.com/bot/hook/tok-new-3", "secret": "", "enabled": "on",
    })
    assert response.status_code == 400 and "tok-new-3" not in html_of(response)
    assert "Re-enter the URL" in " ".join(response.context["form"]["target"].errors)
    channel.refresh_from_db()
    assert channel.url().endswith("tok-old")


def test_send_a_test_alert_and_the_delivery_log(client, org, owner):
    channel = AlertChannelFactory(organization=org, name="Ops mail", target="ops@example.com")
    failed = AlertDeliveryFactory(organization=org, channel=AlertChannelFactory(organization=org, name="Broken hook", webhook=True),
                                  status=AlertDelivery.Status.FAILED, attempts=7, last_status_code=503, last_error="Service unavailable")
    logged_in(client, owner)
    response = client.post(reverse("channel_test", args=[channel.pk]), follow=True)
    assert response.redirect_chain[-1][0].endswith("#deliveries")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    html = html_of(response)
    assert "Test alert sent to Ops mail" in html
    log = response.context["deliveries"].rows
    assert [(d.channel.name, d.status) for d in log] == [("Ops mail", "sent"), ("Broken hook", "failed")]
    assert "503" in html and "Service unavailable" in html and failed.message_id not in html


# --- Estimator and playground -----------------------------------------------------------------------------


@pytest.fixture
def catalog(org):
    openai = ProviderCredentialFactory(organization=org, provider="openai")
    moonshot = ProviderCredentialFactory(organization=org, provider="moonshot-cn")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="fast"), credential=openai, upstream_model="est-fast")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="kimi"), credential=moonshot, upstream_model="est-kimi")
    ModelFactory(organization=org, name="bare")
    PriceFactory(organization=org, provider="openai", upstream_model="est-fast", input_per_m=Decimal("0.15"), output_per_m=Decimal("0.60"))
    PriceFactory(organization=org, provider="moonshot-cn", upstream_model="est-kimi", currency="CNY", input_per_m=Decimal("2"), output_per_m=Decimal("10"))
    ExchangeRateFactory(organization=org, currency="CNY", rate=Decimal("0.14"))
    return org


def test_estimator_side_by_side(client, catalog, member_of):
    logged_in(client, member_of(catalog, Role.VIEWER).user)
    response = client.post(reverse("estimator"), {"documents": "1000", "average_size": "2000", "size_unit": "tokens",
                                                  "expected_output_tokens": "300", "models": ["fast", "kimi", "bare"]})
    assert response.status_code == 200
    rows = {r["model"]: r for r in response.context["rows"]}
    assert str(rows["fast"]["cost_display"]) == "$0.48" and rows["fast"]["input_tokens"] == 2_000_000
    assert str(rows["kimi"]["cost"]) == "¥7.00" and str(rows["kimi"]["cost_display"]) == "$0.98" and rows["kimi"]["exchange_rate"] == "0.14"
    assert rows["bare"]["missing"] == "deployment" and rows["bare"]["cost_display"] is None
    assert rows["fast"]["cheapest"] and not rows["kimi"]["cheapest"]
    html = html_of(response)
    assert "1 CNY = 0.14 USD" in html and "no deployment" in html


def test_estimator_text_and_file(client, catalog, owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    logged_in(client, owner)
    text = client.post(reverse("estimator"), {"text": "Hello there", "size_unit": "tokens", "expected_output_tokens": "10", "models": ["fast"]})
    assert text.status_code == 200 and text.context["result"].input_source == "text"
    upload = SimpleUploadedFile("job.txt", "你好，世界".encode(), content_type="text/plain")
    file = client.post(reverse("estimator"), {"file": upload, "size_unit": "tokens", "expected_output_tokens": "10", "models": ["fast"]})
    assert file.status_code == 200 and file.context["result"].input_tokens > 0


@pytest.mark.parametrize("data, field", [
    ({"expected_output_tokens": "10", "models": ["fast"]}, None),
    ({"text": "hi", "documents": "3", "average_size": "10", "expected_output_tokens": "10", "models": ["fast"]}, None),
    ({"documents": "3", "expected_output_tokens": "10", "models": ["fast"]}, "average_size"),
    ({"documents": "-3", "average_size": "10", "expected_output_tokens": "10", "models": ["fast"]}, "documents"),
    ({"text": "hi", "expected_output_tokens": "-1", "models": ["fast"]}, "expected_output_tokens"),
    ({"text": "hi", "expected_output_tokens": "10", "models": []}, "models"),
    ({"text": "hi", "expected_output_tokens": "10", "models": ["not-ours"]}, "models"),
])
def test_estimator_form_errors(client, catalog, owner, data, field):
    logged_in(client, owner)
    response = client.post(reverse("estimator"), {"size_unit": "tokens", **data})
    assert response.status_code == 400 and response.context["result"] is None
    errors = response.context["form"].errors
    assert (field in errors) if field else ("__all__" in errors)


def test_playground_never_submits_the_secret(client, catalog, owner):
    VirtualKeyFactory(organization=catalog, user=owner, name="Playground key")
    logged_in(client, owner)
    html = html_of(client.get(reverse("playground")))
    form = re.search(r"<form[^>]*data-playground.*?</form>", html, re.S).group(0)
    assert 'type="password" id="pg-secret"' in form
    assert not re.search(r"<(input|select|textarea)[^>]*\bname=", form), "no control of the playground has a name"
    assert 'data-api-url="/v1/chat/completions"' in form and f'data-cost-url="{reverse("usage_cost")}"' in form
    assert "Playground key" in html and ">fast<" in form and ">kimi<" in form


# --- Escaping, CSP ----------------------------------------------------------------------------------------


def test_hostile_names_are_escaped(client, org, owner):
    team = TeamFactory(organization=org, name=HOSTILE)
    key = VirtualKeyFactory(organization=org, team=team, user=owner, name=HOSTILE)
    ModelFactory(organization=org, name=HOSTILE)
    event = ingest(org, key=key, model_name=HOSTILE, error_type=HOSTILE, status_code=400, upstream_model=HOSTILE)
    ingest(org, key=key, model_name=HOSTILE)
    budget = BudgetFactory(organization=org, name=HOSTILE, scope=Budget.Scope.KEY, key=key, downgrade_model=HOSTILE)
    channel = AlertChannelFactory(organization=org, name=HOSTILE)
    AlertDeliveryFactory(organization=org, channel=channel, last_error=HOSTILE)
    logged_in(client, owner)
    pages = {
        "overview": client.get(reverse("home")),
        "usage": client.get(reverse("usage"), {"model": HOSTILE}),
        "usage_event": client.get(reverse("usage_event", args=[event.pk])),
        "budgets": client.get(reverse("budgets")),
        "budget_edit": client.get(reverse("budget_edit", args=[budget.pk])),
        "channel_edit": client.get(reverse("channel_edit", args=[channel.pk])),
        "estimator": client.post(reverse("estimator"), {"text": "x", "size_unit": "tokens", "expected_output_tokens": "1", "models": [HOSTILE]}),
        "playground": client.get(reverse("playground")),
        "budget_error": client.post(reverse("budget_create"), {"name": HOSTILE, "scope": "org", "amount": "-1", "period": "month"}),
    }
    for name, response in pages.items():
        html = html_of(response)
        assert response.status_code in (200, 400), name
        assert HOSTILE not in html, name
        assert ESCAPED in html, name
    assert HOSTILE in json.dumps(csv_rows(client.get(reverse("usage_export"))))  # CSV is data, not markup


def assert_csp_clean(response):
    html = html_of(response)
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    # json_script's <script type="application/json"> is data, never executed.
    assert not re.search(r'<script(?![^>]*\bsrc=)(?![^>]*type="application/json")[^>]*>', html), "inline <script>"
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"<style", html), "<style> element"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_pages_have_no_inline_script_or_style(client, org, owner):
    key = VirtualKeyFactory(organization=org, user=owner)
    event = ingest(org, key=key)
    budget = BudgetFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    AlertDeliveryFactory(organization=org, channel=channel)
    logged_in(client, owner)
    for url in (reverse("home"), reverse("usage"), reverse("usage") + "?range=24h", reverse("usage_event", args=[event.pk]),
                reverse("budgets"), reverse("budget_edit", args=[budget.pk]), reverse("channel_edit", args=[channel.pk]),
                reverse("estimator"), reverse("playground")):
        assert_csp_clean(client.get(url))


def test_many_events_factory_rows_without_rollups_do_not_show_on_the_overview(client, org, owner):
    """The overview reads rollups only: raw events that never reached the rollups are not counted."""
    UsageEventFactory(organization=org, cost_display=Decimal("99"))
    logged_in(client, owner)
    assert str(client.get(reverse("home")).context["data"].spent) == "$0.00"
