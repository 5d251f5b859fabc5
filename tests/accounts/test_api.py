"""The REST API of accounts: parity with the dashboard, authentication, pagination, the error body, the schema."""

import json
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Role, Team
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login():
    """login(user) -> an APIClient with a browser session for user."""

    def make(user, **kwargs):
        client = APIClient(**kwargs)
        client.force_login(user)
        return client

    return make


@pytest.fixture
def token_client(org):
    """token_client(role=..., organization=...) -> (client, ApiToken) authenticated by a Bearer API token."""

    def make(role=Role.ADMIN, organization=None):
        token, secret = services.api_token_create(organization=organization or org, name=f"{role}-token", role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client, token

    return make


@pytest.fixture
def owner_client(login, owner):
    return login(owner)


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# Parity: everything the dashboard can do to members, teams and invitations, the API can do too.

# Every write the dashboard offers for these objects (accounts/views.py calls these services).
API_FOR_SERVICE = {
    "organization_update": "PATCH /api/org/",
    "team_create": "POST /api/teams/",
    "team_rename": "PATCH /api/teams/{id}/",
    "team_delete": "DELETE /api/teams/{id}/",
    "membership_set_role": "PATCH /api/members/{id}/ role",
    "membership_set_teams": "PATCH /api/members/{id}/ teams",
    "membership_remove": "DELETE /api/members/{id}/",
    "invitation_create": "POST /api/invitations/",
    "invitation_revoke": "DELETE /api/invitations/{id}/",
    "invitation_resend": "POST /api/invitations/{id}/resend/",
    "invitation_accept": "POST /api/invitations/accept/",
    "api_token_create": "POST /api/tokens/",
    "api_token_revoke": "DELETE /api/tokens/{id}/",
}
# Writes with no place in an organization's API (no organization yet, or housekeeping).
# (invitation_link builds a URL; it writes nothing.)
NOT_API = {"organization_create", "user_signup", "invitation_lookup", "invitations_expire", "audit_record", "invitation_link"}


def test_every_accounts_service_has_an_endpoint():
    public = {
        name for name, value in vars(services).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == services.__name__
    }
    assert public - NOT_API == set(API_FOR_SERVICE), "a new accounts service needs an API endpoint (or a reason in NOT_API)"


def test_member_team_invitation_lifecycle_through_the_api(owner_client, org, django_capture_on_commit_callbacks):
    # Teams
    response = owner_client.post("/api/teams/", {"name": "Platform"}, format="json")
    assert response.status_code == 201
    team = response.json()
    assert team["name"] == "Platform" and team["member_count"] == 0
    response = owner_client.patch(f"/api/teams/{team['id']}/", {"name": "Infra"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Infra"

    # Invite into the team; the invitee accepts with the link from the email.
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/api/invitations/", {"email": "dev@example.com", "role": "member", "team": team["id"]}, format="json"
        )
    assert response.status_code == 201
    invitation = response.json()
    assert invitation["status"] == "pending" and invitation["team"] == {"id": team["id"], "name": "Infra"}
    token = re.search(r"tgi_[\w-]+", mail.outbox[-1].body).group(0)
    assert invitation["link"].endswith(f"/invitation/{token}/")  # returned once, for inviters without email
    assert token not in owner_client.get("/api/invitations/").content.decode()
    assert token not in owner_client.get(f"/api/invitations/{invitation['id']}/").content.decode()
    assert "token" not in invitation and "token_hash" not in invitation

    dev = UserFactory(email="dev@example.com")
    dev_client = APIClient()
    dev_client.force_login(dev)
    response = dev_client.post("/api/invitations/accept/", {"token": token}, format="json")
    assert response.status_code == 200, response.content
    joined = response.json()
    assert joined["organization"]["id"] == org.pk
    assert joined["membership"]["role"] == "member"
    assert joined["membership"]["teams"] == [{"id": team["id"], "name": "Infra"}]
    member_id = joined["membership"]["id"]
    assert owner_client.get(f"/api/invitations/{invitation['id']}/").json()["status"] == "accepted"

    # Change role and teams, together and separately.
    second = TeamFactory(organization=org, name="Data")
    response = owner_client.patch(f"/api/members/{member_id}/", {"role": "admin", "teams": [second.pk]}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin" and response.json()["teams"] == [{"id": second.pk, "name": "Data"}]
    response = owner_client.patch(f"/api/members/{member_id}/", {"teams": []}, format="json")
    assert response.json()["teams"] == [] and response.json()["role"] == "admin"
    assert owner_client.get(f"/api/members/{member_id}/").json()["user"]["email"] == "dev@example.com"

    # Remove the member, delete the team.
    assert owner_client.delete(f"/api/members/{member_id}/").status_code == 204
    assert not Membership.objects.filter(pk=member_id).exists()
    assert owner_client.delete(f"/api/teams/{team['id']}/").status_code == 204
    assert not Team.objects.filter(pk=team["id"]).exists()

    actions = set(AuditLog.objects.filter(organization=org).values_list("action", flat=True))
    assert {"team.create", "team.rename", "invitation.create", "invitation.accept", "member.role_change",
            "member.teams_change", "member.remove", "team.delete"} <= actions


def test_invitation_revoke(owner_client, org):
    invitation, token = services.invitation_create(
        actor=OrgContext(organization=org, role=Role.OWNER, user=None), email="gone@example.com"
    )
    assert owner_client.delete(f"/api/invitations/{invitation.pk}/").status_code == 204
    listed = owner_client.get("/api/invitations/").json()["results"]
    assert [(i["email"], i["status"]) for i in listed] == [("gone@example.com", "revoked")]
    client = APIClient()
    client.force_login(UserFactory(email="gone@example.com"))
    error = error_of(client.post("/api/invitations/accept/", {"token": token}, format="json"), 404)
    assert error["code"] == "invalid_token" and "token" in error["fields"]


def test_accept_with_wrong_email(org, login):
    _invitation, token = services.invitation_create(
        actor=OrgContext(organization=org, role=Role.OWNER, user=None), email="right@example.com"
    )
    client = login(UserFactory(email="wrong@example.com"))
    error = error_of(client.post("/api/invitations/accept/", {"token": token}, format="json"), 403)
    assert error["code"] == "wrong_user"


def test_accept_needs_a_session_not_a_token(org, token_client):
    _invitation, token = services.invitation_create(
        actor=OrgContext(organization=org, role=Role.OWNER, user=None), email="bot@example.com"
    )
    client, _ = token_client()
    response = client.post("/api/invitations/accept/", {"token": token}, format="json")
    assert response.status_code in (401, 403)
    assert Invitation.objects.get().accepted_at is None


def test_member_may_leave_but_not_remove_others(org, owner, login):
    me = MembershipFactory(organization=org, role=Role.MEMBER)
    other = MembershipFactory(organization=org, role=Role.MEMBER)
    client = login(me.user)
    error = error_of(client.delete(f"/api/members/{other.pk}/"), 403)
    assert error["code"] == "permission_denied"
    assert client.delete(f"/api/members/{me.pk}/").status_code == 204


def test_admin_token_cannot_remove_its_owner_creator(org, owner):
    """A token never "leaves" as the person who created it, so rank rules apply to its creator too."""
    MembershipFactory(organization=org, role=Role.OWNER)  # not the last owner
    _token, secret = services.api_token_create(organization=org, name="ci", role=Role.ADMIN, actor=owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    membership = Membership.objects.get(organization=org, user=owner)
    error_of(client.delete(f"/api/members/{membership.pk}/"), 403)
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_org_settings(owner_client, org):
    response = owner_client.get("/api/org/")
    assert response.json() == {
        "id": org.pk, "name": org.name, "slug": org.slug, "time_zone": "UTC", "currency": "USD", "language": "en",
        "created_at": response.json()["created_at"],
    }
    response = owner_client.patch("/api/org/", {"name": "Acme", "time_zone": "Asia/Shanghai", "currency": "CNY"}, format="json")
    assert response.status_code == 200
    org.refresh_from_db()
    assert (org.name, org.time_zone, org.currency, org.slug) == ("Acme", "Asia/Shanghai", "CNY", response.json()["slug"])
    entry = AuditLog.objects.get(action="organization.update")
    assert entry.data == {"name": "Acme", "time_zone": "Asia/Shanghai", "currency": "CNY"}
    assert entry.ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"time_zone": "Mars/Olympus"}, "time_zone"), ({"currency": "usd"}, "currency"), ({"currency": "DOLLARS"}, "currency"),
     ({"name": ""}, "name")],
)
def test_org_settings_validation(owner_client, org, body, field):
    error = error_of(owner_client.patch("/api/org/", body, format="json"), 400)
    assert field in error["fields"]
    org.refresh_from_db()
    assert (org.time_zone, org.currency) == ("UTC", "USD")


# API tokens


def test_api_token_secret_is_shown_once(owner_client, org):
    response = owner_client.post("/api/tokens/", {"name": "ci", "role": "viewer"}, format="json")
    assert response.status_code == 201
    created = response.json()
    secret = created["token"]
    assert secret.startswith("tgo_") and secret.startswith(created["prefix"])
    assert created["role"] == "viewer"

    for response in (owner_client.get("/api/tokens/"), owner_client.get(f"/api/tokens/{created['id']}/")):
        assert response.status_code == 200
        assert secret not in response.content.decode()
        assert b"token_hash" not in response.content
    listed = owner_client.get("/api/tokens/").json()["results"][0]
    assert "token" not in listed and listed["prefix"] == created["prefix"]

    token = ApiToken.objects.get(pk=created["id"])
    assert secret not in json.dumps(list(AuditLog.objects.values()), default=str)
    assert token.token_hash != secret


def test_api_token_cannot_be_owner(owner_client):
    error = error_of(owner_client.post("/api/tokens/", {"name": "root", "role": "owner"}, format="json"), 400)
    assert "role" in error["fields"]
    assert not ApiToken.objects.exists()


def test_token_auth_acts_for_its_org_only(org, token_client):
    other = OrganizationFactory()
    TeamFactory(organization=org, name="Ours")
    TeamFactory(organization=other, name="Theirs")
    client, token = token_client(Role.ADMIN)
    assert client.get("/api/org/").json()["id"] == org.pk
    assert [t["name"] for t in client.get("/api/teams/").json()["results"]] == ["Ours"]
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_token_role_is_enforced(token_client):
    client, _ = token_client(Role.VIEWER)
    assert client.get("/api/members/").status_code == 200
    assert error_of(client.patch("/api/org/", {"name": "x"}, format="json"), 403)["code"] == "permission_denied"
    assert client.get("/api/tokens/").status_code == 403
    assert client.post("/api/teams/", {"name": "x"}, format="json").status_code == 403


def test_revoked_token_is_refused(owner_client, token_client):
    client, token = token_client()
    assert client.get("/api/org/").status_code == 200
    assert owner_client.delete(f"/api/tokens/{token.pk}/").status_code == 204
    response = client.get("/api/org/")
    assert error_of(response, 401)["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Bearer"
    assert AuditLog.objects.filter(action="api_token.revoke", target_id=str(token.pk)).exists()


@pytest.mark.parametrize("header", ["Bearer tgo_not-a-real-token", "Bearer tgo_", "Bearer  tgo_x y"])
def test_unknown_token_is_refused(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    error_of(client.get("/api/org/"), 401)


def test_anonymous_is_refused(db):
    response = APIClient().get("/api/org/")
    assert error_of(response, 401)["code"] == "not_authenticated"


# Session authentication


def test_session_auth_uses_the_current_org(login, org):
    user = MembershipFactory(organization=org, role=Role.VIEWER).user
    assert login(user).get("/api/org/").json()["id"] == org.pk


def test_session_without_org_is_refused(login):
    error = error_of(login(UserFactory()).get("/api/org/"), 403)
    assert error["code"] == "permission_denied"


def test_session_writes_need_csrf(owner, login):
    client = login(owner, enforce_csrf_checks=True)
    assert client.get("/api/teams/").status_code == 200
    error = error_of(client.post("/api/teams/", {"name": "No CSRF"}, format="json"), 403)
    assert "CSRF" in error["message"]
    assert not Team.objects.exists()


def test_token_auth_needs_no_csrf(token_client):
    client, _ = token_client()
    client.handler.enforce_csrf_checks = True
    assert client.post("/api/teams/", {"name": "Bots"}, format="json").status_code == 201


# Pagination and queries


def test_pagination_shape(owner_client, org):
    for _ in range(4):
        MembershipFactory(organization=org)
    body = owner_client.get("/api/members/?page_size=2").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 5 and len(body["results"]) == 2
    assert body["previous"] is None and "page=2" in body["next"]
    last = owner_client.get("/api/members/?page_size=2&page=3").json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert error_of(owner_client.get("/api/members/?page=99"), 404)["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/members/", "/api/teams/", "/api/invitations/", "/api/tokens/", "/api/audit/"])
def test_lists_do_not_grow_queries_with_rows(path, owner_client, owner, org, django_assert_max_num_queries):
    def add_rows():
        team = TeamFactory(organization=org)
        membership = MembershipFactory(organization=org)
        membership.teams.add(team)
        ctx = OrgContext(organization=org, role=Role.OWNER, user=owner)
        services.invitation_create(actor=ctx, email=f"invitee-{membership.pk}@example.com", team=team)
        services.api_token_create(organization=org, name="t", actor=owner)

    add_rows()
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get(path).status_code == 200
    for _ in range(5):
        add_rows()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert owner_client.get(path).status_code == 200


def test_audit_filter_by_action(owner_client, owner, org):
    ctx = OrgContext(organization=org, role=Role.OWNER, user=owner)
    services.team_create(actor=ctx, name="A", ip="198.51.100.1")
    services.team_create(actor=ctx, name="B")
    services.organization_update(actor=ctx, name="Renamed")
    body = owner_client.get("/api/audit/?action=team.create").json()
    assert body["count"] == 2
    assert [e["target_label"] for e in body["results"]] == ["B", "A"]
    entry = body["results"][1]
    assert entry["actor"]["email"] == owner.email and entry["ip"] == "198.51.100.1"
    assert owner_client.get("/api/audit/").json()["count"] >= 3


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_audit_needs_view_audit(role, login, org):
    assert login(MembershipFactory(organization=org, role=role).user).get("/api/audit/").status_code == 403


# The error body


def test_invite_existing_member_is_a_duplicate(owner_client, owner, admin_user):
    error = error_of(owner_client.post("/api/invitations/", {"email": admin_user.email.upper()}, format="json"), 400)
    assert error["code"] == "duplicate"
    assert list(error["fields"]) == ["email"]
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/invitations/", {"email": "new@example.com", "role": "superadmin"}),
        ("patch", "/api/members/{member}/", {"role": "Owner"}),
        ("post", "/api/tokens/", {"name": "x", "role": "root"}),
    ],
)
def test_wrong_role_name(owner_client, org, method, path, body):
    member = MembershipFactory(organization=org, role=Role.MEMBER)
    response = getattr(owner_client, method)(path.format(member=member.pk), body, format="json")
    error = error_of(response, 400)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["role"]
    assert all(isinstance(message, str) for message in error["fields"]["role"])
    member.refresh_from_db()
    assert member.role == Role.MEMBER


@pytest.mark.parametrize("path", ["/api/teams/", "/api/invitations/", "/api/tokens/", "/api/org/", "/api/invitations/accept/"])
def test_malformed_json(owner_client, path):
    method = owner_client.patch if path == "/api/org/" else owner_client.post
    response = method(path, data='{"name": "unterminated', content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "parse_error"
    assert error["fields"] == {}


def test_json_of_the_wrong_shape(owner_client):
    error = error_of(owner_client.post("/api/teams/", data="[1, 2]", content_type="application/json"), 400)
    assert error["code"] == "invalid"
    assert "non_field_errors" in error["fields"]


@pytest.mark.parametrize(
    ("path", "fields"),
    [("/api/teams/", {"name"}), ("/api/invitations/", {"email"}), ("/api/tokens/", {"name"}), ("/api/invitations/accept/", {"token"})],
)
def test_missing_fields(owner_client, path, fields):
    error = error_of(owner_client.post(path, {}, format="json"), 400)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == fields
    for messages in error["fields"].values():
        assert messages == ["This field is required."]


def test_duplicate_team_name(owner_client, org):
    TeamFactory(organization=org, name="Ops")
    error = error_of(owner_client.post("/api/teams/", {"name": "ops"}, format="json"), 400)
    assert (error["code"], list(error["fields"])) == ("duplicate", ["name"])


def test_unknown_id_is_404(owner_client):
    for path in ["/api/members/999999/", "/api/teams/999999/", "/api/invitations/999999/", "/api/tokens/999999/"]:
        assert error_of(owner_client.get(path), 404)["code"] == "not_found"


def test_method_not_allowed(owner_client):
    assert error_of(owner_client.put("/api/org/", {}, format="json"), 405)["code"] == "method_not_allowed"
    assert error_of(owner_client.delete("/api/org/"), 405)["code"] == "method_not_allowed"


# The schema


def test_schema_is_valid_openapi(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path, methods in {
        "/api/org/": {"get", "patch"},
        "/api/members/": {"get"},
        "/api/members/{id}/": {"get", "patch", "delete"},
        "/api/teams/": {"get", "post"},
        "/api/teams/{id}/": {"get", "patch", "delete"},
        "/api/invitations/": {"get", "post"},
        "/api/invitations/{id}/": {"get", "delete"},
        "/api/invitations/accept/": {"post"},
        "/api/tokens/": {"get", "post"},
        "/api/tokens/{id}/": {"get", "delete"},
        "/api/audit/": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    components = schema["components"]["schemas"]
    assert "token" in components["ApiTokenCreated"]["properties"]
    assert "token" not in components["ApiToken"]["properties"]
    assert "token" not in components["Invitation"]["properties"]
    assert set(components["PaginatedMemberList"]["properties"]) == {"count", "next", "previous", "results"}
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_organization_unchanged_by_get(owner_client, org):
    before = Organization.objects.filter(pk=org.pk).values().get()
    owner_client.get("/api/org/")
    assert Organization.objects.filter(pk=org.pk).values().get() == before
