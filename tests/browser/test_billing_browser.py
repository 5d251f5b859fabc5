"""The billing dashboard in a real browser: the overview chart drawn from rollups, a budget set and its bar
moving, alert channels, the usage explorer and its CSV download, the estimator, the playground, Chinese.

Usage is written through the ledger's own ingest (events plus rollups, as the drain does). The live server
is WSGI only (no /v1), so the playground's two calls to /v1/chat/completions are answered by a Playwright
route, and the costs they show come from the ledger through the dashboard's own JSON view.
"""

import csv
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, Team, User
from billing import ledger, selectors
from billing.models import Budget
from tests.billing.factories import ExchangeRateFactory, PriceFactory, usage_record
from tests.browser.checks import assert_labelled, chart_state
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"
MEMBER_EMAIL = "member@example.com"
SECRET = "tg-playground-0123456789abcdefghijklmnop"
MODELS = ["gpt-4o-mini", "claude-haiku", "deepseek-chat"]


@pytest.fixture(autouse=True)
def _patient_expect():
    """A loaded machine (parallel suites) can take longer than expect's 5 s default to render a page."""
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def log_in(page, url, email):
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Acme AI")


@pytest.fixture
def acme(db):
    """An organization with three priced models, a team, an owner's key and 10 days of usage on 3 models."""
    org = Organization.objects.create(name="Acme AI", slug="acme-ai", currency="USD")
    owner = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    team = Team.objects.create(organization=org, name="Platform")
    key = VirtualKeyFactory(organization=org, user=owner, team=team, name="Batch jobs", secret=SECRET)
    credential = ProviderCredentialFactory(organization=org, name="Primary", provider="openai")
    cny = ProviderCredentialFactory(organization=org, name="DeepSeek", provider="deepseek")
    for name in MODELS:
        model = ModelFactory(organization=org, name=name)
        DeploymentFactory(organization=org, model=model, credential=cny if name == "deepseek-chat" else credential, upstream_model=f"up-{name}")
    PriceFactory(organization=org, provider="openai", upstream_model="up-gpt-4o-mini", input_per_m=Decimal("0.15"), output_per_m=Decimal("0.60"))
    PriceFactory(organization=org, provider="openai", upstream_model="up-claude-haiku", input_per_m=Decimal("0.80"), output_per_m=Decimal("4"))
    PriceFactory(organization=org, provider="deepseek", upstream_model="up-deepseek-chat", currency="CNY", input_per_m=Decimal("2"), output_per_m=Decimal("8"))
    ExchangeRateFactory(organization=org, currency="CNY", rate=Decimal("0.14"))

    now = timezone.now()
    records = []
    for day in range(10):
        for index, name in enumerate(MODELS):
            for n in range(index + 1):
                records.append(usage_record(
                    organization=org, key=key, model_name=name, at=now - timedelta(days=day, minutes=5 + n),
                    cost_display=str(Decimal("0.25") * (index + 1)), status_code=502 if (day, index, n) == (1, 2, 0) else 200,
                    prompt_tokens=400 + 10 * n, completion_tokens=120,
                ))
    ledger.usage_ingest(records)
    return {"org": org, "owner": owner, "team": team, "key": key}


def test_overview_budget_alerts_usage_csv_estimator_playground_chinese(live_server, settings, acme, new_page, console_errors, screenshot):
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["hooks.example.com"]  # no DNS here: counts as public
    url = live_server.url
    org = acme["org"]
    page = new_page()
    log_in(page, url, EMAIL)

    # Overview: the 30-day chart is drawn by Chart.js from the daily rollups, three models stacked.
    state = chart_state(page, "daily-spend")
    assert sorted(state["labels"]) == sorted(MODELS)
    assert round(sum(state["totals"]), 2) == 10 * (0.25 + 2 * 0.5 + 3 * 0.75)
    expect(page.locator("#top-models tbody tr").first).to_have_attribute("data-ranked", "deepseek-chat")
    expect(page.locator("#top-keys")).to_contain_text("Batch jobs")
    expect(page.locator("#top-teams")).to_contain_text("Platform")
    expect(page.locator("#stat-forecast .stat-value")).not_to_have_text("")
    expect(page.locator("#budgets")).to_contain_text("No budget applies yet")
    assert_labelled(page)
    screenshot(page, "overview")

    # Budgets: set one at about 85% of this month's spend; its bar is amber.
    spent = selectors.overview(organization=org, now=timezone.now()).spent.amount
    amount = (spent / Decimal("0.85")).quantize(Decimal("0.01"))
    page.get_by_role("link", name="Budgets", exact=True).click()
    expect(page.locator("h1")).to_have_text("Budgets and alerts")
    form = page.locator("#create-budget")
    expect(form.get_by_label("Team")).to_be_hidden()  # billing.js: only the chosen scope's target
    form.get_by_label("Scope").select_option("team")
    expect(form.get_by_label("Team")).to_be_visible()
    expect(form.get_by_label("Key", exact=True)).to_be_hidden()
    form.get_by_label("Scope").select_option("org")
    form.get_by_label("Name").fill("Monthly cap")
    form.get_by_label("Amount (USD)").fill(str(amount))
    form.get_by_label("Alert thresholds (%)").fill("50, 80, 100")
    assert_labelled(page)
    form.get_by_role("button", name="Create budget").click()
    expect(page.locator(".messages")).to_contain_text("Budget Monthly cap created")
    row = page.locator('#budget-list tr[data-budget="Monthly cap"]')
    expect(row.locator("progress.budget-bar")).to_have_class("budget-bar level-warn")
    expect(row.locator(".budget-percent")).to_have_text("85%")
    assert Budget.objects.get(organization=org, name="Monthly cap").amount == amount
    screenshot(page, "budgets")

    # More spend lands in the ledger: the bar moves to red on the next load, here and on the overview.
    ledger.usage_ingest([usage_record(organization=org, key=acme["key"], model_name="gpt-4o-mini", at=timezone.now(), cost_display=str(amount))])
    page.reload()
    expect(row.locator("progress.budget-bar")).to_have_class("budget-bar level-over")
    expect(row.locator(".status.bad")).to_contain_text("limit reached")
    screenshot(page, "budgets-over")
    page.get_by_role("link", name="Overview").click()
    expect(page.locator('#budgets tr[data-budget="Monthly cap"] progress')).to_have_class("budget-bar level-over")

    # Raising the amount tenfold brings the bar back to green.
    page.get_by_role("link", name="Manage budgets").click()
    row.get_by_role("link", name="Edit").click()
    expect(page.locator("h1")).to_have_text("Monthly cap")
    page.get_by_label("Amount (USD)").fill(str(amount * 10))
    assert_labelled(page)
    screenshot(page, "budgets-edit")
    page.get_by_role("button", name="Save budget").click()
    expect(page.locator(".messages")).to_contain_text("Budget Monthly cap saved")
    expect(row.locator("progress.budget-bar")).to_have_class("budget-bar level-ok")

    # Alert channels: a webhook's signing secret is shown once; an email channel gets a test alert.
    page.get_by_role("link", name="Budgets", exact=True).click()
    channel = page.locator("#create-channel")
    channel.get_by_label("Kind").select_option("webhook")
    channel.get_by_label("Name").fill("Ops webhook")
    channel.get_by_label("Email addresses or URL").fill("https://hooks.example.com/tollgate")
    expect(channel.get_by_label("Bot signing secret")).to_be_visible()
    channel.get_by_role("button", name="Add channel").click()
    expect(page.locator("#secret-once")).to_contain_text("It will not be shown again")
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    assert_labelled(page)
    screenshot(page, "budgets-webhook-secret")
    page.get_by_role("link", name="I have copied it: back to the channels").click()
    assert secret not in page.content()
    channel = page.locator("#create-channel")
    channel.get_by_label("Name").fill("Ops mail")
    channel.get_by_label("Kind").select_option("email")
    expect(channel.get_by_label("Bot signing secret")).to_be_hidden()
    channel.get_by_label("Email addresses or URL").fill("ops@example.com")
    channel.get_by_role("button", name="Add channel").click()
    expect(page.locator(".messages")).to_contain_text("Alert channel Ops mail added")
    page.locator('tr[data-channel="Ops mail"]').get_by_role("button", name="Send a test alert").click()
    expect(page.locator(".messages")).to_contain_text("Test alert sent to Ops mail")
    expect(page.locator('#delivery-table tr[data-delivery="Ops mail"]')).to_contain_text("Sent")
    screenshot(page, "budgets-alerts")

    # Usage explorer: totals and chart, filter by model, one request's detail, CSV of the filtered rows.
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("h1")).to_have_text("Usage")
    chart_state(page, "usage-spend")
    page.get_by_label("Time range").select_option("30d")
    page.get_by_label("Model", exact=True).fill("deepseek-chat")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#usage-table tbody tr")).to_have_count(30)
    assert_labelled(page)
    screenshot(page, "usage")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("usage-acme-ai-") and download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 and {r["model"] for r in rows} == {"deepseek-chat"}
    assert sorted(r["status"] for r in rows).count("502") == 1
    page.locator("#usage-table tbody tr").first.get_by_role("link").click()
    expect(page.locator("#request-cost")).to_contain_text("$0.75")
    expect(page.locator("#request-summary")).to_contain_text("Batch jobs")
    screenshot(page, "usage-detail")

    # Estimator: 1,000 documents of 2,000 tokens on the three models, side by side.
    page.get_by_role("link", name="Estimator").click()
    page.get_by_label("Or a number of documents").fill("1000")
    page.get_by_label("Average document size").fill("2000")
    page.get_by_label("Expected output tokens per request").fill("300")
    for name in MODELS:
        page.get_by_label(name, exact=True).check()
    assert_labelled(page)
    page.get_by_role("button", name="Estimate").click()
    expect(page.locator("#estimate-table tbody tr")).to_have_count(3)
    # gpt-4o-mini: (2000 × 0.15 + 300 × 0.60) / 1e6 × 1000 = $0.48; deepseek: (2000 × 2 + 300 × 8) / 1e6 × 1000 = ¥6.40 = $0.896
    expect(page.locator('#estimate-table tr[data-model="gpt-4o-mini"]')).to_contain_text("$0.48")
    expect(page.locator('#estimate-table tr[data-model="deepseek-chat"]')).to_contain_text("¥6.40")
    expect(page.locator('#estimate-table tr[data-model="deepseek-chat"]')).to_contain_text("$0.896")
    expect(page.locator('#estimate-table tr[data-model="gpt-4o-mini"] .status.ok')).to_have_text("cheapest")
    screenshot(page, "estimator")

    # Playground: two calls from the browser with the pasted key; the ledger's costs are fetched afterwards.
    ledger.usage_ingest([usage_record(organization=org, key=acme["key"], model_name="gpt-4o-mini", at=timezone.now(),
                                      request_id="req_pg_a", cost_display="0.000123", prompt_tokens=11, completion_tokens=22)])
    relayed = []

    def relay(route):
        body = route.request.post_data_json
        relayed.append((route.request.headers.get("authorization"), body))
        side = "a" if body["model"] == "gpt-4o-mini" else "b"
        route.fulfill(status=200, content_type="application/json", headers={"x-request-id": f"req_pg_{side}"}, body=json.dumps({
            "id": f"chatcmpl-{side}", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Answer from {body['model']}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 22 if side == "a" else 33, "total_tokens": 33},
        }))

    dashboard_requests = []
    page.on("request", lambda request: "/v1/" not in request.url and dashboard_requests.append(
        (request.url, request.post_data or "", json.dumps(request.headers))))
    page.route("**/v1/chat/completions", relay)
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Your key's secret").fill(SECRET)
    page.get_by_label("Model A").select_option("gpt-4o-mini")
    page.get_by_label("Model B").select_option("deepseek-chat")
    page.get_by_label("Prompt").fill("Say hello in one word.")
    assert_labelled(page)
    expect(page.locator("form[data-playground]")).to_have_attribute("data-ready", "true")  # billing.js has bound it
    page.get_by_role("button", name="Send to both").click()
    a, b = page.locator('[data-result="a"]'), page.locator('[data-result="b"]')
    expect(a.locator('[data-field="answer"]')).to_have_text("Answer from gpt-4o-mini")
    expect(b.locator('[data-field="answer"]')).to_have_text("Answer from deepseek-chat")
    expect(a.locator('[data-field="tokens"]')).to_have_text("11 / 22")
    expect(b.locator('[data-field="tokens"]')).to_have_text("11 / 33")
    expect(a.locator('[data-field="latency"]')).to_contain_text("ms")
    expect(a.locator('[data-field="cost"] a')).to_have_text("$0.000123")
    expect(b.locator('[data-field="cost"]')).to_have_text("waiting for the ledger…")
    # B's record reaches the ledger a little later; the page picks it up on its next look.
    ledger.usage_ingest([usage_record(organization=org, key=acme["key"], model_name="deepseek-chat", at=timezone.now(),
                                      request_id="req_pg_b", cost_display="0.0042")])
    expect(b.locator('[data-field="cost"] a')).to_have_text("$0.0042")
    expect(b.locator('[data-field="request"]')).to_have_text("req_pg_b")
    assert {auth for auth, _ in relayed} == {f"Bearer {SECRET}"}
    assert sorted(body["model"] for _, body in relayed) == ["deepseek-chat", "gpt-4o-mini"]
    assert not any(SECRET in "".join(entry) for entry in dashboard_requests), "the secret only ever goes to /v1"
    screenshot(page, "playground")

    # 简体中文: the switch submits itself; the overview and its chart still render.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#spend-chart")).to_be_visible()
    expect(page.locator("html")).to_have_class("js")  # app.js runs the switch: wait until it has loaded
    page.locator("#lang-select").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    chart_state(page, "daily-spend")
    expect(page.locator('#budgets tr[data-budget="Monthly cap"] progress')).to_have_class("budget-bar level-ok")
    screenshot(page, "overview-zh")
    page.goto(f"{url}/usage/")
    chart_state(page, "usage-spend")
    screenshot(page, "usage-zh")
    page.goto(f"{url}/budgets/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    screenshot(page, "budgets-zh")

    assert console_errors == []


def test_member_self_service_overview(live_server, acme, new_page, console_errors, screenshot):
    url = live_server.url
    org = acme["org"]
    member = User.objects.create_user(email=MEMBER_EMAIL, password=PASSWORD, name="Max Member")
    Membership.objects.create(organization=org, user=member, role=Role.MEMBER)
    own = VirtualKeyFactory(organization=org, user=member, name="Max's laptop")
    ledger.usage_ingest([
        usage_record(organization=org, key=own, model_name="claude-haiku", at=timezone.now() - timedelta(hours=n), cost_display="0.02")
        for n in range(5)
    ])
    Budget.objects.create(organization=org, name="Max's allowance", scope=Budget.Scope.USER, user=member, amount=Decimal("0.125"),
                          thresholds=[50, 80, 100])

    page = new_page()
    log_in(page, url, MEMBER_EMAIL)
    expect(page.locator("#own-keys")).to_contain_text("Max's laptop")
    expect(page.locator("#stat-spend .stat-value")).to_have_text("$0.10")
    row = page.locator("#budgets tr[data-budget=\"Max's allowance\"]")
    expect(row.locator("progress")).to_have_class("budget-bar level-warn")  # 80%
    expect(row).to_contain_text("$0.025")  # remaining
    expect(page.locator("#top-models tbody tr")).to_have_count(1)
    expect(page.locator("#top-keys")).to_have_count(0)
    state = chart_state(page, "daily-spend")
    assert state["labels"] == ["claude-haiku"]
    assert "Batch jobs" not in page.content()
    screenshot(page, "overview-member")
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("#usage-table tbody tr")).to_have_count(5)
    assert_labelled(page)
    screenshot(page, "usage-member")
    assert console_errors == []
