"""Fetch models and the balance on a credential's page in a real browser, in English and Chinese, against
the loopback mock upstream (DeepSeek preset: OpenAI-format /models and /user/balance)."""

from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from keys.models import Deployment
from tests.browser.checks import assert_labelled
from tests.keys.factories import ProviderCredentialFactory
from tests.upstream.catalog_routes import EXPECTED_KEY
from tests.upstream.server import MockUpstream

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
TEXT = {
    "en": {"check": "Check balance now", "fetch": "Fetch models", "create": "Create models from the selection", "low": "low"},
    "zh-hans": {"check": "立即查询余额", "fetch": "获取模型", "create": "从所选项创建模型", "low": "偏低"},
}


@pytest.fixture
def upstream(settings):
    server = MockUpstream().start()
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = [server.host]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    yield server
    server.stop()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_fetch_models_and_balance(live_server, upstream, new_page, console_errors, screenshot, language):
    text, suffix = TEXT[language], "-zh" if language == "zh-hans" else ""
    org = Organization.objects.create(name="Acme AI", slug=f"acme-{language}", language=language)
    email = f"owner-{language}@example.com"
    user = User.objects.create_user(email=email, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    credential = ProviderCredentialFactory(
        organization=org, name="DeepSeek main", provider="deepseek", base_url=f"{upstream.url}/v1", api_key=EXPECTED_KEY,
        low_balance_threshold=Decimal("200"),
    )

    page = new_page()
    page.context.add_cookies([{"name": django_settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page.goto(f"{live_server.url}/login/")
    page.locator("input[name=email], input[type=email]").first.fill(email)
    page.locator("input[type=password]").fill(PASSWORD)
    page.locator("input[type=password]").press("Enter")
    expect(page.locator("h1")).to_have_text("Acme AI")

    page.goto(f"{live_server.url}/providers/{credential.pk}/edit/")
    page.locator("#balance").get_by_role("button", name=text["check"]).click()
    expect(page.locator("#balance [data-balance]")).to_have_text("110.00 CNY")
    expect(page.locator("#balance")).to_contain_text(text["low"])  # below the threshold of 200

    page.locator("#fetch-models").get_by_role("button", name=text["fetch"]).click()
    choices = page.locator("#fetched-models input[type=checkbox]")
    expect(choices).to_have_count(3)
    assert_labelled(page)
    page.locator("#fetched-models").get_by_label("gpt-4o-mini").check()
    page.locator("#fetched-models").get_by_label("text-embedding-3-small").check()
    screenshot(page, f"credential-fetch-models{suffix}")
    page.locator("#fetched-models").get_by_role("button", name=text["create"]).click()
    expect(page.locator(".messages, [role=status], .message").first).to_contain_text("gpt-4o-mini")
    assert sorted(Deployment.objects.filter(credential=credential).values_list("upstream_model", flat=True)) == [
        "gpt-4o-mini", "text-embedding-3-small",
    ]

    page.goto(f"{live_server.url}/providers/")
    row = page.locator('tr[data-credential="DeepSeek main"]')
    expect(row.locator("[data-balance]")).to_have_text("110.00 CNY")
    expect(row).to_contain_text(text["low"])
    screenshot(page, f"providers-balance{suffix}")
    assert console_errors == []


HEALTH_TEXT = {
    "en": {"probe": "Probe now", "title": "Health history", "failed": "failed"},
    "zh-hans": {"probe": "立即探测", "title": "健康记录", "failed": "失败"},
}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_deployment_health_history_chart(live_server, upstream, new_page, console_errors, screenshot, language):
    """The probe history as a chart and a table; a probe run from the page adds a failed point (the
    deployment's model is missing from the provider's list)."""
    from datetime import timedelta

    from django.utils import timezone

    from keys.models import DeploymentProbe
    from tests.keys.factories import DeploymentFactory, ModelFactory

    text, suffix = HEALTH_TEXT[language], "-zh" if language == "zh-hans" else ""
    org = Organization.objects.create(name="Acme AI", slug=f"acme-health-{language}", language=language)
    email = f"health-{language}@example.com"
    user = User.objects.create_user(email=email, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    credential = ProviderCredentialFactory(organization=org, name="Mock", provider="openai", base_url=f"{upstream.url}/v1", api_key=EXPECTED_KEY)
    deployment = DeploymentFactory(organization=org, model=ModelFactory(organization=org), credential=credential,
                                   upstream_model="gpt-unknown", probe="models")
    now = timezone.now()
    for minutes, ok, latency in ((30, True, 120), (25, True, 180), (20, False, 900), (15, True, 150)):
        DeploymentProbe.objects.create(organization=org, deployment=deployment, kind="models", ok=ok, latency_ms=latency,
                                       checked_at=now - timedelta(minutes=minutes), message="history")

    page = new_page()
    page.context.add_cookies([{"name": django_settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page.goto(f"{live_server.url}/login/")
    page.locator("input[name=email], input[type=email]").first.fill(email)
    page.locator("input[type=password]").fill(PASSWORD)
    page.locator("input[type=password]").press("Enter")
    expect(page.locator("h1")).to_have_text("Acme AI")

    page.goto(f"{live_server.url}/deployments/{deployment.pk}/edit/")
    history = page.locator("#probe-history")
    expect(history.locator("h2")).to_have_text(text["title"])
    expect(history.locator("canvas[data-health-chart]")).to_have_attribute("data-chart-ready", "true")
    expect(history.locator("tr[data-probe]")).to_have_count(4)
    history.get_by_role("button", name=text["probe"]).click()
    expect(history.locator("tr[data-probe]")).to_have_count(5)
    expect(history.locator("tr[data-probe]").first).to_contain_text(text["failed"])
    expect(history.locator("canvas[data-health-chart]")).to_have_attribute("data-chart-ready", "true")
    points = page.evaluate("() => Chart.getChart('health-chart').data.datasets[0].data")
    assert points[:4] == [120, 180, 900, 150] and len(points) == 5
    assert_labelled(page)
    screenshot(page, f"deployment-health{suffix}")
    assert console_errors == []
