"""Saving a provider credential and an alert channel with no DNS, in a real browser.

The server resolves nothing (every name fails, as offline or under split DNS that this server does not
see); saving checks only what needs no lookup, so both are saved. A private address is refused on its
field, naming TOLLGATE_EGRESS_ALLOW_HOSTS, and the refused form keeps what was typed but the key.
"""

import ipaddress
import socket

import pytest
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from billing.models import AlertChannel
from keys import encryption
from keys.models import ProviderCredential
from tests.browser.checks import assert_labelled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"
API_KEY = "sk-offline-0123456789WXYZ"
BOT_TOKEN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture(autouse=True)
def _patient_expect():
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def no_dns(monkeypatch, settings):
    """Names never resolve in the server (the live server runs in this process); IP literals still work."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []


def test_credential_and_channel_save_offline(live_server, settings, no_dns, new_page, console_errors, screenshot):
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    url = live_server.url
    org = Organization.objects.create(name="Acme AI", slug="acme-ai")
    user = User.objects.create_user(email=EMAIL, password=PASSWORD, name="Olivia Owner")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)

    page = new_page()
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Acme AI")

    # A private address: refused on the Base URL field, naming the setting; the rest is kept, the key is not.
    page.goto(f"{url}/providers/")
    add = page.locator("#add-credential")
    add.get_by_label("Provider").select_option("custom")
    add.get_by_label("Name").fill("Intranet LLM")
    add.get_by_label("Base URL").fill("https://10.1.2.3/v1")
    add.get_by_label("API key").fill(API_KEY)
    add.get_by_role("button", name="Add credential").click()
    add = page.locator("#add-credential")
    base_url = add.locator(".field", has=page.get_by_label("Base URL"))
    expect(base_url.locator(".errorlist")).to_contain_text("TOLLGATE_EGRESS_ALLOW_HOSTS")
    expect(add.get_by_label("Name")).to_have_value("Intranet LLM")
    expect(add.get_by_label("Base URL")).to_have_value("https://10.1.2.3/v1")
    expect(add.get_by_label("Provider")).to_have_value("custom")
    expect(add.get_by_label("API key")).to_have_value("")
    expect(add.locator(".field", has=page.get_by_label("API key")).locator(".errorlist")).to_contain_text("Re-enter the API key")
    assert API_KEY not in page.content()
    screenshot(page, "offline-credential-refused")

    # A host that does not resolve is saved: it is checked when Tollgate connects.
    add.get_by_label("Base URL").fill("https://provider.invalid/v1")
    add.get_by_label("API key").fill(API_KEY)
    add.get_by_role("button", name="Add credential").click()
    expect(page.locator(".messages")).to_contain_text("Credential Intranet LLM added")
    expect(page.locator('tr[data-credential="Intranet LLM"]')).to_contain_text("https://provider.invalid/v1")
    # So is a preset with its default base URL, left empty.
    add = page.locator("#add-credential")
    add.get_by_label("Provider").select_option("openai")
    add.get_by_label("Name").fill("OpenAI")
    add.get_by_label("API key").fill(API_KEY)
    add.get_by_role("button", name="Add credential").click()
    expect(page.locator(".messages")).to_contain_text("Credential OpenAI added")
    credential = ProviderCredential.objects.get(organization=org, name="Intranet LLM")
    assert credential.base_url == "https://provider.invalid/v1" and encryption.decrypt(credential.api_key_encrypted) == API_KEY
    assert ProviderCredential.objects.get(organization=org, name="OpenAI").base_url == "https://api.openai.com/v1"

    # An alert channel: a Feishu bot whose host does not resolve here; its URL is stored encrypted, shown by host.
    page.goto(f"{url}/budgets/")
    channel = page.locator("#create-channel")
    channel.get_by_label("Kind").select_option("feishu")
    channel.get_by_label("Name").fill("Ops bot")
    bot_url = f"https://open.feishu.invalid/open-apis/bot/v2/hook/{BOT_TOKEN}"
    channel.get_by_label("Email addresses or URL").fill(bot_url)
    assert_labelled(page)
    channel.get_by_role("button", name="Add channel").click()
    expect(page.locator(".messages")).to_contain_text("Alert channel Ops bot added")
    row = page.locator('tr[data-channel="Ops bot"]')
    expect(row).to_contain_text("https://open.feishu.invalid/…e1f0")
    assert BOT_TOKEN not in page.content()
    saved = AlertChannel.objects.get(organization=org, name="Ops bot")
    assert saved.url() == bot_url and BOT_TOKEN not in saved.url_encrypted
    screenshot(page, "offline-channel-saved")

    # Sending to it now fails clearly, without the token.
    row.get_by_role("button", name="Send a test alert").click()
    expect(page.locator(".messages")).to_contain_text("open.feishu.invalid does not resolve")
    assert BOT_TOKEN not in page.content()
    # The refused form was answered 400 on purpose; nothing else went wrong in the page.
    assert [e for e in console_errors if not e.endswith("status of 400 (Bad Request)")] == []
