"""The savings of the response cache, sandbox keys and downgrades in a real browser, in English and
简体中文: the overview's card, a sandbox key's page and the usage log (README "Response cache",
"Sandbox keys")."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from billing import ledger
from tests.billing.factories import usage_record
from tests.browser.checks import assert_labelled
from tests.keys.factories import VirtualKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "saver@example.com"


@pytest.fixture(autouse=True)
def _patient_expect():
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def test_savings_on_the_overview_key_page_and_usage_log(live_server, new_page, console_errors, screenshot):
    org = Organization.objects.create(name="Thrifty AI", slug="thrifty-ai", currency="USD")
    owner = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Sam Saver")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    sandbox = VirtualKeyFactory(organization=org, user=owner, name="Dry run", sandbox=True)
    cached = VirtualKeyFactory(organization=org, user=owner, name="Cached", response_cache=True)
    at = timezone.now() - timedelta(minutes=1)
    ledger.usage_ingest([
        usage_record(organization=org, key=cached, at=at, cost_display="0.40"),
        usage_record(organization=org, key=cached, at=at, cost_display="0", cache_hit=True, would_have_cost="0.40"),
        usage_record(organization=org, key=cached, at=at, cost_display="0", cache_hit=True, would_have_cost="0.40"),
        usage_record(organization=org, key=sandbox, at=at, cost_display="0", sandbox=True, would_have_cost="1.50"),
        usage_record(organization=org, key=cached, at=at, cost_display="0.10", downgraded_from="gpt-big", would_have_cost="0.35"),
    ])
    url = live_server.url
    page = new_page()
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Thrifty AI")

    card = page.locator("#savings")
    expect(card.locator("h2")).to_have_text("Saved this month")
    expect(page.locator("#savings-total")).to_have_text("$2.55")
    expect(page.locator("#saved-cache")).to_contain_text("$0.80")
    expect(page.locator("#saved-cache")).to_contain_text("2 requests answered from the cache")
    expect(page.locator("#saved-sandbox")).to_contain_text("$1.50")
    expect(page.locator("#saved-sandbox")).to_contain_text("1 request answered by the demo model")
    expect(page.locator("#saved-downgrades")).to_contain_text("$0.25")
    assert_labelled(page)
    screenshot(page, "savings-overview")

    page.goto(f"{url}/keys/")
    expect(page.locator("tr", has_text="Dry run").locator(".chip", has_text="sandbox")).to_be_visible()
    expect(page.locator("tr", has_text="Cached").locator(".chip", has_text="sandbox")).to_have_count(0)
    page.goto(f"{url}/keys/{sandbox.pk}/")
    expect(page.locator("#key-sandbox")).to_contain_text("Sandbox key")
    expect(page.get_by_label("Sandbox key")).to_be_checked()
    page.goto(f"{url}/usage/")
    expect(page.get_by_text("would have cost $1.50")).to_be_visible()
    expect(page.locator(".chip", has_text="cache hit")).to_have_count(2)

    # 简体中文
    page.goto(f"{url}/")
    expect(page.locator("html")).to_have_class("js")
    page.locator("#lang-select").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(card.locator("h2")).to_have_text("本月节省")
    expect(page.locator("#saved-cache")).to_contain_text("2 个请求由缓存回答")
    expect(page.locator("#saved-sandbox")).to_contain_text("1 个请求由演示模型回答")
    expect(page.locator("#savings-total")).to_contain_text("2.55")
    screenshot(page, "savings-overview-zh")
    page.goto(f"{url}/keys/{sandbox.pk}/")
    expect(page.locator("#key-sandbox")).to_contain_text("沙盒密钥")
    page.goto(f"{url}/usage/")
    expect(page.get_by_text("本应花费 $1.50")).to_be_visible()
    assert console_errors == []
