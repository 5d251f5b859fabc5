"""The budget bar in a real browser shows what is reserved (requests in flight, as the shared counter holds it)
beside what is spent, in English and in Chinese; a budget without thresholds says it alerts at none."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from billing import ledger
from billing.models import Budget
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory
from wire.periods import budget_counter

pytestmark = [
    pytest.mark.browser, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="reserved is read from the counters shared through Redis"),
]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"


def test_budget_bar_shows_reserved_and_no_threshold_alerts(live_server, new_page, console_errors, screenshot):
    import redis

    org = Organization.objects.create(name="Acme AI", slug="acme-ai", currency="USD")
    owner = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    key = VirtualKeyFactory(organization=org, user=owner, name="Batch jobs")
    budget = Budget.objects.create(organization=org, name="Key cap", scope="key", key=key, amount=Decimal("1"), period="month",
                                   thresholds=[])
    ledger.usage_ingest([usage_record(organization=org, key=key, at=timezone.now(), cost_display="0.25")])
    counter = budget_counter(budget.pk, budget.period, org.time_zone, timezone.now().timestamp())
    store = redis.Redis.from_url(settings.REDIS_URL)
    store.set(counter, 375_000, ex=120)  # 0.25 spent + 0.125 held by requests in flight
    try:
        page = new_page()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("h1")).to_have_text("Acme AI")
        page.goto(f"{live_server.url}/budgets/")
        row = page.locator('.budgets-table tr[data-budget="Key cap"]')
        expect(row.locator("progress")).to_have_attribute("value", "25")
        expect(row.locator("meter.budget-reserved-bar")).to_have_attribute("value", "37")
        expect(row.locator("meter.budget-reserved-bar")).to_be_visible()
        expect(row).to_contain_text("$0.125 reserved")
        expect(row).to_contain_text("no threshold alerts")
        # The reserved segment shows: wider than the spend bar drawn over it.
        spent_box, reserved_box = row.locator("progress").bounding_box(), row.locator("meter").bounding_box()
        assert spent_box["width"] == reserved_box["width"] and spent_box["y"] == reserved_box["y"]
        screenshot(page, "budgets-reserved")

        expect(page.locator("html")).to_have_class("js")
        page.locator("#lang-select").select_option("zh-hans")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        row = page.locator('.budgets-table tr[data-budget="Key cap"]')
        expect(row).to_contain_text("已预留")
        expect(row).to_contain_text("不发阈值告警")
        screenshot(page, "budgets-reserved-zh")
    finally:
        store.delete(counter)
    assert console_errors == []
