"""The REST API of billing: prices, exchange rates, budgets, usage, the estimator, alert channels and deliveries.

Roles: owners and admins write; members and viewers read configuration; viewers see every request's usage,
members only their own keys'. Another organization's objects are 404s (tests/isolation_cases.py) and its
ids in a body are field errors (here).
"""

import json
import socket
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import AuditLog, Role
from billing.ledger import usage_ingest
from billing.models import AlertChannel, Budget, ExchangeRate, Price
from keys.encryption import decrypt
from tests.accounts.factories import MembershipFactory, TeamFactory, UserFactory
from tests.billing.factories import AlertChannelFactory, AlertDeliveryFactory, BudgetFactory, ExchangeRateFactory, PriceFactory, usage_record
from tests.keys.factories import DeploymentFactory, ModelFactory, VirtualKeyFactory
from wire.periods import period_bounds

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login():
    def make(user):
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def admin_client(login, admin_user):
    return login(admin_user)


@pytest.fixture
def member_client(login, member_user):
    return login(member_user)


@pytest.fixture
def viewer_client(login, viewer_user):
    return login(viewer_user)


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def field_error(response, field):
    error = error_of(response, 400)
    assert field in error["fields"], error
    return error


# Prices


def test_price_book_is_own_entries_plus_the_global_ones_not_overridden(admin_client, org, other_org):
    Price.objects.all().delete()  # the seeded book would fill the page
    PriceFactory(organization=None, upstream_model="shared", input_per_m=Decimal("1"))
    PriceFactory(organization=None, upstream_model="only-global")
    own = PriceFactory(organization=org, upstream_model="shared", input_per_m=Decimal("0.5"))
    PriceFactory(organization=other_org, upstream_model="theirs")

    results = admin_client.get("/api/prices/").json()["results"]
    assert {(p["upstream_model"], p["scope"]) for p in results} == {("shared", "org"), ("only-global", "global")}
    shared = next(p for p in results if p["upstream_model"] == "shared")
    assert (shared["id"], shared["input_per_m"], shared["in_force"]) == (own.pk, "0.5", True)


def test_price_list_filters_and_in_force(member_client, org):
    old = PriceFactory(organization=org, provider="deepseek", upstream_model="ds", effective_from=timezone.now() - timedelta(days=9))
    new = PriceFactory(organization=org, provider="deepseek", upstream_model="ds", effective_from=timezone.now() - timedelta(days=1))
    future = PriceFactory(organization=org, provider="deepseek", upstream_model="ds", effective_from=timezone.now() + timedelta(days=5))
    PriceFactory(organization=org, provider="deepseek", upstream_model="other")

    results = member_client.get("/api/prices/", {"provider": "deepseek", "model": "ds"}).json()["results"]
    assert [(p["id"], p["in_force"]) for p in results] == [(future.pk, False), (new.pk, True), (old.pk, False)]
    assert member_client.get("/api/prices/", {"provider": "nobody"}).json()["count"] == 0


def test_seeded_global_prices_are_listed(viewer_client):
    results = viewer_client.get("/api/prices/", {"provider": "openai", "model": "gpt-4o-mini"}).json()["results"]
    assert results and results[0]["scope"] == "global" and results[0]["currency"] == "USD"


def test_price_detail(viewer_client, org, other_org):
    own = PriceFactory(organization=org, windows=[{"days": [0], "start": "09:00", "end": "12:00", "multiplier": "2"}])
    glob = PriceFactory(organization=None)
    body = viewer_client.get(f"/api/prices/{own.pk}/").json()
    assert body["scope"] == "org" and body["windows"] == [{"days": [0], "start": "09:00", "end": "12:00", "multiplier": "2"}]
    assert viewer_client.get(f"/api/prices/{glob.pk}/").json()["scope"] == "global"
    assert error_of(viewer_client.get(f"/api/prices/{PriceFactory(organization=other_org).pk}/"), 404)["code"] == "not_found"
    assert error_of(viewer_client.get("/api/prices/999999/"), 404)["code"] == "not_found"


PRICE = {
    "provider": "deepseek", "upstream_model": "deepseek-chat", "currency": "usd", "input_per_m": "0.27",
    "cached_input_per_m": "0.07", "output_per_m": 1.1, "time_zone": "Asia/Shanghai",
    "tiers": [{"above_prompt_tokens": 32000, "input": "0.5", "output": "2"}],
    "windows": [{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00", "multiplier": "2"}], "source": "docs",
}


def test_admin_creates_a_price_entry(admin_client, org):
    response = admin_client.post("/api/prices/", PRICE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["scope"], body["currency"], body["output_per_m"], body["in_force"]) == ("org", "USD", "1.1", True)
    assert body["tiers"] == [{"above_prompt_tokens": 32000, "input": "0.5", "cached_input": None, "cache_write": None, "output": "2"}]
    price = Price.objects.get(pk=body["id"])
    assert price.organization == org and price.input_per_m == Decimal("0.27")
    assert AuditLog.objects.filter(organization=org, action="price.create").exists()


def test_a_future_price_is_not_in_force_yet(admin_client):
    later = (timezone.now() + timedelta(days=3)).isoformat()
    body = admin_client.post("/api/prices/", {**PRICE, "effective_from": later}, format="json").json()
    assert body["in_force"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "dollars"}, "currency"),
        ({"input_per_m": "-1"}, "input_per_m"),
        ({"input_per_m": "abc"}, "input_per_m"),
        ({"output_per_m": "0.12345678901"}, "output_per_m"),
        ({"provider": "no-such-provider"}, "provider"),
        ({"upstream_model": ""}, "upstream_model"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"effective_from": "2020-01-01T00:00:00Z"}, "effective_from"),
        ({"effective_from": "not a date"}, "effective_from"),
        ({"tiers": [{"above_prompt_tokens": -1, "input": "1", "output": "1"}]}, "tiers"),
        ({"tiers": "cheap"}, "tiers"),
        ({"windows": [{"days": [7], "start": "09:00", "end": "12:00", "multiplier": "2"}]}, "windows"),
        ({"windows": [{"days": [0], "start": "25:00", "end": "12:00", "multiplier": "2"}]}, "windows"),
        ({"windows": [{"days": [0], "start": "12:00", "end": "09:00", "multiplier": "2"}]}, "windows"),
        ({"windows": [{"days": [0], "start": "09:00", "end": "12:00", "multiplier": "0"}]}, "windows"),
    ],
)
def test_price_validation_is_a_field_error(admin_client, change, field):
    field_error(admin_client.post("/api/prices/", {**PRICE, **change}, format="json"), field)
    assert not Price.objects.filter(upstream_model="deepseek-chat", organization__isnull=False).exists()


def test_only_price_managers_create_prices(member_client, viewer_client):
    for client in (member_client, viewer_client):
        assert error_of(client.post("/api/prices/", PRICE, format="json"), 403)["code"] == "permission_denied"
    assert not Price.objects.filter(upstream_model="deepseek-chat").exists()


def test_prices_are_never_edited_in_place(admin_client, org):
    price = PriceFactory(organization=org)
    for method in ("put", "patch", "delete"):
        assert error_of(getattr(admin_client, method)(f"/api/prices/{price.pk}/", {"input_per_m": "9"}, format="json"), 405)
    assert error_of(admin_client.put("/api/prices/", {}, format="json"), 405)
    assert Price.objects.get(pk=price.pk).input_per_m == Decimal("1")


# Exchange rates


def test_exchange_rates(admin_client, viewer_client, org, other_org):
    ExchangeRateFactory(organization=org, currency="CNY", rate=Decimal("0.13"), effective_from=timezone.now() - timedelta(days=1))
    ExchangeRateFactory(organization=other_org, currency="EUR")
    response = admin_client.post("/api/exchange-rates/", {"currency": "cny", "rate": "0.1400"}, format="json")
    assert response.status_code == 201, response.content
    assert {k: response.json()[k] for k in ("currency", "rate", "to_currency", "in_force")} == {
        "currency": "CNY", "rate": "0.14", "to_currency": "USD", "in_force": True,
    }
    rows = viewer_client.get("/api/exchange-rates/").json()["results"]
    assert [(r["currency"], r["rate"], r["in_force"]) for r in rows] == [("CNY", "0.14", True), ("CNY", "0.13", False)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "CNY", "rate": "abc"}, "rate"),
        ({"currency": "CNY", "rate": "0"}, "rate"),
        ({"currency": "CNY", "rate": "-1"}, "rate"),
        ({"currency": "yuan", "rate": "0.14"}, "currency"),
        ({"currency": "USD", "rate": "1"}, "currency"),
        ({"rate": "1"}, "currency"),
    ],
)
def test_exchange_rate_validation(admin_client, body, field):
    field_error(admin_client.post("/api/exchange-rates/", body, format="json"), field)
    assert not ExchangeRate.objects.exists()


def test_only_org_managers_set_exchange_rates(member_client, viewer_client):
    for client in (member_client, viewer_client):
        assert error_of(client.post("/api/exchange-rates/", {"currency": "CNY", "rate": "0.14"}, format="json"), 403)
        assert client.get("/api/exchange-rates/").status_code == 200
    assert not ExchangeRate.objects.exists()


# Budgets


def test_budget_shows_the_current_period_spend(admin_client, org):
    org.time_zone = "Asia/Shanghai"
    org.save()
    now = timezone.now()
    usage_ingest([usage_record(organization=org, at=now - timedelta(seconds=2), cost_display="12.5"),
                  usage_record(organization=org, at=now - timedelta(seconds=1), cost_display="0.25"),
                  usage_record(organization=org, at=now - timedelta(days=40), cost_display="1000")])
    response = admin_client.post("/api/budgets/", {"scope": "org", "amount": "50", "period": "month", "name": "Monthly"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["spent"], body["percent"], body["amount"], body["currency"]) == ("12.75", "25.5", "50", "USD")
    assert (body["hard"], body["thresholds"], body["team"], body["key"], body["user"]) == (True, [50, 80, 100], None, None, None)
    # The calendar month in Beijing time: it starts at 16:00 UTC on the last day of the previous month.
    start, end = period_bounds("month", "Asia/Shanghai", now)
    assert _instant(body["period_start"]) == start and _instant(body["period_end"]) == end
    assert body["period_start"].endswith("T16:00:00Z")
    assert admin_client.get(f"/api/budgets/{body['id']}/").json()["spent"] == "12.75"


def test_a_total_budget_has_no_period_end(viewer_client, org):
    budget = BudgetFactory(organization=org, period=Budget.Period.TOTAL, amount=Decimal("8"))
    usage_ingest([usage_record(organization=org, at=datetime(2021, 5, 1, tzinfo=UTC), cost_display="2")])
    body = viewer_client.get(f"/api/budgets/{budget.pk}/").json()
    assert (body["spent"], body["percent"], body["period_end"]) == ("2", "25", None)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_budget_scopes_by_id(admin_client, org, member_user):
    team = TeamFactory(organization=org)
    key = VirtualKeyFactory(organization=org, user=member_user)
    made = {}
    for scope, extra in [("team", {"team": team.pk}), ("key", {"key": key.pk}), ("user", {"user": member_user.pk})]:
        response = admin_client.post("/api/budgets/", {"scope": scope, "amount": "10", **extra}, format="json")
        assert response.status_code == 201, response.content
        made[scope] = response.json()
    assert made["team"]["team"] == {"id": team.pk, "name": team.name}
    assert made["key"]["key"] == {"id": key.pk, "name": key.name, "prefix": key.prefix}
    assert made["user"]["user"]["id"] == member_user.pk
    listed = admin_client.get("/api/budgets/", {"scope": "team"}).json()["results"]
    assert [b["id"] for b in listed] == [made["team"]["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "team"}, "team"),
        ({"scope": "org", "team": "__team__"}, "team"),
        ({"scope": "team", "team": "__foreign_team__"}, "team"),
        ({"scope": "key", "key": "__foreign_key__"}, "key"),
        ({"scope": "user", "user": "__foreign_user__"}, "user"),
        ({"scope": "team", "team": 999999}, "team"),
        ({"scope": "galaxy"}, "scope"),
        ({"scope": "org", "amount": "0"}, "amount"),
        ({"scope": "org", "amount": "lots"}, "amount"),
        ({"scope": "org", "period": "fortnight"}, "period"),
        ({"scope": "org", "thresholds": [0]}, "thresholds"),
        ({"scope": "org", "thresholds": "50"}, "thresholds"),
    ],
)
def test_budget_validation_and_foreign_ids_are_field_errors(admin_client, org, other_org, body, field):
    ids = {
        "__team__": TeamFactory(organization=org).pk,
        "__foreign_team__": TeamFactory(organization=other_org).pk,
        "__foreign_key__": VirtualKeyFactory(organization=other_org).pk,
        "__foreign_user__": MembershipFactory(organization=other_org).user.pk,
    }
    body = {"amount": "10", **{k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}}
    field_error(admin_client.post("/api/budgets/", body, format="json"), field)
    assert not Budget.objects.exists()


def test_budget_update_and_delete(admin_client, org):
    budget = BudgetFactory(organization=org, amount=Decimal("100"))
    response = admin_client.patch(f"/api/budgets/{budget.pk}/", {"amount": "250.5", "hard": False, "thresholds": [90, 75]}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["amount"], response.json()["hard"], response.json()["thresholds"]) == ("250.5", False, [75, 90])
    field_error(admin_client.patch(f"/api/budgets/{budget.pk}/", {"amount": "-3"}, format="json"), "amount")
    assert admin_client.delete(f"/api/budgets/{budget.pk}/").status_code == 204
    assert not Budget.objects.filter(pk=budget.pk).exists()


def test_members_and_viewers_read_budgets_but_cannot_write(member_client, viewer_client, org):
    budget = BudgetFactory(organization=org)
    for client in (member_client, viewer_client):
        assert client.get("/api/budgets/").json()["count"] == 1
        assert client.get(f"/api/budgets/{budget.pk}/").status_code == 200
        assert error_of(client.post("/api/budgets/", {"scope": "org", "amount": "1"}, format="json"), 403)
        assert error_of(client.patch(f"/api/budgets/{budget.pk}/", {"amount": "1"}, format="json"), 403)
        assert error_of(client.delete(f"/api/budgets/{budget.pk}/"), 403)
    assert Budget.objects.get(pk=budget.pk).amount == Decimal("100")


def test_budgets_of_another_org_are_not_listed(admin_client, other_org):
    BudgetFactory(organization=other_org)
    assert admin_client.get("/api/budgets/").json()["count"] == 0


# Usage


@pytest.fixture
def usage(org, other_org, admin_user, member_user):
    """Two days of traffic: the member's key and the admin's key, plus another organization's."""
    team = TeamFactory(organization=org, name="Research")
    mine = VirtualKeyFactory(organization=org, user=member_user, team=team, name="member-key")
    mine_too = VirtualKeyFactory(organization=org, user=member_user, name="member-key-2")
    theirs = VirtualKeyFactory(organization=org, user=admin_user, name="admin-key")
    deployment = DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="gpt-test"))
    day1, day2 = datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 11, 15, tzinfo=UTC)
    usage_ingest([
        usage_record(organization=org, at=day1, key=mine, cost_display="1.5", deployment_id=deployment.pk),
        usage_record(organization=org, at=day2, key=mine, cost_display="0.25", model_name="cheap"),
        usage_record(organization=org, at=day2, key=mine_too, cost_display="0.125"),
        usage_record(organization=org, at=day2, key=mine, status_code=502, prompt_tokens=0, completion_tokens=0, cost_display=None),
        usage_record(organization=org, at=day1, key=theirs, cost_display="10", prompt_tokens=1000),
        usage_record(organization=org, at=day2, key=theirs, cost_display=None),  # unpriced
        usage_record(organization=other_org, at=day1, cost_display="999"),
    ])
    return {"team": team, "mine": mine, "mine_too": mine_too, "theirs": theirs, "deployment": deployment}


RANGE = {"since": "2026-03-01", "until": "2026-04-01"}


def test_viewer_sees_all_usage_by_day(viewer_client, usage):
    body = viewer_client.get("/api/usage/", {**RANGE, "group_by": "day"}).json()
    assert [(r["group"], r["requests"], r["cost"]) for r in body["results"]] == [
        ("2026-03-10T00:00:00Z", 2, "11.5"), ("2026-03-11T00:00:00Z", 4, "0.375"),
    ]
    totals = body["totals"]
    assert (totals["requests"], totals["errors"], totals["cost"], totals["unpriced"]) == (6, 1, "11.875", 1)
    assert totals["prompt_tokens"] == 100 + 100 + 100 + 0 + 1000 + 100
    assert (body["currency"], body["group_by"]) == ("USD", "day")


def test_member_sees_only_their_own_keys_usage(member_client, usage):
    body = member_client.get("/api/usage/", {**RANGE, "group_by": "key"}).json()
    assert {r["label"]: (r["requests"], r["cost"]) for r in body["results"]} == {
        "member-key": (3, "1.75"), "member-key-2": (1, "0.125"),
    }
    assert (body["totals"]["requests"], body["totals"]["cost"]) == (4, "1.875")
    # Asking for someone else's key gives nothing rather than their usage.
    other = member_client.get("/api/usage/", {**RANGE, "key": usage["theirs"].pk}).json()
    assert other["results"] == [] and other["totals"]["requests"] == 0
    own = member_client.get("/api/usage/", {**RANGE, "key": usage["mine_too"].pk}).json()
    assert own["totals"]["requests"] == 1


def test_member_sees_only_their_own_events(member_client, usage):
    events = member_client.get("/api/usage/events/", RANGE).json()
    assert events["count"] == 4
    assert {e["key_id"] for e in events["results"]} == {usage["mine"].pk, usage["mine_too"].pk}
    assert member_client.get("/api/usage/events/", {"key": usage["theirs"].pk}).json()["count"] == 0


def test_a_member_token_without_a_person_sees_no_usage(org, usage, member_user):
    token, secret = account_services.api_token_create(organization=org, name="m", role=Role.MEMBER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/usage/", RANGE).json()["totals"]["requests"] == 0
    assert client.get("/api/usage/events/", RANGE).json()["count"] == 0


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("model", {"cheap": 1, "gpt-test": 5}),
        ("team", {"Research": 3, None: 3}),
        ("deployment", {"__deployment__": 1, None: 5}),
    ],
)
def test_usage_groups_with_labels(admin_client, usage, group_by, expected):
    results = admin_client.get("/api/usage/", {**RANGE, "group_by": group_by}).json()["results"]
    label = (lambda r: r["group"]) if group_by == "model" else (lambda r: r["label"])
    expected = {str(usage["deployment"]) if k == "__deployment__" else k: v for k, v in expected.items()}
    assert {label(r): r["requests"] for r in results} == expected


def test_usage_by_user_and_filters(admin_client, usage, member_user, admin_user):
    by_user = admin_client.get("/api/usage/", {**RANGE, "group_by": "user"}).json()["results"]
    assert {r["label"]: r["requests"] for r in by_user} == {member_user.email: 4, admin_user.email: 2}
    filtered = admin_client.get("/api/usage/", {**RANGE, "model": "cheap"}).json()
    assert filtered["totals"]["requests"] == 1
    assert admin_client.get("/api/usage/", {**RANGE, "team": usage["team"].pk}).json()["totals"]["requests"] == 3


def test_short_ranges_use_hourly_buckets(admin_client, usage):
    body = admin_client.get("/api/usage/", {"since": "2026-03-11T00:00:00Z", "until": "2026-03-12T00:00:00Z"}).json()
    assert [(r["group"], r["requests"]) for r in body["results"]] == [("2026-03-11T15:00:00Z", 4)]


def test_dates_mean_midnight_in_the_org_time_zone(admin_client, org, usage):
    org.time_zone = "Asia/Shanghai"
    org.save()
    body = admin_client.get("/api/usage/", {"since": "2026-03-11", "until": "2026-03-12"}).json()
    assert body["since"] == "2026-03-10T16:00:00Z"
    assert body["totals"]["requests"] == 4  # 2026-03-11 15:00 UTC is in; 2026-03-10 09:00 UTC is not


def test_usage_of_another_org_is_never_counted(admin_client, usage):
    body = admin_client.get("/api/usage/", RANGE).json()
    assert body["totals"]["requests"] == 6 and "999" not in json.dumps(body)
    assert admin_client.get("/api/usage/events/", RANGE).json()["count"] == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-03-10", "until": "2026-03-01"}, "until"),
        ({"since": "2999-01-01"}, "since"),
        ({"group_by": "planet"}, "group_by"),
        ({"key": "abc"}, "key"),
        ({"team": "0"}, "team"),
    ],
)
def test_bad_usage_queries_are_field_errors(admin_client, params, field):
    field_error(admin_client.get("/api/usage/", params), field)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "soon"}, "since"), ({"status": "600"}, "status"), ({"errors_only": "perhaps"}, "errors_only"), ({"user": "-1"}, "user")],
)
def test_bad_event_queries_are_field_errors(admin_client, params, field):
    field_error(admin_client.get("/api/usage/events/", params), field)


def test_the_request_log(viewer_client, usage):
    body = viewer_client.get("/api/usage/events/", {**RANGE, "page_size": 2}).json()
    assert body["count"] == 6 and len(body["results"]) == 2 and body["next"]
    event = body["results"][0]
    assert "2026-03-11" in event["created_at"]
    assert not {"prompt", "messages", "input", "output", "content", "body"} & set(event), "no content in the ledger"
    errors = viewer_client.get("/api/usage/events/", {"errors_only": "true"}).json()["results"]
    assert [(e["status_code"], e["cost"]) for e in errors] == [(502, None)]
    assert viewer_client.get("/api/usage/events/", {"status": 502}).json()["count"] == 1
    by_key = viewer_client.get("/api/usage/events/", {"key": usage["theirs"].pk}).json()["results"]
    assert sorted((e["cost_display"] or "-") for e in by_key) == ["-", "10"]
    assert viewer_client.get("/api/usage/events/", {"since": "2026-03-11"}).json()["count"] == 4


# The estimator (the numbers are checked in test_estimator.py)


@pytest.fixture
def priced_model(org):
    deployment = DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="fast"), upstream_model="api-fast")
    PriceFactory(organization=org, upstream_model="api-fast", input_per_m=Decimal("1"), output_per_m=Decimal("2"))
    return deployment


def test_estimate_json(member_client, priced_model):
    response = member_client.post("/api/estimate/", {"documents": 10, "average_document_tokens": 1000,
                                                     "expected_output_tokens": 500, "models": ["fast"]}, format="json")
    assert response.status_code == 200, response.content
    model = response.json()["models"][0]
    # (1000 × 1 + 500 × 2) / 1e6 × 10
    assert (model["model"], model["cost"], model["cost_display"], model["unpriced"]) == ("fast", "0.02", "0.02", False)
    assert model["deployment_id"] == priced_model.pk and len(model["deployments"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"models": ["fast"], "expected_output_tokens": 1}, "text"),
        ({"models": ["nope"], "text": "hi", "expected_output_tokens": 1}, "models"),
        ({"models": [], "text": "hi", "expected_output_tokens": 1}, "models"),
        ({"models": ["fast"], "text": "hi"}, "expected_output_tokens"),
        ({"models": ["fast"], "text": "hi", "expected_output_tokens": -1}, "expected_output_tokens"),
        ({"models": ["fast"], "documents": 3, "expected_output_tokens": 1}, "average_document_tokens"),
        ({"models": ["fast"], "text": "hi", "expected_output_tokens": 1, "at": "noon"}, "at"),
    ],
)
def test_estimate_validation(member_client, priced_model, body, field):
    field_error(member_client.post("/api/estimate/", body, format="json"), field)


def test_estimate_upload_limits(member_client, priced_model):
    big = SimpleUploadedFile("big.txt", b"a" * (5 * 1024 * 1024 + 1))
    error = field_error(member_client.post("/api/estimate/", {"file": big, "models": ["fast"], "expected_output_tokens": 1},
                                           format="multipart"), "file")
    assert error["code"] == "too_large"
    both = {"file": SimpleUploadedFile("a.txt", b"hello"), "text": "hi", "models": ["fast"], "expected_output_tokens": 1}
    field_error(member_client.post("/api/estimate/", both, format="multipart"), "file")


def test_estimate_needs_a_member_of_the_org(client, priced_model):
    assert client.post("/api/estimate/", {}, content_type="application/json").status_code in (401, 403)


# Alert channels and deliveries


def test_email_channel_lifecycle(admin_client, org):
    response = admin_client.post("/api/alert-channels/", {"name": "Ops", "kind": "email", "target": "Ops@Example.com, b@example.com"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["target"], body["secret"], body["has_secret"], body["enabled"]) == ("ops@example.com, b@example.com", None, False, True)
    channel_id = body["id"]

    renamed = admin_client.patch(f"/api/alert-channels/{channel_id}/", {"name": "Operations", "enabled": False}, format="json").json()
    assert (renamed["name"], renamed["enabled"]) == ("Operations", False)

    delivery = admin_client.post(f"/api/alert-channels/{channel_id}/test/").json()
    assert (delivery["status"], delivery["attempts"], delivery["channel"]["id"], delivery["alert"]["kind"]) == ("sent", 1, channel_id, "test")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com", "b@example.com"]

    log = admin_client.get("/api/alert-deliveries/").json()["results"]
    assert [d["id"] for d in log] == [delivery["id"]]
    assert admin_client.get("/api/alert-deliveries/", {"status": "failed"}).json()["count"] == 0

    field_error(admin_client.post(f"/api/alert-channels/{channel_id}/rotate-secret/"), "kind")
    assert admin_client.delete(f"/api/alert-channels/{channel_id}/").status_code == 204
    assert not AlertChannel.objects.filter(pk=channel_id).exists()


def test_a_channel_url_is_write_only_stored_encrypted_and_saved_without_dns(admin_client, viewer_client, settings, monkeypatch):
    def getaddrinfo(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    url = "https://oapi.dingtalk.invalid/robot/send?access_token=tok-0123456789abcdef"
    response = admin_client.post("/api/alert-channels/", {"name": "Ding", "kind": "dingtalk", "target": url}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["target"] == "https://oapi.dingtalk.invalid/…cdef" and "tok-0123456789abcdef" not in response.content.decode()
    channel = AlertChannel.objects.get(pk=created["id"])
    assert channel.url() == url and channel.target == "" and "tok-0123456789abcdef" not in channel.url_encrypted
    for client, shown in ((admin_client, True), (viewer_client, False)):  # addresses are for manage_budgets only
        for body in (client.get("/api/alert-channels/").content, client.get(f"/api/alert-channels/{created['id']}/").content):
            assert "tok-0123456789abcdef" not in body.decode() and json.loads(body) and ("…cdef" in body.decode()) is shown

    # What a client read back (the hint) is not a new URL; a new URL replaces the old one.
    response = admin_client.patch(f"/api/alert-channels/{created['id']}/", {"target": created["target"], "name": "Ding 2"}, format="json")
    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.url() == url and channel.name == "Ding 2"
    new_url = "https://oapi.dingtalk.invalid/robot/send?access_token=tok-fedcba9876543210"
    response = admin_client.patch(f"/api/alert-channels/{created['id']}/", {"target": new_url}, format="json")
    assert response.status_code == 200 and response.json()["target"] == "https://oapi.dingtalk.invalid/…3210"
    channel.refresh_from_db()
    assert channel.url() == new_url

    error = field_error(admin_client.post("/api/alert-channels/", {"name": "Meta", "kind": "webhook", "target": "https://169.254.169.254/x"},
                                          format="json"), "target")
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in error["fields"]["target"][0]


def test_webhook_secret_is_shown_on_create_and_rotate_only(admin_client, viewer_client, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["hooks.example.com"]
    response = admin_client.post("/api/alert-channels/", {"name": "Hook", "kind": "webhook", "target": "https://hooks.example.com/t/abc123"},
                                 format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["has_secret"] is True
    assert created["target"] == "https://hooks.example.com/…", "a bot URL's path may carry its token"
    channel = AlertChannel.objects.get(pk=created["id"])
    assert decrypt(channel.secret_encrypted) == created["secret"]

    for client in (admin_client, viewer_client):
        listed = client.get("/api/alert-channels/").json()["results"][0]
        shown = client.get(f"/api/alert-channels/{created['id']}/").json()
        for body in (listed, shown):
            assert "secret" not in body and "abc123" not in json.dumps(body) and created["secret"] not in json.dumps(body)

    rotated = admin_client.post(f"/api/alert-channels/{created['id']}/rotate-secret/").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    field_error(admin_client.patch(f"/api/alert-channels/{created['id']}/", {"secret": "whsec_x"}, format="json"), "secret")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "email", "target": "not-an-email"}, "target"),
        ({"name": "x", "kind": "pager", "target": "a@example.com"}, "kind"),
        ({"name": "", "kind": "email", "target": "a@example.com"}, "name"),
        ({"name": "x", "kind": "webhook", "target": "http://127.0.0.1:9/hook"}, "target"),
        ({"name": "x", "kind": "email", "target": "a@example.com", "secret": "s3cret"}, "secret"),
    ],
)
def test_channel_validation(admin_client, body, field):
    field_error(admin_client.post("/api/alert-channels/", body, format="json"), field)
    assert not AlertChannel.objects.exists()


def test_only_budget_managers_change_channels(member_client, viewer_client, org):
    channel = AlertChannelFactory(organization=org)
    for client in (member_client, viewer_client):
        assert client.get(f"/api/alert-channels/{channel.pk}/").status_code == 200
        assert error_of(client.post("/api/alert-channels/", {"name": "x", "kind": "email", "target": "a@example.com"}, format="json"), 403)
        assert error_of(client.patch(f"/api/alert-channels/{channel.pk}/", {"name": "y"}, format="json"), 403)
        assert error_of(client.delete(f"/api/alert-channels/{channel.pk}/"), 403)
        assert error_of(client.post(f"/api/alert-channels/{channel.pk}/test/"), 403)
        assert error_of(client.post(f"/api/alert-channels/{channel.pk}/rotate-secret/"), 403)
    assert AlertChannel.objects.get(pk=channel.pk).name == channel.name and not mail.outbox


def test_delivery_log_is_per_org_and_filterable(viewer_client, org, other_org):
    mine = AlertDeliveryFactory(organization=org, status="failed", last_status_code=500, last_error="HTTP 500")
    AlertDeliveryFactory(organization=org, status="sent")
    AlertDeliveryFactory(organization=other_org)
    body = viewer_client.get("/api/alert-deliveries/").json()
    assert body["count"] == 2
    failed = viewer_client.get("/api/alert-deliveries/", {"status": "failed", "channel": mine.channel_id}).json()["results"]
    assert [(d["id"], d["last_status_code"], d["last_error"]) for d in failed] == [(mine.pk, 500, "HTTP 500")]
    field_error(viewer_client.get("/api/alert-deliveries/", {"status": "lost"}), "status")


# The Django admin


def test_admin_pages_are_read_only_and_show_no_secrets(org):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_login(operator)
    channel = AlertChannelFactory(organization=org, webhook=True, target="https://hooks.example.com/bot/tok3n-in-path")
    AlertDeliveryFactory(organization=org, channel=channel)
    BudgetFactory(organization=org)
    ExchangeRateFactory(organization=org)
    usage_ingest([usage_record(organization=org, at=timezone.now())])
    for name in ("price", "exchangerate", "usageevent", "usagerollup", "budget", "alertchannel", "alert", "alertdelivery"):
        assert client.get(f"/admin/billing/{name}/").status_code == 200, name
        assert client.get(f"/admin/billing/{name}/add/").status_code == 403, name
    page = client.get(f"/admin/billing/alertchannel/{channel.pk}/change/").content.decode()
    assert "tok3n-in-path" not in page and decrypt(channel.secret_encrypted) not in page and channel.secret_encrypted not in page

    email = AlertChannelFactory(organization=org, target="ops@example.com")
    response = client.post("/admin/billing/alertchannel/", {"action": "send_test", "_selected_action": [email.pk]})
    assert response.status_code == 302 and [m.to for m in mail.outbox] == [["ops@example.com"]]


# The schema


def test_billing_schema(client):
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    paths = schema["paths"]
    for path, methods in {
        "/api/prices/": {"get", "post"},
        "/api/prices/{id}/": {"get"},
        "/api/exchange-rates/": {"get", "post"},
        "/api/budgets/": {"get", "post"},
        "/api/budgets/{id}/": {"get", "patch", "delete"},
        "/api/usage/": {"get"},
        "/api/usage/events/": {"get"},
        "/api/estimate/": {"post"},
        "/api/alert-channels/": {"get", "post"},
        "/api/alert-channels/{id}/": {"get", "patch", "delete"},
        "/api/alert-channels/{id}/rotate-secret/": {"post"},
        "/api/alert-channels/{id}/test/": {"post"},
        "/api/alert-deliveries/": {"get"},
    }.items():
        assert set(paths[path]) - {"parameters"} == methods, path
    assert "never edited in place" in paths["/api/prices/"]["post"]["description"]
    assert {"application/json", "multipart/form-data"} <= set(paths["/api/estimate/"]["post"]["requestBody"]["content"])
    components = schema["components"]["schemas"]
    assert "secret" not in components["AlertChannel"]["properties"]
    assert "secret" in components["AlertChannelWithSecret"]["properties"]
    assert components["Price"]["properties"]["input_per_m"]["type"] == "string"
    assert components["AlertChannelCreate"]["properties"]["secret"].get("writeOnly") is True


def test_usage_since_counts_exactly_the_usage_after_since(admin_client, org):
    """Partial hours at the edges come from the ledger, whole hours and days from the rollups."""
    key = VirtualKeyFactory(organization=org)
    at = lambda day, hour, minute: datetime(2026, 3, day, hour, minute, tzinfo=UTC)  # noqa: E731
    usage_ingest([
        usage_record(organization=org, key=key, at=at(10, 10, 5), cost_display="1"),      # before since
        usage_record(organization=org, key=key, at=at(10, 10, 40), cost_display="0.5"),    # in the first, partial hour
        usage_record(organization=org, key=key, at=at(10, 11, 10), cost_display="0.25"),   # a whole hour
        usage_record(organization=org, key=key, at=at(10, 11, 50), cost_display=None),     # after until (short range)
        usage_record(organization=org, key=key, at=at(12, 9, 0), cost_display="0.125", status_code=500),  # a whole day
        usage_record(organization=org, key=key, at=at(14, 8, 20), cost_display="2"),       # in the last, partial hour
        usage_record(organization=org, key=key, at=at(14, 8, 45), cost_display="4"),       # after until (long range)
    ])
    short = admin_client.get("/api/usage/", {"since": "2026-03-10T10:30:00Z", "until": "2026-03-10T11:30:00Z"}).json()
    assert [(r["group"], r["requests"], r["cost"]) for r in short["results"]] == [
        ("2026-03-10T10:00:00Z", 1, "0.5"), ("2026-03-10T11:00:00Z", 1, "0.25"),
    ]
    inside = admin_client.get("/api/usage/", {"since": "2026-03-10T10:30:00Z", "until": "2026-03-10T10:50:00Z"}).json()
    assert (inside["totals"]["requests"], inside["totals"]["cost"]) == (1, "0.5")  # within one hour: the ledger alone

    long = admin_client.get("/api/usage/", {"since": "2026-03-10T10:30:00Z", "until": "2026-03-14T08:30:00Z"}).json()
    assert [(r["group"], r["requests"], r["cost"]) for r in long["results"]] == [
        ("2026-03-10T00:00:00Z", 3, "0.75"), ("2026-03-12T00:00:00Z", 1, "0.125"), ("2026-03-14T00:00:00Z", 1, "2"),
    ]
    totals = long["totals"]
    assert (totals["requests"], totals["errors"], totals["unpriced"], totals["cost"]) == (5, 1, 1, "2.875")
    by_key = admin_client.get("/api/usage/", {"since": "2026-03-10T10:30:00Z", "until": "2026-03-14T08:30:00Z", "group_by": "key"}).json()
    assert [(r["label"], r["requests"]) for r in by_key["results"]] == [(key.name, 5)]
