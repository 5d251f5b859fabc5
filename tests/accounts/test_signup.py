"""Sign-up policy (TOLLGATE_SIGNUP): open with email verification, invitation only, or closed."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from accounts import services, signup
from accounts.models import AuditLog, Invitation, Membership, Organization, Role, User
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db
REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-passphrase-for-tests-7"
FORM = {"email": "New.Person@Example.com", "name": "New Person", "password1": PASSWORD, "password2": PASSWORD,
        "organization_name": "New Org"}


@pytest.fixture
def mode(settings):
    def set_mode(value):
        settings.TOLLGATE_SIGNUP = value

    return set_mode


def _link(body: str) -> str:
    return re.search(r"https?://\S+?(/signup/verify/\S+/)", body).group(1)


def _login(client, email="new.person@example.com"):
    return client.post(reverse("login"), {"username": email, "password": PASSWORD})


def _settings_in_a_process(tmp_path, **env_vars) -> str:
    env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "config.settings", "TOLLGATE_DATA_DIR": str(tmp_path),
           "DJANGO_SECRET_KEY": "s" * 64, "TOLLGATE_KEY_HASH_SECRET": "k" * 40,
           "TOLLGATE_ENCRYPTION_KEYS": "ZmVybmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU=", "DJANGO_ALLOWED_HOSTS": "gw.example.com",
           "DATABASE_URL": "postgres://tollgate:pw@db:5432/tollgate", "REDIS_URL": "redis://redis:6379/0", **env_vars}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                             "print(settings.TOLLGATE_SIGNUP)"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    return result.stdout.strip() or result.stderr


def test_default_is_invite_only_in_production_and_open_in_debug(tmp_path):
    assert _settings_in_a_process(tmp_path, DJANGO_DEBUG="false") == "invite"
    assert _settings_in_a_process(tmp_path, DJANGO_DEBUG="true") == "open"
    assert _settings_in_a_process(tmp_path, DJANGO_DEBUG="false", TOLLGATE_SIGNUP="Closed") == "closed"
    refused = _settings_in_a_process(tmp_path, DJANGO_DEBUG="true", TOLLGATE_SIGNUP="anyone")
    assert "ImproperlyConfigured" in refused and "TOLLGATE_SIGNUP" in refused


# --- open: email verification ---------------------------------------------------------------------------


def test_open_signup_needs_the_emailed_link_before_logging_in(client, mode, mailoutbox, django_capture_on_commit_callbacks):
    mode("open")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), FORM)
    assert response.status_code == 302 and response["Location"] == reverse("signup_sent")
    assert "_auth_user_id" not in client.session  # not logged in
    user = User.objects.get(email="new.person@example.com")
    assert user.email_verified is False
    assert Membership.objects.get(user=user).role == Role.OWNER
    page = client.get(reverse("signup_sent")).content.decode()
    assert "new.person@example.com" in page
    (email,) = mailoutbox
    assert email.to == ["new.person@example.com"]
    link = _link(email.body)

    with django_capture_on_commit_callbacks(execute=True):
        refused = _login(client)
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert "Confirm your email address first" in refused.content.decode()
    assert len(mailoutbox) == 2 and _link(mailoutbox[1].body)  # the right password earns a fresh link

    verified = client.get(link)
    assert verified.status_code == 302 and verified["Location"] == reverse("login")
    user.refresh_from_db()
    assert user.email_verified is True
    assert AuditLog.objects.filter(action="user.verify_email", actor=user).count() == 1
    assert client.get(link).status_code == 302  # a second click is harmless
    assert AuditLog.objects.filter(action="user.verify_email", actor=user).count() == 1
    assert _login(client).status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


def test_a_wrong_password_of_an_unverified_account_sends_nothing(client, mode, mailoutbox):
    UserFactory(email="pending@example.com", email_verified=False)
    response = client.post(reverse("login"), {"username": "pending@example.com", "password": "not-the-password"})
    assert response.status_code == 200 and mailoutbox == []
    assert "Confirm your email" not in response.content.decode()


def test_forged_other_address_and_expired_links_are_refused(client, mode, settings):
    user = UserFactory(email="pending@example.com", email_verified=False)
    token = signup.verification_token(user)
    assert client.get(reverse("verify_email", args=[token[:-2] + "xx"])).status_code == 404
    forged = signing.dumps({"u": user.pk, "e": user.email}, salt="another-salt", compress=True)
    assert client.get(reverse("verify_email", args=[forged])).status_code == 404
    user.email = "changed@example.com"
    user.save()
    assert client.get(reverse("verify_email", args=[token])).status_code == 404  # the address is signed in
    fresh = signup.verification_token(user)
    settings.TOLLGATE_EMAIL_VERIFICATION_HOURS = 1
    later = timezone.now() + timedelta(hours=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signing.time, "time", lambda: later.timestamp())
        response = client.get(reverse("verify_email", args=[fresh]))
    assert response.status_code == 400 and "expired" in response.content.decode() and "verify-email-invalid" in response.content.decode()
    user.refresh_from_db()
    assert user.email_verified is False


def test_accounts_made_otherwise_are_verified():
    assert User.objects.create_user(email="operator@example.com", password=PASSWORD).email_verified is True


# --- invite only -----------------------------------------------------------------------------------------


def test_invite_only_has_no_form_and_refuses_posts(client, mode):
    mode("invite")
    page = client.get(reverse("signup"))
    assert page.status_code == 200 and 'name="password1"' not in page.content.decode()
    assert "invitation" in page.content.decode()
    assert client.post(reverse("signup"), FORM).status_code == 403
    assert not User.objects.filter(email="new.person@example.com").exists()
    assert reverse("signup") not in client.get(reverse("login")).content.decode()
    with pytest.raises(Exception, match="invitation only"):
        services.user_signup(email="x@example.com", password=PASSWORD, organization_name="X")


def _invitation_link(org, email):
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    _invitation, token = services.invitation_create(actor=OrgContext(org, Role.OWNER, owner), email=email)
    return reverse("invitation_accept", args=[token])


def test_invite_only_still_signs_up_through_an_invitation(client, mode):
    mode("invite")
    org = OrganizationFactory()
    link = _invitation_link(org, "invited@example.com")
    response = client.post(link, {"name": "Invited", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    user = User.objects.get(email="invited@example.com")
    assert user.email_verified is True  # the invitation link proved the address
    assert Membership.objects.filter(user=user, organization=org).exists()


# --- closed ----------------------------------------------------------------------------------------------


def test_closed_has_no_signup_page_and_invitations_reach_existing_accounts_only(client, mode):
    mode("closed")
    assert client.get(reverse("signup")).status_code == 404
    assert client.post(reverse("signup"), FORM).status_code == 404
    assert reverse("signup") not in client.get(reverse("login")).content.decode()
    org = OrganizationFactory()
    link = _invitation_link(org, "invited@example.com")
    page = client.get(link)
    assert page.status_code == 200 and 'name="password1"' not in page.content.decode()
    assert client.post(link, {"name": "x", "password1": PASSWORD, "password2": PASSWORD}).status_code == 403
    assert not User.objects.filter(email="invited@example.com").exists()
    assert Invitation.objects.get(email="invited@example.com").accepted_at is None

    existing = UserFactory(email="member@example.com")
    link = _invitation_link(org, existing.email)
    client.force_login(existing)
    assert client.post(link).status_code == 302
    assert Membership.objects.filter(user=existing, organization=org).exists()
    assert Organization.objects.count() == 1
