"""An admin of organization A can neither see nor touch organization B's objects: always a 404.

The cases live in tests/isolation_cases.py (its docstring tells how to add one).
"""

import json

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AuditLog, Role, Team
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory
from tests.isolation_cases import CASES

PARAMS = [
    pytest.param(case, request, id=f"{case.name}-{index}-{request[0]}")
    for case in CASES
    for index, request in enumerate(case.requests)
]


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Factories hash a password per user; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _row(obj):
    return type(obj)._default_manager.filter(pk=obj.pk).values().first()


@pytest.fixture
def org_a(db):
    return OrganizationFactory()


@pytest.fixture
def org_b(db):
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    return org


@pytest.fixture(params=["session", "token"])
def client_a(request, org_a):
    """An admin of org A, signed in through the browser session or holding an admin API token."""
    admin = MembershipFactory(organization=org_a, role=Role.ADMIN).user
    client = APIClient()
    if request.param == "session":
        client.force_login(admin)
    else:
        _token, secret = services.api_token_create(organization=org_a, name="a", role=Role.ADMIN, actor=admin)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_every_case_has_requests():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert {"members", "teams", "invitations", "api_tokens"} <= set(names)
    for case in CASES:
        assert case.requests, case.name
        for request in case.requests:
            assert request[0] in {"GET", "POST", "PUT", "PATCH", "DELETE"}, case.name


@pytest.mark.parametrize(("case", "request_spec"), PARAMS)
def test_other_org_object_is_not_found(case, request_spec, client_a, org_b):
    obj = case.make(org_b)
    method, url_for, *body = request_spec
    before = _row(obj)
    audit_before = AuditLog.objects.filter(organization=org_b).count()

    response = client_a.generic(method, url_for(obj), data=_json(body), content_type="application/json")

    assert response.status_code == 404, (case.name, method, response.status_code, response.content)
    assert response.json()["error"]["code"] == "not_found"
    assert _row(obj) == before, "the object of org B changed"
    assert AuditLog.objects.filter(organization=org_b).count() == audit_before


@pytest.mark.parametrize(("case", "request_spec"), PARAMS)
def test_own_org_object_is_found(case, request_spec, client_a, org_a):
    """The control: the same request on org A's own object is not a 404, so the 404 above means tenancy."""
    obj = case.make(org_a)
    method, url_for, *body = request_spec
    response = client_a.generic(method, url_for(obj), data=_json(body), content_type="application/json")
    assert response.status_code != 404, (case.name, method, response.content)
    assert response.status_code < 400, (case.name, method, response.status_code, response.content)


def test_other_org_team_in_member_update_is_rejected(client_a, org_a, org_b):
    member = MembershipFactory(organization=org_a, role=Role.MEMBER)
    foreign = TeamFactory(organization=org_b)
    response = client_a.patch(f"/api/members/{member.pk}/", {"teams": [foreign.pk]}, format="json")
    assert response.status_code == 400
    assert "teams" in response.json()["error"]["fields"]
    assert not member.teams.exists()


def test_other_org_team_in_invitation_is_rejected(client_a, org_b):
    foreign = TeamFactory(organization=org_b)
    response = client_a.post("/api/invitations/", {"email": "x@example.com", "team": foreign.pk}, format="json")
    assert response.status_code == 400
    assert "team" in response.json()["error"]["fields"]


def test_lists_show_only_own_org(client_a, org_a, org_b):
    TeamFactory(organization=org_a, name="Ours")
    TeamFactory(organization=org_b, name="Theirs")
    MembershipFactory(organization=org_b, role=Role.MEMBER)
    services.api_token_create(organization=org_b, name="theirs")

    assert [t["name"] for t in client_a.get("/api/teams/").json()["results"]] == ["Ours"]
    member_orgs = {m["id"] for m in client_a.get("/api/members/").json()["results"]}
    assert member_orgs == set(org_a.memberships.values_list("pk", flat=True))
    assert "theirs" not in {t["name"] for t in client_a.get("/api/tokens/").json()["results"]}
    assert all(e["target_label"] != "theirs" for e in client_a.get("/api/audit/").json()["results"])
    assert Team.objects.filter(organization=org_b).count() == 1


def _json(body):
    return json.dumps(body[0] if body else {})
