"""What an admin does every day, in a real browser, in English and in Chinese: the price book (a new price
scheduled, its history), exchange rates, org API tokens (a secret copied once, then revoked) and a key's
spend and budget set on the key form. Each page is saved under artifacts/screenshots/ in both languages.
"""

import importlib
import zoneinfo
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from playwright.sync_api import expect

from accounts.crypto import keyed_hash
from accounts.models import ApiToken, Membership, Organization, Role, User
from billing import ledger
from billing.models import Budget, ExchangeRate, Price
from tests.billing.factories import usage_record
from tests.browser.checks import assert_labelled
from tests.keys.factories import VirtualKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-13"
EMAIL = "admin@example.com"


@pytest.fixture(autouse=True)
def _patient_expect():
    """A loaded machine (parallel suites) can take longer than expect's 5 s default to render a page."""
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def acme(db):
    # Transactional tests empty the tables after each test, the seeded price book included: load it again.
    importlib.import_module("billing.migrations.0003_seed_prices").load(django_apps, None)
    org = Organization.objects.create(name="Acme AI", slug="acme-ai", currency="USD", time_zone="Asia/Shanghai")
    admin = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Ada Admin")
    Membership.objects.create(organization=org, user=admin, role=Role.ADMIN)
    return {"org": org, "admin": admin}


def log_in(page, url):
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Acme AI")


def to_chinese(page):
    page.locator("#lang-select").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")


def script_errors(console_errors) -> list[str]:
    """Console errors other than Chromium's note on the 400 status of a refused form (which is expected)."""
    return [e for e in console_errors if "status of 400 (Bad Request)" not in e]


def local_input(moment) -> str:
    return moment.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


def test_prices_and_exchange_rates(live_server, acme, new_page, console_errors, screenshot):
    url, org = live_server.url, acme["org"]
    page = new_page()
    log_in(page, url)

    # The seeded book, per provider: Qiniu's models with their source, DeepSeek's peak-hour window.
    page.get_by_role("link", name="Prices", exact=True).click()
    expect(page.locator("h1")).to_have_text("Prices")
    expect(page.locator('tr[data-price-model="qiniu/minimax/minimax-m2"]')).to_contain_text("CNY")
    expect(page.locator('tr[data-price-model="qiniu/minimax/minimax-m2"] .price-source')).to_contain_text("lobe-chat")
    expect(page.locator('tr[data-price-model="deepseek/deepseek-flash"] .price-window').first).to_contain_text("×2")
    assert_labelled(page)
    screenshot(page, "prices")

    # Only one provider's models.
    page.get_by_label("Provider", exact=True).first.select_option("openai")
    expect(page.locator("table.price-table")).to_have_count(1)
    expect(page.locator('tr[data-price-model="openai/gpt-4o-mini"]')).to_be_visible()

    # A new price for gpt-4o-mini from next week: the seeded one stays in force until then.
    page.locator('tr[data-price-model="openai/gpt-4o-mini"]').get_by_role("link", name="Change").click()
    expect(page.locator("h1")).to_have_text("gpt-4o-mini")
    expect(page.get_by_label("Input per 1M tokens", exact=True)).to_have_value("0.15")
    page.get_by_label("Input per 1M tokens", exact=True).fill("0.12")
    page.get_by_label("Output per 1M tokens").fill("0.48")
    later = timezone.now() + timedelta(days=7)
    page.get_by_label("Effective from").fill(local_input(later))
    page.get_by_label("Source").fill("negotiated rate card 2027")
    assert_labelled(page)
    screenshot(page, "price-edit")
    page.get_by_role("button", name="Save new price").click()
    expect(page.locator(".messages")).to_contain_text("New price for gpt-4o-mini")
    own = Price.objects.get(organization=org, upstream_model="gpt-4o-mini")
    assert (own.input_per_m, own.output_per_m) == (Decimal("0.12"), Decimal("0.48"))
    row = page.locator('tr[data-price-model="openai/gpt-4o-mini"]')
    expect(row).to_contain_text("0.15")  # still in force
    expect(row).to_contain_text("1 scheduled")
    history = page.locator('tr[data-price-history="openai/gpt-4o-mini"] details')
    history.locator("summary").click()
    expect(history.locator(f'tr[data-price-entry="{own.pk}"]')).to_contain_text("scheduled")
    expect(history).to_contain_text("in force")
    screenshot(page, "prices-history")

    # A price back in time is refused on its field, nothing saved.
    page.goto(f"{url}/prices/")
    form = page.locator("#create-price")
    form.get_by_label("Provider", exact=True).select_option("qiniu")
    form.get_by_label("Model at the provider").fill("deepseek-v3")
    form.get_by_label("Currency", exact=True).fill("CNY")
    form.get_by_label("Input per 1M tokens", exact=True).fill("2")
    form.get_by_label("Output per 1M tokens").fill("8")
    form.get_by_label("Effective from").fill(local_input(timezone.now() - timedelta(days=3)))
    form.get_by_role("button", name="Add price").click()
    expect(page.locator("#create-price .has-error")).to_contain_text("cannot start in the past")
    expect(page.get_by_label("Model at the provider")).to_have_value("deepseek-v3")  # what was typed is kept
    page.get_by_label("Effective from").fill("")
    page.get_by_role("button", name="Add price").click()
    expect(page.locator(".messages")).to_contain_text("Price for deepseek-v3 added")
    expect(page.locator('tr[data-price-model="qiniu/deepseek-v3"]')).to_contain_text("own")

    # Exchange rates: CNY now, a new rate scheduled for tomorrow.
    page.get_by_role("link", name="Exchange rates", exact=True).first.click()
    expect(page.locator("h1")).to_have_text("Exchange rates")
    page.get_by_label("Currency", exact=True).fill("CNY")
    page.get_by_label("One unit of the currency in USD").fill("0.14")
    assert_labelled(page)
    page.get_by_role("button", name="Save rate").click()
    expect(page.locator(".messages")).to_contain_text("Rate for CNY saved")
    page.locator('tr[data-rate="CNY"]').get_by_role("link", name="Change").click()
    expect(page.locator("h1")).to_have_text("CNY in USD")
    page.get_by_label("One unit of the currency in USD").fill("0.138")
    page.get_by_label("Effective from").fill(local_input(timezone.now() + timedelta(days=1)))
    screenshot(page, "exchange-rate-edit")
    page.get_by_role("button", name="Save rate").click()
    expect(page.locator('tr[data-rate="CNY"]')).to_have_count(2)
    expect(page.locator("#rates-table")).to_contain_text("scheduled")
    expect(page.locator("#rates-table")).to_contain_text("in force")
    assert list(ExchangeRate.objects.filter(organization=org).order_by("effective_from").values_list("rate", flat=True)) == [
        Decimal("0.14"), Decimal("0.138")]
    screenshot(page, "exchange-rates")

    # The same pages in Chinese, and a rate added there.
    to_chinese(page)
    expect(page.locator("h1")).to_have_text("汇率")
    page.locator("#id_currency").fill("EUR")
    page.locator("#id_rate").fill("1.08")
    page.locator("#create-rate button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("EUR 的汇率已保存")
    screenshot(page, "exchange-rates-zh")
    page.goto(f"{url}/prices/?provider=openai")
    expect(page.locator("h1")).to_have_text("价格")
    expect(page.locator('tr[data-price-model="openai/gpt-4o-mini"]')).to_contain_text("1 个计划中")
    assert_labelled(page)
    screenshot(page, "prices-zh")
    page.locator('tr[data-price-model="openai/gpt-4o-mini"] a.button').click()
    expect(page.locator("#new-price h2")).to_have_text("新价格")
    screenshot(page, "price-edit-zh")
    page.goto(f"{url}/exchange-rates/{ExchangeRate.objects.get(organization=org, currency='CNY', rate=Decimal('0.14')).pk}/edit/")
    expect(page.locator("h1")).to_have_text("CNY 折合 USD")
    screenshot(page, "exchange-rate-edit-zh")
    assert script_errors(console_errors) == []


def test_api_tokens(live_server, acme, new_page, console_errors, screenshot):
    url, org = live_server.url, acme["org"]
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, url)
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("h1")).to_have_text("API tokens")
    expect(page.locator("#token-list")).to_contain_text("No API tokens yet")
    page.get_by_label("Name").fill("Billing export")
    page.get_by_label("Role").select_option("viewer")
    assert_labelled(page)
    screenshot(page, "api-tokens-empty")
    page.get_by_role("button", name="Create token").click()

    # The secret, once, with a copy button that puts it on the clipboard.
    expect(page.locator("h1")).to_have_text("API token Billing export created")
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("tgo_")
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    token = ApiToken.objects.get(organization=org)
    assert token.token_hash == keyed_hash(secret)
    screenshot(page, "api-token-secret")

    # Back to the list: the prefix, never the secret; the token works on the REST API.
    page.get_by_role("link", name="I have copied it: back to the tokens").click()
    row = page.locator('tr[data-token="Billing export"]')
    expect(row).to_contain_text(token.prefix)
    expect(row).to_contain_text("never")
    assert secret not in page.content()
    response = page.request.get(f"{url}/api/org/", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 200 and response.json()["name"] == "Acme AI"
    page.reload()
    expect(row).not_to_contain_text("never")  # last used
    expect(page.locator("#token-audit")).to_contain_text("api_token.create")
    screenshot(page, "api-tokens")

    # Revoked (the confirmation is accepted): it stops working at once.
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("API token Billing export revoked")
    expect(row).to_contain_text("Revoked")
    assert page.request.get(f"{url}/api/org/", headers={"Authorization": f"Bearer {secret}"}).status == 401
    expect(page.locator("#token-audit")).to_contain_text("api_token.revoke")

    # In Chinese: a token made and shown there too.
    to_chinese(page)
    expect(page.locator("h1")).to_have_text("API 令牌")
    page.locator("#id_token-name").fill("部署脚本")
    page.locator("#create-token button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("API 令牌 部署脚本 已创建")
    expect(page.get_by_role("button", name="复制令牌")).to_be_visible()
    screenshot(page, "api-token-secret-zh")
    page.goto(f"{url}/settings/api-tokens/")
    expect(page.locator('tr[data-token="部署脚本"]')).to_contain_text("已启用")
    assert_labelled(page)
    screenshot(page, "api-tokens-zh")
    assert script_errors(console_errors) == []


def test_key_spend_and_budget_on_the_key_form(live_server, acme, new_page, console_errors, screenshot):
    url, org, admin = live_server.url, acme["org"], acme["admin"]
    busy = VirtualKeyFactory(organization=org, user=admin, name="Batch jobs")
    Budget.objects.create(organization=org, scope=Budget.Scope.KEY, key=busy, amount=Decimal("10"), period=Budget.Period.MONTH)
    ledger.usage_ingest([
        usage_record(organization=org, key=busy, model_name="gpt-4o-mini", at=timezone.now() - timedelta(minutes=n), cost_display="2.125")
        for n in range(4)
    ])
    page = new_page()
    log_in(page, url)

    page.get_by_role("link", name="Keys", exact=True).click()
    row = page.locator('tr[data-key="Batch jobs"]')
    expect(row.locator(".key-spent")).to_contain_text("$8.50")
    expect(row.locator(".key-remaining")).to_have_text("$1.50 left of $10.00")
    expect(row.locator("progress.budget-bar")).to_have_class("budget-bar level-warn")

    # A new key with its limits and budget on the one form.
    form = page.locator("#create-key")
    form.get_by_label("Name").fill("Nightly eval")
    form.get_by_label("Requests per minute").fill("30")
    form.get_by_label("Tokens per minute").fill("20000")
    form.get_by_label("Budget (USD)").fill("5")
    form.get_by_label("Budget period").select_option("week")
    form.get_by_label("When the budget is spent").select_option("soft")
    assert_labelled(page)
    screenshot(page, "keys")
    form.get_by_role("button", name="Create key").click()
    expect(page.locator("h1")).to_have_text("Key Nightly eval created")
    budget = Budget.objects.get(organization=org, scope=Budget.Scope.KEY, key__name="Nightly eval")
    assert (budget.amount, budget.period, budget.hard) == (Decimal("5"), "week", False)
    page.get_by_role("link", name="I have copied it: go to the key").click()

    # The detail: spend this week and what is left; the budget changed on the key form.
    expect(page.locator("#key-spend")).to_contain_text("$0.00")
    expect(page.locator("#key-spend")).to_contain_text("this week")
    expect(page.locator("#key-spend .key-remaining")).to_have_text("$5.00 left of $5.00")
    edit = page.locator("#edit-key")
    expect(edit.get_by_label("Budget (USD)")).to_have_value("5")
    edit.get_by_label("Budget (USD)").fill("7.5")
    edit.get_by_label("When the budget is spent").select_option("hard")
    assert_labelled(page)
    edit.get_by_role("button", name="Save key").click()
    expect(page.locator(".messages")).to_contain_text("Key Nightly eval saved")
    expect(page.locator("#key-spend .key-remaining")).to_have_text("$7.50 left of $7.50")
    budget.refresh_from_db()
    assert (budget.amount, budget.hard) == (Decimal("7.5"), True)
    screenshot(page, "key-detail")

    # Bad input keeps what was typed and says why.
    edit.get_by_label("Budget (USD)").fill("-1")
    edit.get_by_role("button", name="Save key").click()
    expect(page.locator("#edit-key .has-error")).to_contain_text("positive amount")
    expect(page.locator("#edit-key").get_by_label("Budget (USD)")).to_have_value("-1")

    # Chinese (switched from a page reached by GET: the switch returns to the URL it was on).
    page.goto(f"{url}/keys/")
    to_chinese(page)
    expect(page.locator('tr[data-key="Batch jobs"] .key-spent')).to_contain_text("本月")
    expect(page.locator('tr[data-key="Batch jobs"] .key-remaining')).to_contain_text("剩余")
    assert_labelled(page)
    screenshot(page, "keys-zh")
    page.goto(f"{url}/keys/{busy.pk}/")
    page.locator("#id_budget-amount").fill("12")
    page.locator("#edit-key button[type=submit]").click()
    expect(page.locator("#key-spend .key-remaining")).to_contain_text("剩余 $3.50")
    assert Budget.objects.get(key=busy).amount == Decimal("12")
    screenshot(page, "key-detail-zh")
    assert script_errors(console_errors) == []
