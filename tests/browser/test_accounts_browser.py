"""The accounts dashboard in a real browser: sign-up, invitation by email, joining, teams and roles."""

import re

import pytest
from playwright.sync_api import expect

from accounts.models import Membership, Role, Team, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-browser-passphrase-7"
OWNER_EMAIL = "owner@example.com"
COLLEAGUE_EMAIL = "colleague@example.com"


def invitation_link(outbox) -> str:
    assert len(outbox) == 1, [message.subject for message in outbox]
    assert outbox[0].to == [COLLEAGUE_EMAIL]
    return re.search(r"https?://\S+/invitation/\S+/", outbox[0].body).group(0)


def test_signup_invite_accept_team_and_role(live_server, settings, mailoutbox, new_page, console_errors, screenshot):
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    url = live_server.url

    # A new user signs up and lands on the overview of their new organization.
    owner = new_page()
    owner.goto(f"{url}/signup/")
    screenshot(owner, "signup")
    owner.get_by_label("Email").fill(OWNER_EMAIL)
    owner.get_by_label("Your name").fill("Olivia Owner")
    owner.get_by_label("Password", exact=True).fill(PASSWORD)
    owner.get_by_label("Password (again)").fill(PASSWORD)
    owner.get_by_label("Organization name").fill("Acme AI")
    owner.get_by_role("button", name="Sign up").click()
    # Open sign-up: the account logs in once the emailed link is followed (tests/accounts/test_signup.py).
    expect(owner.locator("#signup-sent")).to_contain_text(OWNER_EMAIL)
    (confirmation,) = mailoutbox
    owner.goto(re.search(r"https?://\S+/signup/verify/\S+/", confirmation.body).group(0))
    mailoutbox.clear()
    owner.get_by_label("Email").fill(OWNER_EMAIL)
    owner.get_by_label("Password").fill(PASSWORD)
    owner.get_by_role("button", name="Log in").click()
    expect(owner).to_have_url(f"{url}/")
    expect(owner.locator("h1")).to_have_text("Acme AI")
    screenshot(owner, "home")
    assert Membership.objects.get(user__email=OWNER_EMAIL).role == Role.OWNER

    # They invite a colleague; the link is emailed and shown once, with a copy button.
    owner.get_by_role("link", name="Members").click()
    owner.locator("#invite").get_by_label("Email").fill(COLLEAGUE_EMAIL)
    owner.locator("#invite").get_by_label("Role").select_option(Role.MEMBER)
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.locator("h1")).to_have_text(f"Invitation sent to {COLLEAGUE_EMAIL}")
    link = invitation_link(mailoutbox)
    assert link.startswith(url)
    expect(owner.get_by_label("Invitation link")).to_have_value(link)
    owner.get_by_role("link", name="Back to members").click()
    expect(owner.locator(f'tr[data-invitation="{COLLEAGUE_EMAIL}"]')).to_contain_text("expires in")
    assert link.rsplit("/", 2)[-2] not in owner.content()

    # The colleague opens the link in another browser and creates an account.
    colleague = new_page()
    colleague.goto(link)
    expect(colleague.locator("h1")).to_have_text("Join Acme AI")
    expect(colleague.get_by_label("Email")).to_have_value(COLLEAGUE_EMAIL)
    screenshot(colleague, "invitation-accept")
    colleague.get_by_label("Your name").fill("Carl Colleague")
    colleague.get_by_label("Password", exact=True).fill(PASSWORD)
    colleague.get_by_label("Password (again)").fill(PASSWORD)
    colleague.get_by_role("button", name="Create account and join").click()
    expect(colleague).to_have_url(f"{url}/")
    expect(colleague.locator(".messages")).to_contain_text("You joined Acme AI")
    expect(colleague.get_by_role("link", name="Audit log")).to_have_count(0)  # a member does not see it
    carl = User.objects.get(email=COLLEAGUE_EMAIL)
    assert Membership.objects.get(user=carl).role == Role.MEMBER

    # The owner creates a team.
    owner.get_by_role("link", name="Teams").click()
    owner.get_by_label("Team name").fill("Platform")
    owner.get_by_role("button", name="Create team").click()
    expect(owner.locator(".messages")).to_contain_text("Team Platform created")
    expect(owner.locator('tr[data-team="Platform"]')).to_be_visible()
    screenshot(owner, "teams")
    platform = Team.objects.get(name="Platform")

    # The owner makes the colleague an admin and puts them in the team.
    owner.get_by_role("link", name="Members").click()
    row = owner.locator(f'tr[data-member="{COLLEAGUE_EMAIL}"]')
    row.locator("select[name=role]").select_option(Role.ADMIN)
    row.get_by_role("button", name="Change").click()
    expect(owner.locator(".messages")).to_contain_text("Carl Colleague is now Admin")
    row = owner.locator(f'tr[data-member="{COLLEAGUE_EMAIL}"]')
    row.get_by_text("Edit teams").click()
    row.get_by_label("Platform").check()
    row.get_by_role("button", name="Save teams").click()
    expect(owner.locator(".messages")).to_contain_text("Teams of Carl Colleague saved")
    expect(owner.locator(f'tr[data-member="{COLLEAGUE_EMAIL}"] .chip')).to_have_text("Platform")
    screenshot(owner, "members")
    membership = Membership.objects.get(user=carl)
    assert membership.role == Role.ADMIN and list(membership.teams.all()) == [platform]

    # The colleague, now an admin, sees the management pages.
    colleague.reload()
    colleague.get_by_role("link", name="Audit log").click()
    expect(colleague.locator("#audit-table")).to_contain_text("Member role changed")
    screenshot(colleague, "audit-log")

    owner.get_by_role("link", name="Settings").click()
    expect(owner.get_by_label("Display currency")).to_have_value("USD")
    screenshot(owner, "org-settings")

    # The language switch submits itself (app.js) and Django remembers the choice.
    owner.locator("#lang-select").select_option("zh-hans")
    expect(owner.locator("html")).to_have_attribute("lang", "zh-hans")

    # Logging out is a POST from the nav.
    owner.locator("form[action='/logout/'] button").click()
    expect(owner).to_have_url(re.compile(r"/login/"))
    screenshot(owner, "login")

    assert console_errors == []


def test_invitation_link_copied_resent_and_revoked(live_server, settings, mailoutbox, new_page, console_errors, screenshot):
    """An inviter whose email does not arrive copies the link; a lost link is replaced; an invitation is withdrawn."""
    settings.TOLLGATE_PUBLIC_URL = live_server.url
    url = live_server.url
    owner = User.objects.create_user(email=OWNER_EMAIL, password=PASSWORD, name="Olivia Owner")
    from accounts.services import organization_create

    organization_create(name="Acme AI", owner=owner)
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(OWNER_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{url}/")

    page.goto(f"{url}/members/")
    page.locator("#invite").get_by_label("Email").fill(COLLEAGUE_EMAIL)
    page.get_by_role("button", name="Send invitation").click()
    first = invitation_link(mailoutbox)
    expect(page.get_by_label("Invitation link")).to_have_value(first)
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == first
    screenshot(page, "invitation-link")

    # Resend: a new link, shown once again; the old one stops working.
    page.get_by_role("link", name="Back to members").click()
    page.locator(f'tr[data-invitation="{COLLEAGUE_EMAIL}"]').get_by_role("button", name="Resend").click()
    expect(page.locator("h1")).to_have_text(f"New invitation link for {COLLEAGUE_EMAIL}")
    assert len(mailoutbox) == 2
    second = re.search(r"https?://\S+/invitation/\S+/", mailoutbox[1].body).group(0)
    assert second != first
    expect(page.get_by_label("Invitation link")).to_have_value(second)
    expect(page.locator("#invitation-link")).to_contain_text("The previous link no longer works")

    invitee = new_page()
    invitee.goto(first)
    expect(invitee.locator("body")).to_contain_text("This invitation link is not valid")
    invitee.goto(second)
    expect(invitee.locator("h1")).to_have_text("Join Acme AI")

    # Revoke: gone from the list, and the link stops working.
    page.get_by_role("link", name="Back to members").click()
    page.locator(f'tr[data-invitation="{COLLEAGUE_EMAIL}"]').get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text(f"Invitation for {COLLEAGUE_EMAIL} revoked")
    expect(page.locator(f'tr[data-invitation="{COLLEAGUE_EMAIL}"]')).to_have_count(0)
    invitee.goto(second)
    expect(invitee.locator("body")).to_contain_text("This invitation link is not valid")

    page.get_by_role("link", name="Audit log").click()
    for action in ("invitation.create", "invitation.resend", "invitation.revoke"):
        expect(page.locator(f'#audit-table td[title="{action}"]').first).to_be_visible()  # the code; the cell reads as words

    # The same page in Simplified Chinese.
    page.goto(f"{url}/members/")
    expect(page.locator("html")).to_have_class("js")  # app.js submits the language switch
    page.locator("#lang-select").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.locator("#invite input[name=email]").fill("zh@example.com")
    page.locator("#invite button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("已向 zh@example.com 发送邀请")
    expect(page.locator("#invitation-link button[data-copy]")).to_have_text("复制链接")
    screenshot(page, "invitation-link-zh")
    # This page was rendered from a POST to a POST-only URL: the switch goes home, not to a 405.
    page.locator("#lang-select").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(f"{url}/")
    assert [e for e in console_errors if "404" not in e] == []  # the void links answer 404 by design
