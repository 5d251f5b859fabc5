"""Chinese pages in Chromium: characters are drawn with a real CJK font (not boxes), the audit log and the
organization settings read in Chinese, and the screenshots are kept (artifacts/screenshots/*-zh.png).

A font without CJK glyphs draws every character as the same "tofu" box, so two different characters drawn
on a canvas with the page's own font give identical pixels; with `make chromium`'s font they differ.
"""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts import services
from accounts.models import Membership, Organization, Role, User
from tests.keys.factories import VirtualKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
EMAIL = "owner@example.com"

GLYPHS_DIFFER = """
([a, b]) => {
  const font = getComputedStyle(document.body).fontFamily;
  const draw = (text) => {
    const canvas = document.createElement("canvas");
    canvas.width = 64; canvas.height = 64;
    const context = canvas.getContext("2d");
    context.font = `48px ${font}`;
    context.fillText(text, 4, 52);
    return Array.from(context.getImageData(0, 0, 64, 64).data).join(",");
  };
  return {font: font, differ: draw(a) !== draw(b), inked: draw(a) !== draw(" ")};
}
"""


def test_chinese_pages_are_legible(live_server, new_page, console_errors, screenshot):
    org = Organization.objects.create(name="演示组织", slug="demo-zh", language="zh-hans")
    owner = User.objects.create_user(email=EMAIL, password=PASSWORD, name="王经理")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    key = VirtualKeyFactory(organization=org, user=owner, name="研发部的密钥")
    services.audit_record(organization=org, actor=owner, action="key.rotate", target=key)
    services.audit_record(organization=org, actor=owner, action="organization.update", target=org)

    page = new_page()
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("邮箱").fill(EMAIL)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("h1")).to_have_text("演示组织")

    page.goto(f"{live_server.url}/audit/")
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("组织已更改")
    expect(rows.nth(1)).to_contain_text("虚拟密钥已轮换")
    no_font = page.evaluate(GLYPHS_DIFFER, ["\ue000", "\ue001"])  # private-use characters: no font has them
    assert no_font["inked"] and not no_font["differ"], "the box detector must see two missing glyphs as the same box"
    glyphs = page.evaluate(GLYPHS_DIFFER, ["审", "计"])
    assert glyphs["inked"] and glyphs["differ"], f"CJK characters render as boxes with {glyphs['font']}: run `make chromium`"
    screenshot(page, "audit-log-zh")

    page.goto(f"{live_server.url}/settings/")
    expect(page.get_by_label("告警语言")).to_have_value("zh-hans")
    screenshot(page, "org-settings-zh")
    assert not console_errors


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_signup_pages_in_both_languages(live_server, settings, mailoutbox, new_page, console_errors, screenshot, language):
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    suffix = "-zh" if language == "zh-hans" else ""
    page = new_page()
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}])

    settings.TOLLGATE_SIGNUP = "invite"
    page.goto(f"{live_server.url}/signup/")
    expect(page.locator("#signup-invite-only h1")).to_have_text("仅限邀请注册" if suffix else "Sign-up is by invitation")
    expect(page.locator("form input[name=password1]")).to_have_count(0)
    screenshot(page, f"signup-invite-only{suffix}")

    settings.TOLLGATE_SIGNUP = "open"
    page.goto(f"{live_server.url}/signup/")
    page.locator("input[name=email]").fill(f"new-{language}@example.com")
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.locator("input[name=organization_name]").fill("新组织" if suffix else "New org")
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#signup-sent")).to_contain_text(f"new-{language}@example.com")
    screenshot(page, f"signup-sent{suffix}")
    (email,) = mailoutbox
    assert ("确认" in email.subject) is bool(suffix)
    assert Organization.objects.get(memberships__user__email=f"new-{language}@example.com").language == language
    assert not console_errors
