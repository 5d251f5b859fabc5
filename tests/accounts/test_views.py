"""The accounts dashboard through Django's test client: auth, tenancy, the role matrix, invitations."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import AuditLog, Invitation, Membership, Organization, Role, Team, User
from accounts.tenancy import SESSION_ORG_KEY, OrgContext
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.conftest import PASSWORD

NEW_PASSWORD = "a-much-longer-passphrase-42"
HOSTILE = "<script>alert(1)</script>"


def logged_in(client, user):
    client.force_login(user)
    return client


def invite(org, email="new.person@example.com", role=Role.MEMBER, team=None):
    """An invitation made by a fresh owner of `org`; returns (invitation, token)."""
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    return services.invitation_create(actor=OrgContext(organization=org, role=Role.OWNER, user=owner), email=email, role=role, team=team)


def link_path(body: str) -> str:
    match = re.search(r"https?://[^/\s]+(/invitation/[^/\s]+/)", body)
    assert match, body
    return match.group(1)


# --- Sign-up, log-in, log-out, passwords -----------------------------------------------------------


@pytest.mark.django_db
def test_signup_creates_owner_of_new_org_who_logs_in_after_confirming(client, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), {
            "email": "Ada@Example.com", "name": "Ada", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
            "organization_name": "Analytical Engines",
        })
    assert response.status_code == 302 and response.url == reverse("signup_sent")
    user = User.objects.get(email="ada@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER and membership.organization.name == "Analytical Engines"
    client.get(re.search(r"https?://[^/\s]+(/signup/verify/\S+/)", mailoutbox[0].body).group(1))  # see test_signup.py
    assert client.post(reverse("login"), {"username": "ada@example.com", "password": NEW_PASSWORD}).status_code == 302
    home = client.get(reverse("home"))
    assert home.status_code == 200 and "Analytical Engines" in home.content.decode()


@pytest.mark.django_db
def test_signup_duplicate_email_is_a_field_error(client):
    UserFactory(email="taken@example.com")
    response = client.post(reverse("signup"), {
        "email": "TAKEN@example.com", "name": "", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
        "organization_name": "Second",
    })
    assert response.status_code == 400
    assert "already exists" in " ".join(response.context["form"].errors["email"])
    assert not Organization.objects.filter(name="Second").exists()


@pytest.mark.django_db
def test_signup_rejects_mismatched_and_weak_passwords(client):
    base = {"email": "b@example.com", "name": "", "organization_name": "Org"}
    mismatch = client.post(reverse("signup"), {**base, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"})
    weak = client.post(reverse("signup"), {**base, "password1": "12345", "password2": "12345"})
    assert mismatch.status_code == 400 and "password2" in mismatch.context["form"].errors
    assert weak.status_code == 400 and "password1" in weak.context["form"].errors
    assert not User.objects.filter(email="b@example.com").exists()


@pytest.mark.django_db
def test_login_by_email_any_case(client, owner):
    page = client.get(reverse("login"))
    assert "Email" in page.content.decode()
    response = client.post(reverse("login"), {"username": owner.email.upper(), "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("home")
    assert int(client.session["_auth_user_id"]) == owner.pk


@pytest.mark.django_db
def test_login_wrong_password_is_refused(client, owner):
    response = client.post(reverse("login"), {"username": owner.email, "password": "nope-nope-nope"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logout_needs_post(client, owner):
    logged_in(client, owner)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_reset_by_email(client, owner):
    response = client.post(reverse("password_reset"), {"email": owner.email.upper()})
    assert response.status_code == 302 and response.url == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    path = re.search(r"https?://[^/\s]+(/password/reset/\S+/)", mail.outbox[0].body).group(1)
    set_password_page = client.get(path, follow=True)
    assert set_password_page.context["validlink"]
    response = client.post(
        set_password_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 302 and response.url == reverse("password_reset_complete")
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert client.get(path, follow=True).context["validlink"] is False  # single use


@pytest.mark.django_db
def test_password_change(client, owner):
    logged_in(client, owner)
    response = client.post(reverse("password_change"), {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
    })
    assert response.status_code == 302 and response.url == reverse("password_change_done")
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert client.get(reverse("password_change_done")).status_code == 200


# --- Tenancy ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["home", "members", "teams", "org_settings", "audit_log"])
def test_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.django_db
def test_user_without_org_can_start_one(client):
    user = UserFactory()
    logged_in(client, user)
    response = client.get(reverse("members"))
    assert response.status_code == 302 and response.url == reverse("no_organization")
    assert client.get(reverse("no_organization")).status_code == 200
    response = client.post(reverse("no_organization"), {"name": "Fresh start"})
    assert response.status_code == 302
    assert Membership.objects.get(user=user).role == Role.OWNER
    assert client.get(reverse("no_organization")).status_code == 302


@pytest.mark.django_db
def test_org_switch_to_own_org(client, org, owner):
    second = OrganizationFactory(name="Zeta Labs")
    MembershipFactory(organization=second, user=owner, role=Role.VIEWER)
    logged_in(client, owner)
    response = client.post(reverse("org_switch"), {"organization": second.pk})
    assert response.status_code == 302 and client.session[SESSION_ORG_KEY] == second.pk
    home = client.get(reverse("home"))
    assert home.context["org_context"].organization == second and home.context["org_context"].role == Role.VIEWER
    assert client.get(reverse("audit_log")).status_code == 403  # a viewer there


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["foreign", "garbage", ""])
def test_org_switch_to_foreign_org_is_404(client, org, owner, other_org, value):
    logged_in(client, owner)
    organization = other_org.pk if value == "foreign" else value
    assert client.post(reverse("org_switch"), {"organization": organization}).status_code == 404
    assert client.session.get(SESSION_ORG_KEY) != other_org.pk
    assert client.get(reverse("org_switch")).status_code == 405


# --- The role matrix -------------------------------------------------------------------------------

PAGES = {
    "home": {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER},
    "members": {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER},
    "teams": {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER},
    "org_settings": {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER},
    "audit_log": {Role.OWNER, Role.ADMIN},
}


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_access_by_role(client, org, member_of, name, role):
    logged_in(client, member_of(org, role).user)
    response = client.get(reverse(name))
    assert response.status_code == (200 if role in PAGES[name] else 403)
    if response.status_code == 403:
        assert "Not allowed" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
def test_management_controls_follow_role(client, org, member_of, role):
    logged_in(client, member_of(org, role).user)
    members = client.get(reverse("members")).content.decode()
    nav = client.get(reverse("home")).content.decode()
    settings_page = client.get(reverse("org_settings")).content.decode()
    manages = role in (Role.OWNER, Role.ADMIN)
    assert (reverse("member_invite") in members) is manages
    assert (reverse("audit_log") in nav) is manages
    assert ('name="currency"' in settings_page) is manages


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
def test_writes_by_role(client, org, member_of, role, django_capture_on_commit_callbacks):
    logged_in(client, member_of(org, role).user)
    allowed = role in (Role.OWNER, Role.ADMIN)
    expected = 302 if allowed else 403
    with django_capture_on_commit_callbacks(execute=True):
        # Allowed: the page that shows the new link once (200), not a redirect.
        assert client.post(reverse("member_invite"), {"email": "x@example.com", "role": Role.VIEWER}).status_code == (200 if allowed else 403)
    assert client.post(reverse("team_create"), {"name": "Ops"}).status_code == expected
    assert client.post(reverse("org_settings"), {"name": "Renamed", "time_zone": "UTC", "currency": "EUR"}).status_code == expected
    assert Team.objects.filter(organization=org, name="Ops").exists() is allowed
    assert Invitation.objects.filter(organization=org, email="x@example.com").exists() is allowed
    assert len(mail.outbox) == (1 if allowed else 0)
    org.refresh_from_db()
    assert (org.name == "Renamed") is allowed


# --- Members -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_members_page_lists_people_with_roles_and_teams(client, org, owner, member_of):
    team = TeamFactory(organization=org, name="Research")
    for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        member_of(org, role).teams.add(team)
    invite(org)
    logged_in(client, owner)
    response = client.get(reverse("members"))
    html = response.content.decode()
    assert owner.email in html and "Research" in html
    assert len(response.context["rows"]) == 5  # four roles plus the inviting owner


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["members", "teams", "audit_log"])
def test_list_pages_use_a_fixed_number_of_queries(client, org, owner, member_of, name):
    def grow():
        team = TeamFactory(organization=org)
        member_of(org, Role.MEMBER).teams.add(team)
        invite(org, email=f"{team.name.replace(' ', '')}@example.com", team=team)

    logged_in(client, owner)
    grow()
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse(name)).status_code == 200
    for _n in range(5):
        grow()
    with CaptureQueriesContext(connection) as large:
        assert client.get(reverse(name)).status_code == 200
    assert len(large) == len(small) <= 12, [query["sql"] for query in large.captured_queries]


@pytest.mark.django_db
def test_owner_changes_role(client, org, owner, member_of):
    membership = member_of(org, Role.MEMBER)
    logged_in(client, owner)
    response = client.post(reverse("member_role", args=[membership.pk]), {"role": Role.ADMIN})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert AuditLog.objects.filter(organization=org, action="member.role_change").exists()


@pytest.mark.django_db
def test_admin_cannot_grant_owner_or_touch_owners(client, org, owner, admin_user, member_of):
    membership = member_of(org, Role.MEMBER)
    owner_membership = Membership.objects.get(user=owner)
    logged_in(client, admin_user)
    assert client.post(reverse("member_role", args=[membership.pk]), {"role": Role.OWNER}).status_code == 400
    response = client.post(reverse("member_role", args=[owner_membership.pk]), {"role": Role.VIEWER})
    assert response.status_code == 403 and "Only an owner" in response.content.decode()
    assert client.post(reverse("member_remove", args=[owner_membership.pk])).status_code == 403
    membership.refresh_from_db()
    owner_membership.refresh_from_db()
    assert membership.role == Role.MEMBER and owner_membership.role == Role.OWNER


@pytest.mark.django_db
def test_last_owner_cannot_step_down(client, org, owner):
    membership = Membership.objects.get(user=owner)
    logged_in(client, owner)
    response = client.post(reverse("member_role", args=[membership.pk]), {"role": Role.ADMIN})
    assert response.status_code == 400
    assert "at least one owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


@pytest.mark.django_db
def test_set_teams_and_remove_member(client, org, owner, member_of):
    membership = member_of(org, Role.MEMBER)
    alpha, beta = TeamFactory(organization=org, name="Alpha"), TeamFactory(organization=org, name="Beta")
    logged_in(client, owner)
    assert client.post(reverse("member_teams", args=[membership.pk]), {"teams": [alpha.pk, beta.pk]}).status_code == 302
    assert set(membership.teams.all()) == {alpha, beta}
    assert client.post(reverse("member_teams", args=[membership.pk]), {}).status_code == 302
    assert membership.teams.count() == 0
    assert client.post(reverse("member_remove", args=[membership.pk])).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.django_db
def test_cross_org_objects_are_404(client, org, owner, other_org):
    foreign_membership = MembershipFactory(organization=other_org, role=Role.MEMBER)
    foreign_team = TeamFactory(organization=other_org, name="Theirs")
    foreign_invitation = invite(other_org)[0]
    logged_in(client, owner)
    assert client.post(reverse("member_role", args=[foreign_membership.pk]), {"role": Role.VIEWER}).status_code == 404
    assert client.post(reverse("member_teams", args=[foreign_membership.pk]), {"teams": []}).status_code == 404
    assert client.post(reverse("member_remove", args=[foreign_membership.pk])).status_code == 404
    assert client.post(reverse("team_rename", args=[foreign_team.pk]), {"name": "Mine"}).status_code == 404
    assert client.post(reverse("team_delete", args=[foreign_team.pk])).status_code == 404
    assert client.post(reverse("invitation_revoke", args=[foreign_invitation.pk])).status_code == 404
    foreign_membership.refresh_from_db()
    foreign_team.refresh_from_db()
    foreign_invitation.refresh_from_db()
    assert foreign_membership.role == Role.MEMBER and foreign_team.name == "Theirs"
    assert foreign_invitation.revoked_at is None
    assert Membership.objects.filter(pk=foreign_membership.pk).exists()


@pytest.mark.django_db
def test_foreign_team_cannot_be_assigned_or_invited_to(client, org, owner, other_org, member_of):
    membership = member_of(org, Role.MEMBER)
    foreign_team = TeamFactory(organization=other_org)
    logged_in(client, owner)
    assert client.post(reverse("member_teams", args=[membership.pk]), {"teams": [foreign_team.pk]}).status_code == 400
    assert membership.teams.count() == 0
    response = client.post(reverse("member_invite"), {"email": "z@example.com", "role": Role.MEMBER, "team": foreign_team.pk})
    assert response.status_code == 400 and "team" in response.context["invite_form"].errors
    assert not Invitation.objects.filter(email="z@example.com").exists()


@pytest.mark.django_db
def test_invite_existing_member_is_a_field_error(client, org, owner, member_of):
    existing = member_of(org, Role.VIEWER).user
    logged_in(client, owner)
    response = client.post(reverse("member_invite"), {"email": existing.email, "role": Role.MEMBER})
    assert response.status_code == 400
    assert "already a member" in " ".join(response.context["invite_form"].errors["email"])


@pytest.mark.django_db
def test_revoke_invitation(client, org, owner):
    invitation, token = invite(org)
    logged_in(client, owner)
    assert invitation.email in client.get(reverse("members")).content.decode()
    assert client.post(reverse("invitation_revoke", args=[invitation.pk])).status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    client.logout()
    assert client.get(reverse("invitation_accept", args=[token])).status_code == 404


# --- Invitations, end to end --------------------------------------------------------------------------


@pytest.mark.django_db
def test_invite_mail_then_anonymous_accept_creates_account(client, org, owner, django_capture_on_commit_callbacks):
    team = TeamFactory(organization=org, name="Platform")
    logged_in(client, owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("member_invite"), {"email": "Grace@Example.com", "role": Role.ADMIN, "team": team.pk}, follow=True
        )
    html = response.content.decode()
    assert "Invitation sent to grace@example.com" in html
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["grace@example.com"]
    path = link_path(mail.outbox[0].body)
    # The link is shown once, in the answer to the POST, not cached; the members page does not show it again.
    assert path in html and "no-store" in response["Cache-Control"]
    assert path.split("/")[2] not in client.get(reverse("members")).content.decode()

    client.logout()
    page = client.get(path)
    assert page.status_code == 200 and "grace@example.com" in page.content.decode()
    response = client.post(path, {"name": "Grace", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response.url == reverse("home")
    grace = User.objects.get(email="grace@example.com")
    assert grace.check_password(NEW_PASSWORD) and grace.name == "Grace"
    membership = Membership.objects.get(user=grace)
    assert membership.organization == org and membership.role == Role.ADMIN
    assert list(membership.teams.all()) == [team]
    assert int(client.session["_auth_user_id"]) == grace.pk and client.session[SESSION_ORG_KEY] == org.pk
    assert Organization.objects.count() == 1  # joining creates no organization of its own
    # The link is spent.
    client.logout()
    used = client.get(path)
    assert used.status_code == 400 and "already been used" in used.content.decode()


@pytest.mark.django_db
def test_anonymous_accept_with_bad_password_keeps_invitation_open(client, org):
    invitation, token = invite(org)
    response = client.post(reverse("invitation_accept", args=[token]), {"name": "", "password1": "short", "password2": "short"})
    assert response.status_code == 400
    assert not User.objects.filter(email=invitation.email).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


@pytest.mark.django_db
def test_logged_in_invitee_accepts_and_switches_org(client, org, other_org):
    person = MembershipFactory(organization=other_org, role=Role.OWNER).user
    invitation, token = invite(org, email=person.email, role=Role.VIEWER)
    logged_in(client, person)
    path = reverse("invitation_accept", args=[token])
    assert "Accept invitation" in client.get(path).content.decode()
    response = client.post(path)
    assert response.status_code == 302
    assert Membership.objects.get(user=person, organization=org).role == Role.VIEWER
    assert client.session[SESSION_ORG_KEY] == org.pk


@pytest.mark.django_db
def test_invitation_for_another_email_is_explained(client, org, owner):
    invitation, token = invite(org, email="someone.else@example.com")
    logged_in(client, owner)
    path = reverse("invitation_accept", args=[token])
    page = client.get(path)
    assert page.status_code == 403 and "not as the invited address" in page.content.decode()
    assert client.post(path).status_code == 403
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    # "Log out and continue" comes back to the link, now anonymous.
    response = client.post(reverse("logout"), {"next": path})
    assert response.status_code == 302 and response.url == path


@pytest.mark.django_db
def test_anonymous_with_existing_account_is_sent_to_login(client, org):
    existing = UserFactory(email="known@example.com")
    invitation, token = invite(org, email=existing.email)
    path = reverse("invitation_accept", args=[token])
    page = client.get(path)
    login_url = reverse("login")
    assert page.status_code == 200 and f"{login_url}?next=" in page.content.decode()
    assert client.post(path, {"name": "x", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 400
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)  # nobody can take over an account through an invitation


@pytest.mark.django_db
@pytest.mark.parametrize(
    "state, status, text",
    [
        ("expired", 400, "expired"),
        ("used", 400, "already been used"),
        ("revoked", 404, "not valid"),
        ("invalid", 404, "not valid"),
    ],
)
def test_unusable_invitation_links_say_why(client, org, state, status, text):
    invitation, token = invite(org)
    if state == "expired":
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    elif state == "used":
        Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now())
    elif state == "revoked":
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    else:
        token = "tgi_not-a-real-token"
    path = reverse("invitation_accept", args=[token])
    for response in (client.get(path), client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})):
        assert response.status_code == status
        assert text in response.content.decode()
    assert not User.objects.filter(email=invitation.email).exists()


# --- Teams -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_team_create_rename_delete(client, org, owner):
    logged_in(client, owner)
    assert client.post(reverse("team_create"), {"name": "Data"}).status_code == 302
    team = Team.objects.get(organization=org, name="Data")
    duplicate = client.post(reverse("team_create"), {"name": "data"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.content.decode()
    assert client.post(reverse("team_create"), {"name": "   "}).status_code == 400
    assert client.post(reverse("team_rename", args=[team.pk]), {"name": "Data Science"}).status_code == 302
    team.refresh_from_db()
    assert team.name == "Data Science"
    page = client.get(reverse("teams")).content.decode()
    assert "Data Science" in page
    assert client.post(reverse("team_delete", args=[team.pk])).status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()
    actions = set(AuditLog.objects.filter(organization=org).values_list("action", flat=True))
    assert {"team.create", "team.rename", "team.delete"} <= actions


@pytest.mark.django_db
def test_team_rename_duplicate_shows_row_error(client, org, owner):
    TeamFactory(organization=org, name="One")
    two = TeamFactory(organization=org, name="Two")
    logged_in(client, owner)
    response = client.post(reverse("team_rename", args=[two.pk]), {"name": "one"})
    assert response.status_code == 400 and "already exists" in response.content.decode()
    two.refresh_from_db()
    assert two.name == "Two"


@pytest.mark.django_db
def test_hostile_names_are_escaped(client, org, owner, member_of):
    Organization.objects.filter(pk=org.pk).update(name=HOSTILE)
    membership = member_of(org, Role.MEMBER)
    User.objects.filter(pk=membership.user_id).update(name=HOSTILE)
    logged_in(client, owner)
    assert client.post(reverse("team_create"), {"name": HOSTILE}).status_code == 302
    team = Team.objects.get(organization=org, name=HOSTILE)
    membership.teams.add(team)
    for name in ("home", "members", "teams", "org_settings", "audit_log"):
        html = client.get(reverse(name)).content.decode()
        assert HOSTILE not in html, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name


# --- Settings and audit log ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_org_settings_update_and_validation(client, org, owner):
    logged_in(client, owner)
    response = client.post(reverse("org_settings"), {"name": "New name", "time_zone": "Asia/Shanghai", "currency": "cny"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.name, org.time_zone, org.currency) == ("New name", "Asia/Shanghai", "CNY")
    bad = client.post(reverse("org_settings"), {"name": "", "time_zone": "Mars/Olympus", "currency": "C1"})
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"name", "time_zone", "currency"}
    org.refresh_from_db()
    assert org.name == "New name"


@pytest.mark.django_db
def test_viewer_sees_settings_read_only(client, org, viewer_user):
    logged_in(client, viewer_user)
    html = client.get(reverse("org_settings")).content.decode()
    assert org.name in html and "<form method=\"post\" action=\"/settings/\"" not in html


@pytest.mark.django_db
def test_audit_log_is_paginated_and_scoped(client, org, owner, other_org):
    for n in range(60):
        services.audit_record(organization=org, actor=owner, action="test.entry", data={"n": n}, ip="192.0.2.7")
    services.audit_record(organization=other_org, action="foreign.entry")
    logged_in(client, owner)
    first = client.get(reverse("audit_log"))
    html = first.content.decode()
    assert first.status_code == 200 and "test.entry" in html and "192.0.2.7" in html and owner.email in html
    assert "foreign.entry" not in html
    assert len(first.context["page"].object_list) == 50
    second = client.get(reverse("audit_log"), {"page": 2})
    assert len(second.context["page"].object_list) == 10
    assert client.get(reverse("audit_log"), {"page": "x"}).status_code == 200


@pytest.mark.django_db
def test_writes_record_client_ip(client, org, owner):
    logged_in(client, owner)
    client.post(reverse("team_create"), {"name": "Audited"}, REMOTE_ADDR="198.51.100.4")
    assert AuditLog.objects.get(organization=org, action="team.create").ip == "198.51.100.4"


@pytest.mark.django_db
def test_audit_entries_record_the_client_behind_a_trusted_proxy(client, org, owner, settings):
    """Behind a trusted proxy the audit log keeps the client's address (as the login throttle and the
    relay read it), not the proxy's; a client's own X-Forwarded-For claim is not believed."""
    settings.TOLLGATE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    logged_in(client, owner)
    client.post(reverse("team_create"), {"name": "Proxied"}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.66, 203.0.113.9")
    client.post(reverse("team_create"), {"name": "Direct"}, REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="203.0.113.9")
    client.post(reverse("team_create"), {"name": "Garbled"}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-address")
    entries = {entry.target_label: entry.ip for entry in AuditLog.objects.filter(organization=org, action="team.create")}
    assert entries == {"Proxied": "203.0.113.9", "Direct": "198.51.100.4", "Garbled": None}
    # The REST API's writes go through the same helper.
    client.post("/api/teams/", {"name": "ByApi"}, content_type="application/json", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert AuditLog.objects.filter(organization=org, action="team.create").order_by("-id").first().ip == "203.0.113.10"


# --- Content Security Policy --------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_have_no_inline_script_or_style(client, org, owner):
    invite(org)
    TeamFactory(organization=org)
    pages = ["login", "signup", "password_reset"]
    for name in pages:
        assert_csp_clean(client.get(reverse(name)))
    logged_in(client, owner)
    for name in ("home", "members", "teams", "org_settings", "audit_log", "password_change"):
        assert_csp_clean(client.get(reverse(name)))


def assert_csp_clean(response):
    html = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"<style", html), "<style> element"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
