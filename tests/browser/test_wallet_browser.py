"""The wallet in Chromium, in English and Simplified Chinese: a member redeems a code and sees the balance;
a wrong code is refused on the form."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Organization, Role, User
from accounts.tenancy import OrgContext
from billing.credit_codes import redemption_codes_generate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"

WORDS = {
    "en": {"email": "Email", "password": "Password", "login": "Log in", "wallet": "Wallet", "code": "Redemption code",
           "redeem": "Redeem", "redemption": "redemption code", "used": "This code has already been redeemed."},
    "zh-hans": {"email": "邮箱", "password": "密码", "login": "登录", "wallet": "钱包", "code": "兑换码",
                "redeem": "兑换", "redemption": "兑换码", "used": "此兑换码已被兑换。"},
}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_member_redeems_a_code_in_the_wallet(live_server, new_page, console_errors, screenshot, language):
    words = WORDS[language]
    org = Organization.objects.create(name="Wallet org", slug=f"wallet-{language}", language=language)
    admin = User.objects.create_user(email="admin@example.com", password=PASSWORD)
    member = User.objects.create_user(email="member@example.com", password=PASSWORD)
    Membership.objects.create(organization=org, user=admin, role=Role.ADMIN)
    Membership.objects.create(organization=org, user=member, role=Role.MEMBER)
    ctx = OrgContext(organization=org, role=Role.ADMIN, user=admin)
    _batch, ((_row, code),) = redemption_codes_generate(actor=ctx, count=1, amount="12.5", expires_at=timezone.now() + timedelta(days=1))

    page = new_page()
    page.set_default_navigation_timeout(60_000)  # the first page of a live server on a busy shared machine
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])
    page.goto(f"{live_server.url}/login/")
    page.get_by_label(words["email"]).fill("member@example.com")
    page.get_by_label(words["password"], exact=True).fill(PASSWORD)
    page.get_by_role("button", name=words["login"]).click()
    page.get_by_role("link", name=words["wallet"], exact=True).click()
    expect(page.locator("h1")).to_have_text(words["wallet"])
    expect(page.locator("[data-balance]")).to_contain_text("0.00")

    page.get_by_label(words["code"]).fill(code)
    page.get_by_role("button", name=words["redeem"], exact=True).click()
    expect(page.locator("[data-balance]")).to_contain_text("12.50")
    expect(page.locator('tr[data-entry="redemption"]')).to_contain_text(words["redemption"])
    screenshot(page, f"wallet-{language}")

    page.get_by_label(words["code"]).fill(code)  # the same code again: refused on the form
    page.get_by_role("button", name=words["redeem"], exact=True).click()
    expect(page.locator("#wallet-redeem")).to_contain_text(words["used"])
    expect(page.locator("[data-balance]")).to_contain_text("12.50")
    # The refused form answers 400 (Chromium logs that status); nothing else may fail.
    assert [e for e in console_errors if not e.endswith("status of 400 (Bad Request)")] == []
