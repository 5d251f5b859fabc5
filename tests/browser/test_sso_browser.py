"""Single sign-on in Chromium, in English and Chinese: an owner connects the test IdP on the settings page, then a
colleague clicks "Sign in with …" on the organization's login page and lands in its dashboard."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from tests.sso.idp import TestIdP

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
TEXT = {
    "en": {
        "email": "Email", "password": "Password", "login": "Log in", "client_id": "Client ID",
        "secret": "Client secret", "issuer": "Issuer URL", "domains": "Allowed email domains",
        "name": "Button name", "save": "Save", "saved": "Single sign-on settings saved.", "nav": "Single sign-on",
        "button": "Sign in with Acme ID", "refused": "only addresses at acme.test can",
    },
    "zh-hans": {
        "email": "邮箱", "password": "密码", "login": "登录", "client_id": "客户端 ID",
        "secret": "客户端密钥", "issuer": "签发者 URL", "domains": "允许的邮箱域名",
        "name": "按钮名称", "save": "保存", "saved": "单点登录设置已保存。", "nav": "单点登录",
        "button": "使用 Acme ID 登录", "refused": "只有 acme.test 的地址可以",
    },
}


@pytest.fixture
def idp():
    server = TestIdP().start()
    yield server
    server.stop()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_sign_in_with_the_company_account(live_server, new_page, console_errors, screenshot, idp, language):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]  # the IdP is on loopback, like an intranet Keycloak
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    text = TEXT[language]
    org = Organization.objects.create(name="Acme AI", slug="acme")
    owner = User.objects.create_user(email="owner@acme.test", password=PASSWORD)
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)

    def page_in_language():
        page = new_page()
        page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
        return page

    # The owner connects the IdP on the settings page.
    admin = page_in_language()
    admin.goto(f"{live_server.url}/login/")
    admin.get_by_label(text["email"]).fill(owner.email)
    admin.get_by_label(text["password"]).fill(PASSWORD)
    admin.get_by_role("button", name=text["login"], exact=True).click()
    admin.get_by_role("link", name=text["nav"]).click()
    admin.get_by_label(text["name"]).fill("Acme ID")
    admin.get_by_label(text["client_id"], exact=True).fill(idp.client_id)
    admin.get_by_label(text["secret"]).fill(idp.client_secret)
    admin.get_by_label(text["issuer"]).fill(idp.issuer)
    admin.get_by_label(text["domains"]).fill("acme.test")
    admin.get_by_role("button", name=text["save"], exact=True).click()
    expect(admin.locator(".messages")).to_contain_text(text["saved"])
    expect(admin.locator("#sso-callback-url")).to_have_text(f"{live_server.url}/accounts/oidc/org-acme/login/callback/")
    screenshot(admin, f"sso-settings-{language}")

    # A colleague signs in with the company account and lands in the organization's dashboard.
    colleague = page_in_language()
    colleague.goto(f"{live_server.url}/sso/acme/")
    screenshot(colleague, f"sso-login-{language}")
    colleague.get_by_role("button", name=text["button"]).click()
    expect(colleague).to_have_url(f"{live_server.url}/")
    expect(colleague.locator("h1")).to_have_text("Acme AI")
    ada = User.objects.get(email="ada@acme.test")
    assert Membership.objects.get(organization=org, user=ada).role == Role.MEMBER

    # Someone from another domain is refused, with the reason, in their language.
    idp.next_user = {"sub": "u-9", "email": "mallory@elsewhere.test", "name": "Mallory"}
    stranger = page_in_language()
    stranger.goto(f"{live_server.url}/login/?org=acme")
    stranger.get_by_role("button", name=text["button"]).click()
    expect(stranger.locator("#sso-refused")).to_contain_text(text["refused"])
    screenshot(stranger, f"sso-refused-{language}")
    assert not User.objects.filter(email="mallory@elsewhere.test").exists()
    # The refusal is a 403 page, which Chromium reports as a failed load: the one console error expected.
    assert [e for e in console_errors if not ("/login/callback/" in e and "status of 403" in e)] == []
