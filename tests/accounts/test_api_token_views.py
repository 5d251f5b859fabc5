"""The org API tokens page through Django's test client: who may see it, a secret shown once, revoke,
audit entries, tenancy and escaping."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken, AuditLog, Role
from accounts.crypto import keyed_hash

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"
MANAGERS = {Role.OWNER, Role.ADMIN}  # manage_org


def logged_in(client, user):
    client.force_login(user)
    return client


def api(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_page_needs_login(client):
    response = client.get(reverse("api_tokens"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("role", list(Role))
def test_only_org_managers_see_and_make_tokens(client, org, member_of, role):
    user = member_of(org, role).user
    client = logged_in(client, user)
    expected = 200 if role in MANAGERS else 403
    assert client.get(reverse("api_tokens")).status_code == expected
    response = client.post(reverse("api_token_create"), {"token-name": "ci", "token-role": "viewer"})
    assert response.status_code == expected
    assert ApiToken.objects.filter(organization=org).exists() == (role in MANAGERS)
    nav = client.get(reverse("members")).content.decode()
    assert (f'href="{reverse("api_tokens")}"' in nav) == (role in MANAGERS)


def test_secret_is_shown_once_and_works(client, org, admin_user):
    client = logged_in(client, admin_user)
    response = client.post(reverse("api_token_create"), {"token-name": "Billing export", "token-role": "viewer"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    secret = re.search(r'value="(tgo_[^"]+)"', html).group(1)
    assert f'data-copy="{secret}"' in html, "a copy button"
    token = ApiToken.objects.get(organization=org)
    assert token.token_hash == keyed_hash(secret) and secret not in (token.token_hash, token.prefix)
    assert (token.name, token.role, token.created_by) == ("Billing export", Role.VIEWER, admin_user)

    listed = client.get(reverse("api_tokens")).content.decode()
    assert secret not in listed
    assert f"{token.prefix}…" in listed and "Billing export" in listed and "never" in listed

    # The token answers on the REST API with its role; last used then shows on the page.
    assert api(secret).get("/api/org/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    listed = client.get(reverse("api_tokens")).content.decode()
    row = listed[listed.index('data-token="Billing export"'):][:1500]
    assert "never" not in row

    entries = AuditLog.objects.filter(organization=org, action="api_token.create")
    assert entries.count() == 1 and entries.get().actor == admin_user
    assert "api_token.create" in listed  # the page's recent changes


def test_token_role_cannot_be_owner_or_above_the_creator(client, org, admin_user):
    client = logged_in(client, admin_user)
    response = client.post(reverse("api_token_create"), {"token-name": "root", "token-role": "owner"})
    assert response.status_code == 400
    assert "role" in response.context["form"].errors
    assert not ApiToken.objects.exists()
    choices = [value for value, _label in response.context["form"].fields["role"].choices]
    assert choices == [Role.ADMIN, Role.MEMBER, Role.VIEWER]


def test_name_is_required(client, org, owner):
    response = logged_in(client, owner).post(reverse("api_token_create"), {"token-name": "", "token-role": "viewer"})
    assert response.status_code == 400 and "name" in response.context["form"].errors


def test_revoke_stops_the_token_at_once(client, org, owner):
    token, secret = services.api_token_create(organization=org, name="ci", role=Role.ADMIN, actor=owner)
    assert api(secret).get("/api/org/").status_code == 200
    client = logged_in(client, owner)
    response = client.post(reverse("api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert api(secret).get("/api/org/").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditLog.objects.filter(organization=org, action="api_token.revoke", target_id=str(token.pk)).exists()
    html = client.get(reverse("api_tokens")).content.decode()
    row = html[html.index('data-token="ci"'):][:1500]
    assert "Revoked" in row and "api_token_revoke" not in row and "/revoke/" not in row


def test_revoke_needs_post_and_manage_org(client, org, owner, member_user):
    token, _secret = services.api_token_create(organization=org, name="ci", actor=owner)
    assert logged_in(client, owner).get(reverse("api_token_revoke", args=[token.pk])).status_code == 405
    assert logged_in(client, member_user).post(reverse("api_token_revoke", args=[token.pk])).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_other_organizations_tokens_are_not_found(client, org, other_org, owner, member_of):
    theirs, _secret = services.api_token_create(organization=other_org, name="their-secret-job", actor=None)
    client = logged_in(client, owner)
    assert client.post(reverse("api_token_revoke", args=[theirs.pk])).status_code == 404
    assert "their-secret-job" not in client.get(reverse("api_tokens")).content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_names_are_escaped(client, org, owner):
    services.api_token_create(organization=org, name=HOSTILE, actor=owner)
    html = logged_in(client, owner).get(reverse("api_tokens")).content.decode()
    assert HOSTILE not in html and "&lt;script&gt;" in html


def test_page_in_chinese(client, org, owner):
    html = logged_in(client, owner).get(reverse("api_tokens"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "API 令牌" in html
