"""The flagship end-to-end run, in headless Chromium against one live ASGI server (config.asgi: the
dashboard and /v1 on the same port): log in, add the demo provider, a model and a key, read the secret
once, call /v1 with the official openai SDK (one call streamed), see that spend on the overview chart,
set a hard budget and watch its bar move until the SDK is refused with 429 budget_exceeded, export the
request log as CSV (one row per request made), switch to 简体中文.

Works embedded (SQLite, usage flushed by the relay's local sink) and with PostgreSQL + Redis (usage
drained from the Redis stream into the ledger, as the Celery job does).
"""

import csv
import importlib
import json
from decimal import Decimal

import openai
import pytest
from django.apps import apps as django_apps
from django.db.models import Sum
from django.utils import translation
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from billing.models import Budget, UsageEvent, UsageRollup
from billing.money import Money
from keys.models import Deployment, ProviderCredential, VirtualKey
from tests.browser.checks import assert_labelled, chart_state
from tests.gateway import drain_usage, wait_for

pytestmark = [pytest.mark.browser]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "e2e-owner@example.com"
ORG_NAME = "E2E Labs"
MODEL = "e2e-demo"
UPSTREAM_MODEL = "tollgate-demo"  # the demo provider's seeded price: $1 / $2 per million tokens
BUDGET = Decimal("0.01")
MICRO = Decimal("0.000001")

# About 600 tokens of ordinary text: each call costs a visible share of the budget.
LONG_PROMPT = " ".join(["Summarise the quarterly spend of every team and flag the models that cost the most."] * 40)


@pytest.fixture(autouse=True)
def _patient_expect():
    """A loaded machine (parallel suites) can take longer than expect's 5 s default to render a page."""
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def e2e(transactional_db, relay_server, settings):
    """An owner with a password in an empty organization, the seeded price book, a fresh relay."""
    settings.TOLLGATE_PUBLIC_URL = relay_server.url
    # The seeded global prices come from a data migration; a transactional test before this one flushed them.
    importlib.import_module("billing.migrations.0003_seed_prices").load(django_apps, None)
    if relay_server.relay.runtime is not None:
        relay_server.relay.runtime.key_throttle.reset()  # every test calls from 127.0.0.1
    org = Organization.objects.create(name=ORG_NAME, slug="e2e-labs", currency="USD")
    user = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Erin End-to-end")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    return org


def bar_value(page, budget_name) -> int:
    bar = page.locator(f'tr[data-budget="{budget_name}"] progress.budget-bar')
    expect(bar).to_be_visible()
    return int(bar.get_attribute("value"))


def bar_percent(spent) -> int:
    """The <progress> value the page draws for BUDGET: the share used to 0.1%, whole percent, capped at 100."""
    return int(min((spent * 100 / BUDGET).quantize(Decimal("0.1")), Decimal(100)))


def land_usage(org, request_ids) -> None:
    """Wait until every request made is in the ledger (events) and counted in the rollups."""

    def landed():
        drain_usage()  # Redis mode: stream -> ledger; embedded: the relay's local sink writes on its own
        events = UsageEvent.objects.filter(organization=org, request_id__in=request_ids).count()
        counted = UsageRollup.objects.filter(organization=org, grain=UsageRollup.Grain.DAY).aggregate(n=Sum("requests"))["n"] or 0
        return events == len(request_ids) and counted == UsageEvent.objects.filter(organization=org).count()

    wait_for(landed, timeout=20, interval=0.1)


def ledger_spend(org) -> Decimal:
    return UsageEvent.objects.filter(organization=org).aggregate(total=Sum("cost_display"))["total"] or Decimal(0)


def chat(client, request_ids, content, **kwargs):
    """One non-streamed call; its request id (x-request-id) is kept."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": content}], **kwargs)
    request_ids.append(raw.headers["x-request-id"])
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("This is Tollgate's demo model")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    return completion


def test_end_to_end_key_call_spend_budget_csv_chinese(e2e, relay_server, new_page, console_errors, screenshot):
    url, org = relay_server.url, e2e
    page = new_page()

    # Log in.
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    assert_labelled(page)
    screenshot(page, "e2e-login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text(ORG_NAME)
    expect(page.locator("#next-steps")).to_be_visible()  # nothing spent yet
    assert_labelled(page)
    screenshot(page, "e2e-overview-empty")

    # A provider credential from the demo preset (answers in-process, no internet, no API key).
    page.get_by_role("link", name="Providers").click()
    add = page.locator("#add-credential")
    add.get_by_label("Provider").select_option("mock")
    expect(add.get_by_label("API key")).to_be_hidden()
    add.get_by_label("Name").fill("Demo provider")
    assert_labelled(page)
    add.get_by_role("button", name="Add credential").click()
    expect(page.locator(".messages")).to_contain_text("Credential Demo provider added")
    expect(page.locator('tr[data-credential="Demo provider"]')).to_be_visible()
    assert ProviderCredential.objects.get(organization=org, name="Demo provider").provider == "mock"
    screenshot(page, "e2e-providers")

    # A model with one deployment on it, at the priced demo upstream model.
    page.get_by_role("link", name="Models").click()
    create = page.locator("#create-model")
    create.get_by_label("Name").fill(MODEL)
    create.get_by_role("button", name="Create model").click()
    expect(page.locator(".messages")).to_contain_text(f"Model {MODEL} created")
    card = page.locator(f'section[data-model="{MODEL}"]')
    card.get_by_label("Credential").select_option(label="Demo provider")
    card.get_by_label("Model at the provider").fill(UPSTREAM_MODEL)
    assert_labelled(page)
    card.get_by_role("button", name="Add deployment").click()
    expect(page.locator(".messages")).to_contain_text(f"Deployment added to {MODEL}")
    expect(card.locator(f'tr[data-deployment="{UPSTREAM_MODEL}"] .share-value')).to_have_text("100%")
    assert Deployment.objects.get(model__organization=org, model__name=MODEL).upstream_model == UPSTREAM_MODEL
    screenshot(page, "e2e-models")

    # A key limited to that model; its secret is on the page once.
    page.get_by_role("link", name="Keys").click()
    form = page.locator("#create-key")
    form.get_by_label("Name", exact=True).fill("E2E key")
    form.get_by_label(MODEL).check()
    assert_labelled(page)
    form.get_by_role("button", name="Create key").click()
    expect(page.locator("h1")).to_have_text("Key E2E key created")
    expect(page.locator("#secret-once")).to_contain_text("It will not be shown again")
    secret = page.get_by_label("Secret key").input_value()
    assert secret.startswith("tg-")
    expect(page.locator("#sdk-snippet pre")).to_contain_text(f'base_url="{url}/v1"')
    assert_labelled(page)
    screenshot(page, "e2e-key-secret-once")
    page.get_by_role("link", name="I have copied it: go to the key").click()
    expect(page.locator("h1")).to_have_text("E2E key")
    assert secret not in page.content()
    page.get_by_role("link", name="All keys").click()
    key = VirtualKey.objects.get(organization=org, name="E2E key")
    expect(page.locator('tr[data-key="E2E key"]')).to_contain_text(key.prefix)
    assert secret not in page.content()
    assert_labelled(page)
    screenshot(page, "e2e-keys")

    # The official openai SDK through that key, against the same server's /v1: three calls, one streamed.
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=20)
    request_ids: list[str] = []
    chat(client, request_ids, "Hello from the end-to-end test.")
    chat(client, request_ids, "What does a gateway do?", max_tokens=8)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream me a short answer."}], stream=True,
        stream_options={"include_usage": True},
    )
    request_ids.append(raw.headers["x-request-id"])
    chunks = list(raw.parse())
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.startswith("This is Tollgate's demo model") and chunks[-1].usage.completion_tokens > 0
    assert len(set(request_ids)) == 3

    land_usage(org, request_ids)
    spent = ledger_spend(org)
    assert spent > 0, "the demo upstream model is priced: the calls cost money"

    # Overview: the chart is drawn, and its data holds e2e-demo at exactly the ledger's spend.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#next-steps")).to_have_count(0)
    state = chart_state(page, "daily-spend")
    data = json.loads(page.locator("#daily-spend-data").text_content())
    drawn = {d["label"]: d["data"] for d in state["datasets"]}
    assert [d["label"] for d in data["datasets"]] == [MODEL] and drawn == {MODEL: data["datasets"][0]["data"]}
    on_chart = Decimal(str(sum(data["datasets"][0]["data"]))).quantize(MICRO)
    assert on_chart > 0 and on_chart == spent.quantize(MICRO), (on_chart, spent)
    with translation.override("en"):
        expect(page.locator("#stat-spend .stat-value")).to_have_text(str(Money(spent, "USD")))
    expect(page.locator("#stat-requests .stat-value")).to_have_text("3")
    expect(page.locator("#top-models tbody tr").first).to_have_attribute("data-ranked", MODEL)
    expect(page.locator("#budgets")).to_contain_text("No budget applies yet")
    assert_labelled(page)
    screenshot(page, "e2e-overview")

    # A hard budget for the organization: its bar shows the spend so far.
    page.get_by_role("link", name="Budgets", exact=True).click()
    expect(page.locator("h1")).to_have_text("Budgets and alerts")
    form = page.locator("#create-budget")
    form.get_by_label("Scope").select_option("org")
    form.get_by_label("Name").fill("E2E cap")
    form.get_by_label("Amount (USD)").fill(str(BUDGET))
    expect(form.get_by_label("Hard limit")).to_be_checked()
    assert_labelled(page)
    form.get_by_role("button", name="Create budget").click()
    expect(page.locator(".messages")).to_contain_text("Budget E2E cap created")
    budget = Budget.objects.get(organization=org, name="E2E cap")
    assert (budget.amount, budget.hard, budget.scope) == (BUDGET, True, Budget.Scope.ORGANIZATION)
    before = bar_value(page, "E2E cap")
    assert before == bar_percent(spent)
    screenshot(page, "e2e-budgets")

    # More calls through the SDK; on reload the bar has moved.
    for _n in range(2):
        chat(client, request_ids, LONG_PROMPT, max_tokens=16)
    land_usage(org, request_ids)
    page.reload()
    moved = bar_value(page, "E2E cap")
    assert moved > before, (before, moved)
    assert moved == bar_percent(ledger_spend(org))

    # Keep calling until the hard budget refuses: the SDK sees 429 budget_exceeded.
    refused = None
    for _n in range(30):
        try:
            chat(client, request_ids, LONG_PROMPT, max_tokens=16)
        except openai.RateLimitError as error:
            refused = error
            request_ids.append(error.response.headers["x-request-id"])
            break
        land_usage(org, request_ids)  # the ledger (and so a rebuilt counter) keeps up
    assert refused is not None, "the hard budget never refused a request"
    assert refused.status_code == 429 and refused.code == "budget_exceeded", refused
    land_usage(org, request_ids)
    assert ledger_spend(org) <= BUDGET
    page.reload()
    exhausted = bar_value(page, "E2E cap")
    assert exhausted > moved, (moved, exhausted)
    screenshot(page, "e2e-budgets-exhausted")
    page.get_by_role("link", name="Overview").click()
    expect(page.locator('#budgets tr[data-budget="E2E cap"] progress.budget-bar')).to_have_attribute("value", str(exhausted))

    # Usage explorer: the CSV export has one row per request made (the refused ones too), by request id.
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("h1")).to_have_text("Usage")
    chart_state(page, "usage-spend")
    assert_labelled(page)
    screenshot(page, "e2e-usage")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("usage-e2e-labs-") and download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["request_id"] for r in rows) == sorted(request_ids)
    by_id = {r["request_id"]: r for r in rows}
    assert by_id[refused.response.headers["x-request-id"]]["status"] == "429"
    assert {r["model"] for r in rows} == {MODEL}
    assert sum(Decimal(r["cost_display"] or 0) for r in rows) == ledger_spend(org)

    # 简体中文 with the language switch: the overview's navigation is in Chinese, the chart still drawn.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("html")).to_have_class("js")  # app.js binds the auto-submitting switch
    page.locator("#lang-select").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    nav = page.locator(".nav-links")
    for label in ("概览", "用量", "预算", "密钥", "服务商", "模型"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(page.locator("h1")).to_have_text(ORG_NAME)
    chart_state(page, "daily-spend")
    assert_labelled(page)
    screenshot(page, "e2e-overview-zh")

    assert console_errors == []
