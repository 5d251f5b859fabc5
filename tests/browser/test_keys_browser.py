"""Keys, providers and models in a real browser: demo credential, model with a deployment, a key's
secret read once from the page, then revoked. The live server is WSGI only (no /v1), so the secret is
checked against the key lookup the relay uses. Then a model's routing form and its A/B report charts."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.crypto import keyed_hash
from accounts.models import Membership, Organization, Role, User
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from relay.snapshots import key_snapshot_by_hash
from tests.billing.factories import UsageEventFactory
from tests.browser.checks import CANVAS_STATE, assert_labelled
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"


def tab_until(page, locator, limit=60) -> None:
    """Press Tab until `locator` has the focus: it is reachable by keyboard in document order."""
    handle = locator.element_handle()
    for _n in range(limit):
        if page.evaluate("(el) => document.activeElement === el", handle):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"not reachable by Tab: {locator}")


def test_demo_provider_model_key_secret_once_and_revoke(live_server, settings, new_page, console_errors, screenshot):
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    url = live_server.url
    org = Organization.objects.create(name="Acme AI", slug="acme-ai")
    user = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)

    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Acme AI")

    # Providers: add a credential from the demo preset; keys.js shows the preset's default and hides the key field.
    page.get_by_role("link", name="Providers").click()
    expect(page.locator("h1")).to_have_text("Providers")
    add = page.locator("#add-credential")
    add.get_by_label("Provider").select_option("openai")
    expect(add.get_by_label("Base URL")).to_have_attribute("placeholder", "https://api.openai.com/v1")
    expect(add.get_by_label("API key")).to_be_visible()
    expect(add.get_by_label("API version")).to_be_hidden()
    add.get_by_label("Provider").select_option("mock")
    expect(add.get_by_label("Provider").locator("option:checked")).to_contain_text("Demo")
    expect(add.locator("[data-demo-notice]")).to_be_visible()
    expect(add.get_by_label("API key")).to_be_hidden()
    expect(add.get_by_label("Base URL")).to_have_attribute("placeholder", "mock://local")
    add.get_by_label("Name").fill("Local demo")
    assert_labelled(page)
    add.get_by_role("button", name="Add credential").click()
    expect(page.locator(".messages")).to_contain_text("Credential Local demo added")
    row = page.locator('tr[data-credential="Local demo"]')
    expect(row.locator(".badge.demo")).to_have_text("demo")
    assert ProviderCredential.objects.get(organization=org, name="Local demo").provider == "mock"

    # One cheap call through the adapter (the demo answers in-process).
    row.get_by_label("Model at the provider to test Local demo with").fill("demo-upstream")
    row.get_by_role("button", name="Test").click()
    expect(page.locator(".message.success")).to_contain_text("Test of Local demo with demo-upstream: The provider answered")
    assert_labelled(page)
    screenshot(page, "providers-list")

    page.locator('tr[data-credential="Local demo"]').get_by_role("link", name="Edit").click()
    expect(page.locator("h1")).to_have_text("Local demo")
    assert_labelled(page)
    screenshot(page, "providers-edit")

    # Models: create "demo" and give it a deployment on the demo credential.
    page.get_by_role("link", name="Models").click()
    create = page.locator("#create-model")
    create.get_by_label("Name").fill("demo")
    create.get_by_label("Description").fill("Local demo model")
    create.get_by_role("button", name="Create model").click()
    expect(page.locator(".messages")).to_contain_text("Model demo created")
    card = page.locator('section[data-model="demo"]')
    card.get_by_label("Credential").select_option(label="Local demo")
    card.get_by_label("Model at the provider").fill("demo-upstream")
    card.get_by_label("Weight").fill("3")
    assert_labelled(page)
    card.get_by_role("button", name="Add deployment").click()
    expect(page.locator(".messages")).to_contain_text("Deployment added to demo")
    deployment_row = page.locator('section[data-model="demo"] tr[data-deployment="demo-upstream"]')
    expect(deployment_row.locator(".share-value")).to_have_text("100%")
    assert Deployment.objects.get(model__name="demo").weight == 3
    screenshot(page, "models-list")
    deployment_row.get_by_role("link", name="Edit").click()
    assert_labelled(page)
    screenshot(page, "models-deployment-edit")

    # Keys: create one, reachable by keyboard from its name field to its button.
    page.get_by_role("link", name="Keys").click()
    expect(page.locator("#key-list")).to_contain_text("No keys yet")
    form = page.locator("#create-key")
    form.get_by_label("Name", exact=True).fill("Browser key")
    form.get_by_label("demo").check()
    form.get_by_label("Requests per minute").fill("60")
    assert_labelled(page)
    screenshot(page, "keys-empty")
    tab_until(page, form.get_by_role("button", name="Create key"))
    with page.expect_response(re.compile(r"/keys/create/$")) as created:
        page.keyboard.press("Enter")
    assert "no-store" in created.value.headers["cache-control"]
    expect(page.locator("h1")).to_have_text("Key Browser key created")
    expect(page.locator("#secret-once")).to_contain_text("It will not be shown again")
    secret = page.get_by_label("Secret key").input_value()
    assert secret.startswith("tg-")
    copy = page.locator("#secret-once button[data-copy]")
    expect(copy).to_have_text("Copy secret")
    tab_until(page, copy)
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(page.locator("#sdk-snippet pre")).to_contain_text(f'base_url="{url}/v1"')
    expect(page.locator("#sdk-snippet pre")).to_contain_text(f'api_key="{secret}"')
    assert_labelled(page)
    screenshot(page, "keys-secret-once")

    # The secret works (the lookup the relay does); it appears nowhere else.
    assert key_snapshot_by_hash(keyed_hash(secret)) is not None
    page.get_by_role("link", name="I have copied it: go to the key").click()
    expect(page.locator("h1")).to_have_text("Browser key")
    assert secret not in page.content()
    key = VirtualKey.objects.get(name="Browser key")
    expect(page.locator("#sdk-snippet pre")).to_contain_text(f"starting with {key.prefix}")
    assert_labelled(page)
    screenshot(page, "keys-detail")
    page.get_by_role("link", name="All keys").click()
    expect(page.locator('tr[data-key="Browser key"]')).to_contain_text(key.prefix)
    expect(page.locator('tr[data-key="Browser key"] .status')).to_have_text("Active")
    assert secret not in page.content()
    assert_labelled(page)
    screenshot(page, "keys-list")

    # Revoke it (the confirm dialog is accepted by the fixture); it stops working at once.
    page.locator('tr[data-key="Browser key"]').get_by_role("link", name="Browser key").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator(".messages")).to_contain_text("Key Browser key revoked")
    assert key_snapshot_by_hash(keyed_hash(secret)) is None
    page.get_by_label("Status").select_option("revoked")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator('tr[data-key="Browser key"] .status')).to_have_text("Revoked")
    screenshot(page, "keys-revoked")

    assert console_errors == []


# --- Routing form and the A/B report ----------------------------------------------------------------------


def log_in(page, url):
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Acme AI")


def test_routing_form_and_ab_report_charts(live_server, new_page, console_errors, screenshot):
    url = live_server.url
    org = Organization.objects.create(name="Acme AI", slug="acme-ai")
    user = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    cred = ProviderCredentialFactory(organization=org, name="Primary")
    model = ModelFactory(organization=org, name="chat-default", description="A/B of two providers")
    ModelFactory(organization=org, name="chat-backup")
    variants = [
        DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="kimi-k2", name="Kimi", weight=1),
        DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="claude-sonnet", name="Claude", weight=1),
    ]
    now = timezone.now()
    for index, deployment in enumerate(variants):
        for n in range(12):
            UsageEventFactory(
                organization=org, model_name=model.name, deployment_id=deployment.pk, upstream_model=deployment.upstream_model,
                status_code=500 if n == 0 and index else 200, latency_ms=(400 + 40 * n) * (index + 1), ttft_ms=150 + 10 * n,
                prompt_tokens=300 + n, completion_tokens=120, cost_display=Decimal("0.0009") * (3 * index + 1),
                created_at=now - timedelta(hours=n + 1),
            )

    page = new_page()
    log_in(page, url)

    # The routing section: fallbacks added with the "+ name" button, retries and cooldown typed in.
    page.get_by_role("link", name="Models").click()
    card = page.locator('section[data-model="chat-default"]')
    card.get_by_role("link", name="Edit model").click()
    routing = page.locator("#routing")
    expect(routing.locator("h2")).to_have_text("Routing and fallbacks")
    routing.get_by_label("Routing", exact=True).select_option("sticky")
    routing.get_by_role("button", name="+ chat-backup").click()
    expect(routing.get_by_label("Fallback models")).to_have_value("chat-backup")
    routing.get_by_label("Retry on HTTP status").fill("429, 503")
    routing.get_by_label("Max attempts").fill("4")
    routing.get_by_label("Cooldown (s)").fill("60")
    assert_labelled(page)
    screenshot(page, "model-edit-routing")
    page.get_by_role("button", name="Save model").click()
    expect(page.locator(".messages")).to_contain_text("Model chat-default saved")
    expect(card.locator(".fallback-chain")).to_contain_text("chat-backup")
    saved = Model.objects.get(pk=model.pk)
    assert (saved.routing, saved.fallback_models, saved.retry_statuses, saved.max_attempts, saved.cooldown_seconds) == (
        "sticky", ["chat-backup"], [429, 503], 4, 60)

    # The report, from the models list: a table and two drawn charts.
    card.get_by_role("link", name="A/B report").click()
    expect(page.locator("h1")).to_contain_text("A/B comparison of chat-default")
    expect(page.locator("#variant-table tbody tr")).to_have_count(2)
    expect(page.locator("#variant-table tbody tr").first).to_contain_text("Kimi")
    for canvas_id in ("chart-latency", "chart-cost"):
        page.wait_for_function("(id) => window.Chart && window.Chart.getChart(document.getElementById(id))", arg=canvas_id)
    page.wait_for_timeout(400)  # the bars' short entry animation
    latency, cost = page.evaluate(CANVAS_STATE, "chart-latency"), page.evaluate(CANVAS_STATE, "chart-cost")
    for state in (latency, cost):
        assert state["width"] > 100 and state["height"] > 100 and state["drawn"] > 500, state
    assert latency["bars"][0] == [600, 1280] and latency["bars"][1][0] < latency["bars"][1][1]  # p50 Kimi, Claude; p95
    assert cost["bars"][0][1] > cost["bars"][0][0]
    assert_labelled(page)
    screenshot(page, "model-report")

    # The range filter: the custom fields show only for a custom range; a preset reloads the report.
    since = page.get_by_label("From")
    expect(since).to_be_hidden()
    page.get_by_label("Time range").select_option("custom")
    expect(since).to_be_visible()
    page.get_by_label("Time range").select_option("24h")
    expect(since).to_be_hidden()
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_label("Time range")).to_have_value("24h")
    expect(page.locator("#variant-table tbody tr")).to_have_count(2)
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-cost'))")
    assert_labelled(page)

    assert console_errors == []
