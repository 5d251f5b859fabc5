"""The breakdown by endpoint in Chromium: the overview's and the usage explorer's cards, in English and in
Chinese, with each endpoint's spend, requests and share bar."""

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from billing.ledger import usage_ingest
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"


@pytest.fixture(autouse=True)
def _patient_expect():
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def acme(db):
    org = Organization.objects.create(name="Acme AI", slug="acme-ai", currency="USD")
    owner = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    key = VirtualKeyFactory(organization=org, user=owner, name="RAG pipeline")
    now = timezone.now()
    usage_ingest([
        usage_record(organization=org, at=now, key=key, model_name="gpt-test", cost_display="3"),
        usage_record(organization=org, at=now, key=key, model_name="rerank-v3.5", endpoint="rerank", cost_display="1", completion_tokens=0),
        usage_record(organization=org, at=now, key=key, model_name="rerank-v3.5", endpoint="rerank", cost_display="1", completion_tokens=0),
    ])
    return org


def _log_in(page, url, email_label="Email", password_label="Password", button="Log in"):
    page.set_default_timeout(45_000)  # a machine loaded by parallel suites can be slow to serve the first page
    page.goto(f"{url}/login/")
    page.get_by_label(email_label).fill(EMAIL)
    page.get_by_label(password_label).fill(PASSWORD)
    page.get_by_role("button", name=button).click()
    expect(page.locator("h1")).to_have_text("Acme AI")


def test_spend_by_endpoint_on_the_overview_and_the_usage_page(live_server, acme, page, console_errors, screenshot):
    _log_in(page, live_server.url)
    card = page.locator("#by-endpoint")
    expect(card.locator("h2")).to_have_text("By endpoint")
    rows = card.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Chat completions")
    expect(rows.nth(0)).to_contain_text("$3.00")
    expect(rows.nth(1)).to_contain_text("Rerank")
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("2")
    assert rows.nth(1).locator("meter").get_attribute("value") == "40"
    page.goto(f"{live_server.url}/usage/")
    explorer = page.locator("#usage-by-endpoint tbody tr")
    expect(explorer).to_have_count(2)
    expect(explorer.nth(1)).to_contain_text("Rerank")
    expect(explorer.nth(1)).to_contain_text("$2.00")
    screenshot(page, "usage-by-endpoint")
    assert not console_errors


def test_the_breakdown_reads_in_chinese(live_server, acme, new_page, console_errors):
    page = new_page()
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    _log_in(page, live_server.url, "邮箱", "密码", "登录")
    card = page.locator("#by-endpoint")
    expect(card.locator("h2")).to_have_text("按接口")
    expect(card.locator("tbody tr").nth(0)).to_contain_text("对话补全")
    expect(card.locator("tbody tr").nth(1)).to_contain_text("重排序")
    page.goto(f"{live_server.url}/usage/")
    expect(page.locator("#usage-by-endpoint h2")).to_have_text("按接口")
    assert not console_errors
