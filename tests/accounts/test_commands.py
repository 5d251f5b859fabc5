"""tollgate_bootstrap: a user, their organization and an admin API token, without a browser."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditLog, Membership, Organization, Role, User
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-password"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def bootstrap(*args, **options) -> str:
    out = StringIO()
    call_command("tollgate_bootstrap", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def bootstrap_json(**overrides) -> dict:
    options = {"org": "Acme", "email": "ops@example.com", "password": PASSWORD, **overrides}
    return json.loads(bootstrap("--json", *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()]))


def test_creates_user_org_and_admin_token():
    result = bootstrap_json()

    user = User.objects.get(email="ops@example.com")
    org = Organization.objects.get(name="Acme")
    assert user.check_password(PASSWORD)
    assert Membership.objects.get(organization=org, user=user).role == Role.OWNER
    token = ApiToken.objects.get(organization=org)
    assert (token.name, token.role, token.created_by) == ("bootstrap", Role.ADMIN, user)
    assert result["org"] == {"id": org.pk, "name": "Acme", "slug": "acme"}
    assert result["user"] == {"id": user.pk, "email": "ops@example.com"}
    assert result["token"].startswith("tgo_") and result["token"].startswith(token.prefix)
    assert result["created"] == {"user": True, "org": True, "token": True}
    assert token.token_hash not in json.dumps(result)
    assert AuditLog.objects.filter(organization=org, action="api_token.create", actor=user).exists()


def test_printed_token_works_against_the_api():
    out = bootstrap("--org", "Acme", "--email", "ops@example.com", "--password", PASSWORD, "--token-name", "deploy")
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("tgo_")
    assert "shown once" in out

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.get("/api/org/")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme"
    # An admin token: it may manage the organization.
    assert client.patch("/api/org/", {"currency": "EUR"}, format="json").status_code == 200


def test_is_idempotent():
    first = bootstrap_json()
    second = bootstrap_json(password="a-different-password-now")

    assert second["org"] == first["org"] and second["user"] == first["user"]
    # The secret was shown once, on the first run; the re-run says the token exists rather than "token": null.
    assert "token" not in second and second["token_exists"] is True
    assert "already exists" in second["message"] and first["token_prefix"] in second["message"]
    assert first["token"] not in json.dumps(second)
    assert second["created"] == {"user": False, "org": False, "token": False}
    assert User.objects.count() == 1 and Organization.objects.count() == 1 and ApiToken.objects.count() == 1
    assert User.objects.get().check_password(PASSWORD), "an existing user's password is left alone"

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['token']}")
    assert client.get("/api/org/").status_code == 200

    text = bootstrap("--org", "Acme", "--email", "ops@example.com", "--password", PASSWORD)
    assert "already exists" in text and "tgo_" in text  # names the token by its visible prefix only
    assert first["token"] not in text


def test_another_token_name_issues_another_token():
    first = bootstrap_json()
    second = bootstrap_json(token_name="ci")
    assert second["token"] and second["token"] != first["token"]
    assert ApiToken.objects.count() == 2


def test_revoked_token_is_replaced():
    bootstrap_json()
    ApiToken.objects.update(revoked_at="2020-01-01T00:00:00Z")
    again = bootstrap_json()
    assert again["token"] and again["created"]["token"] is True


def test_reuses_existing_user_and_owned_org():
    user = UserFactory(email="ops@example.com")
    org = OrganizationFactory(name="Acme")
    MembershipFactory(organization=org, user=user, role=Role.OWNER)
    result = bootstrap_json(email="OPS@example.com")
    assert result["org"]["id"] == org.pk and result["user"]["id"] == user.pk
    assert result["created"] == {"user": False, "org": False, "token": True}


def test_refuses_an_org_owned_by_someone_else():
    other = MembershipFactory(organization=OrganizationFactory(name="Acme"), role=Role.OWNER)
    with pytest.raises(CommandError, match="not its owner"):
        bootstrap_json()
    assert not User.objects.filter(email="ops@example.com").exists(), "nothing is left half-done"
    assert ApiToken.objects.count() == 0
    assert other.organization.memberships.count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "not-an-email"}, "--email"),
        ({"password": "short"}, "--password"),
        ({"password": "ops@example.com"}, "--password"),
        ({"org": "  "}, "--org"),
        ({"token_name": " "}, "--token-name"),
    ],
)
def test_clear_errors(overrides, message):
    with pytest.raises(CommandError, match=message):
        bootstrap_json(**overrides)
    assert User.objects.count() == 0 and Organization.objects.count() == 0


def test_required_arguments():
    with pytest.raises(CommandError, match="--password"):
        call_command("tollgate_bootstrap", "--org", "Acme", "--email", "ops@example.com", stdout=StringIO(), stderr=StringIO())
