"""Single sign-on settings in the dashboard and the REST API: roles, validation, the secret, org isolation."""

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import AuditLog, Role
from sso.models import SsoConnection

pytestmark = pytest.mark.django_db

SECRET = "canary-client-secret-7f3a9"
VALID = {
    "kind": "oidc", "display_name": "Okta", "client_id": "tollgate-app", "client_secret": SECRET,
    "issuer_url": "https://login.acme.example/oauth2/default", "allowed_domains": ["Acme.example", "@acme.cn"],
    "default_role": "member", "auto_join": True, "require_sso": False,
}


def api(user=None, token=None):
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_admin_creates_reads_changes_and_deletes_through_the_api(admin_user, org):
    client = api(admin_user)
    assert client.get("/api/sso/").status_code == 404
    created = client.put("/api/sso/", VALID, format="json")
    assert created.status_code == 200, created.content
    body = created.json()
    assert body["allowed_domains"] == ["acme.example", "acme.cn"]
    assert body["client_secret_set"] is True and body["client_secret_hint"] == SECRET[-4:]
    assert body["login_path"] == f"/sso/{org.slug}/"
    # The secret is stored encrypted and never returned, by the API, the page or the audit log.
    connection = SsoConnection.objects.get(organization=org)
    assert SECRET not in connection.client_secret_encrypted
    for text in (created.content.decode(), client.get("/api/sso/").content.decode(), client.get("/settings/sso/").content.decode()):
        assert SECRET not in text
    assert all(SECRET not in str(entry.data) for entry in AuditLog.objects.all())
    assert AuditLog.objects.get(organization=org, action="sso.create").data["client_secret"] == "changed"
    # Leaving the secret out keeps it.
    changed = client.put("/api/sso/", {"require_sso": True, "default_role": "viewer"}, format="json")
    assert changed.status_code == 200 and changed.json()["require_sso"] is True
    connection.refresh_from_db()
    assert connection.default_role == Role.VIEWER and connection.client_secret_hint == SECRET[-4:]
    assert client.delete("/api/sso/").status_code == 204
    assert not SsoConnection.objects.exists()
    assert AuditLog.objects.filter(organization=org, action="sso.delete").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowed_domains": ["not a domain"]}, "allowed_domains"),
        ({"issuer_url": ""}, "issuer_url"),
        ({"issuer_url": "http://127.0.0.1:8080/realms/x"}, "issuer_url"),
        ({"default_role": "owner"}, "default_role"),
        ({"client_secret": ""}, "client_secret"),
        ({"kind": "wecom"}, "agent_id"),
    ],
)
def test_bad_settings_are_field_errors(admin_user, change, field):
    response = api(admin_user).put("/api/sso/", {**VALID, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not SsoConnection.objects.exists()


def test_members_and_viewers_cannot_see_or_change_it(member_user, viewer_user):
    for user in (member_user, viewer_user):
        client = api(user)
        assert client.get("/api/sso/").status_code == 403
        assert client.put("/api/sso/", VALID, format="json").status_code == 403
        assert client.get("/settings/sso/").status_code == 403


def test_an_api_token_with_the_admin_role_manages_it(org):
    _token, secret = account_services.api_token_create(organization=org, name="ops", role=Role.ADMIN)
    assert api(token=secret).put("/api/sso/", VALID, format="json").status_code == 200


def test_another_organizations_admin_never_sees_or_touches_it(admin_user, org, other_org, member_of):
    api(admin_user).put("/api/sso/", VALID, format="json")
    before = SsoConnection.objects.filter(organization=org).values().get()
    intruder = member_of(other_org, Role.OWNER).user
    _token, other_secret = account_services.api_token_create(organization=other_org, name="theirs", role=Role.ADMIN)
    for client in (api(intruder), api(token=other_secret)):
        assert client.get("/api/sso/").status_code == 404  # their own organization has none
        assert client.delete("/api/sso/").status_code == 404
    page = api(intruder).get("/settings/sso/").content.decode()
    assert "tollgate-app" not in page and "login.acme.example" not in page
    assert api(intruder).post("/settings/sso/delete/").status_code == 302
    # Their PUT makes their own connection, never changes ours.
    assert api(intruder).put("/api/sso/", {**VALID, "client_id": "theirs"}, format="json").status_code == 200
    assert SsoConnection.objects.filter(organization=org).values().get() == before
    assert SsoConnection.objects.get(organization=other_org).client_id == "theirs"
    assert not AuditLog.objects.filter(organization=org, actor=intruder).exists()


def test_the_dashboard_form_saves_and_keeps_the_secret(client, owner, org):
    client.force_login(owner)
    form = {**VALID, "allowed_domains": "acme.example, acme.cn", "enabled": "on", "auto_join": "on"}
    response = client.post("/settings/sso/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get("/settings/sso/").content.decode()
    assert f"/accounts/oidc/org-{org.slug}/login/callback/" in page  # the redirect URI to register
    assert SECRET not in page and f"…{SECRET[-4:]}" in page
    response = client.post("/settings/sso/", {**form, "client_secret": "", "display_name": "Acme Okta"})
    assert response.status_code == 302
    connection = SsoConnection.objects.get(organization=org)
    assert connection.display_name == "Acme Okta" and connection.client_secret_hint == SECRET[-4:]
    bad = client.post("/settings/sso/", {**form, "allowed_domains": "acme..example"})
    assert bad.status_code == 400 and "is not a domain name" in bad.content.decode()


def test_the_rotate_command_re_encrypts_the_client_secret(admin_user, org, settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from keys import encryption

    old, new = settings.TOLLGATE_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    api(admin_user).put("/api/sso/", VALID, format="json")
    settings.TOLLGATE_ENCRYPTION_KEYS = [new, old]
    call_command("tollgate_rotate_credentials")
    assert "1 single sign-on secret(s)" in capsys.readouterr().out
    settings.TOLLGATE_ENCRYPTION_KEYS = [new]
    assert encryption.decrypt(SsoConnection.objects.get(organization=org).client_secret_encrypted) == SECRET
