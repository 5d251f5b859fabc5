"""The role matrix, checked cell by cell against a table written out here, and the rank rules.

The table is deliberately not derived from ROLE_PERMISSIONS: changing what a role may do must mean
changing this file too.
"""

import json

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.errors import ApplicationError
from accounts.models import Membership, Role
from accounts.permissions import Perm, has_perm
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, TeamFactory

ROLES = [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER]

# fmt: off
#                                owner  admin  member viewer
EXPECTED = {
    Perm.VIEW_ORG:               (True,  True,  True,  True),
    Perm.VIEW_MEMBERS:           (True,  True,  False, True),
    Perm.VIEW_USAGE:             (True,  True,  False, True),
    Perm.VIEW_OWN_USAGE:         (True,  True,  True,  True),
    Perm.MANAGE_OWN_KEYS:        (True,  True,  True,  False),
    Perm.MANAGE_KEYS:            (True,  True,  False, False),
    Perm.MANAGE_PROVIDERS:       (True,  True,  False, False),
    Perm.MANAGE_BUDGETS:         (True,  True,  False, False),
    Perm.MANAGE_MEMBERS:         (True,  True,  False, False),
    Perm.MANAGE_ORG:             (True,  True,  False, False),
    Perm.VIEW_AUDIT:             (True,  True,  False, False),
    Perm.MANAGE_OWNERS:          (True,  False, False, False),
}
# fmt: on

CELLS = [
    pytest.param(role, perm, EXPECTED[perm][column], id=f"{role}-{perm}")
    for perm in EXPECTED
    for column, role in enumerate(ROLES)
]


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_table_covers_every_perm_and_role():
    assert set(EXPECTED) == set(Perm), "a Perm was added or removed: extend the expected table"
    assert set(ROLES) == set(Role.values), "a Role was added or removed: extend the expected table"


@pytest.mark.parametrize(("role", "perm", "allowed"), CELLS)
def test_role_matrix(role, perm, allowed):
    assert has_perm(role, perm) is allowed
    assert OrgContext(organization=None, role=role, user=None).can(perm) is allowed


@pytest.mark.parametrize("perm", list(Perm))
@pytest.mark.parametrize("role", [None, "", "superuser", "OWNER"])
def test_unknown_roles_have_no_permission(role, perm):
    assert has_perm(role, perm) is False


# Rank rules, through the services that enforce them.


def _ctx(membership: Membership) -> OrgContext:
    return OrgContext(organization=membership.organization, role=membership.role, user=membership.user)


def _raises(code: str, status: int, call, **kwargs):
    with pytest.raises(ApplicationError) as info:
        call(**kwargs)
    assert (info.value.code, info.value.status) == (code, status), info.value.message
    return info.value


@pytest.fixture
def owner_m(org):
    return MembershipFactory(organization=org, role=Role.OWNER)


@pytest.fixture
def admin_m(org, owner_m):
    return MembershipFactory(organization=org, role=Role.ADMIN)


def test_admin_cannot_grant_owner(admin_m, org):
    target = MembershipFactory(organization=org, role=Role.MEMBER)
    error = _raises("permission_denied", 403, services.membership_set_role, actor=_ctx(admin_m), membership=target, role=Role.OWNER)
    assert error.field == "role"
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_admin_cannot_grant_owner_to_self(admin_m):
    _raises("permission_denied", 403, services.membership_set_role, actor=_ctx(admin_m), membership=admin_m, role=Role.OWNER)


def test_admin_cannot_demote_or_remove_owner(admin_m, owner_m):
    _raises("permission_denied", 403, services.membership_set_role, actor=_ctx(admin_m), membership=owner_m, role=Role.MEMBER)
    _raises("permission_denied", 403, services.membership_remove, actor=_ctx(admin_m), membership=owner_m)
    owner_m.refresh_from_db()
    assert owner_m.role == Role.OWNER


def test_admin_cannot_invite_an_owner(admin_m):
    _raises("permission_denied", 403, services.invitation_create, actor=_ctx(admin_m), email="new@example.com", role=Role.OWNER)


def test_admin_may_manage_up_to_own_rank(admin_m, org):
    target = MembershipFactory(organization=org, role=Role.VIEWER)
    assert services.membership_set_role(actor=_ctx(admin_m), membership=target, role=Role.ADMIN).role == Role.ADMIN
    assert services.membership_set_role(actor=_ctx(admin_m), membership=target, role=Role.MEMBER).role == Role.MEMBER
    services.membership_remove(actor=_ctx(admin_m), membership=target)
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_owner_may_grant_and_remove_owner(owner_m, org):
    target = MembershipFactory(organization=org, role=Role.ADMIN)
    services.membership_set_role(actor=_ctx(owner_m), membership=target, role=Role.OWNER)
    services.membership_set_role(actor=_ctx(owner_m), membership=target, role=Role.ADMIN)
    services.membership_set_role(actor=_ctx(owner_m), membership=target, role=Role.OWNER)
    services.membership_remove(actor=_ctx(owner_m), membership=target)
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_no_one_raises_above_own_rank(org):
    """Ranks, not only the owner rule: a context whose role lacks MANAGE_OWNERS cannot reach owner."""
    target = MembershipFactory(organization=org, role=Role.VIEWER)
    for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        actor = OrgContext(organization=org, role=role, user=None)
        for new in ROLES:
            if has_perm(role, Perm.MANAGE_MEMBERS) and ROLES.index(new) >= ROLES.index(role):
                continue  # allowed: at or below own rank
            with pytest.raises(ApplicationError) as info:
                services.membership_set_role(actor=actor, membership=target, role=new)
            assert info.value.status == 403, (role, new)
    target.refresh_from_db()
    assert target.role == Role.VIEWER


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_member_and_viewer_cannot_invite_or_manage(role, org, owner_m):
    me = MembershipFactory(organization=org, role=role)
    other = MembershipFactory(organization=org, role=Role.VIEWER)
    team = TeamFactory(organization=org)
    for invite_role in ROLES:
        _raises("permission_denied", 403, services.invitation_create, actor=_ctx(me), email="x@example.com", role=invite_role)
    _raises("permission_denied", 403, services.membership_set_role, actor=_ctx(me), membership=other, role=Role.VIEWER)
    _raises("permission_denied", 403, services.membership_set_teams, actor=_ctx(me), membership=other, teams=[team])
    _raises("permission_denied", 403, services.membership_remove, actor=_ctx(me), membership=other)
    _raises("permission_denied", 403, services.team_create, actor=_ctx(me), name="Mine")
    _raises("permission_denied", 403, services.team_rename, actor=_ctx(me), team=team, name="Mine")
    _raises("permission_denied", 403, services.team_delete, actor=_ctx(me), team=team)
    _raises("permission_denied", 403, services.organization_update, actor=_ctx(me), name="Mine")


def test_member_may_leave(org, owner_m):
    me = MembershipFactory(organization=org, role=Role.MEMBER)
    services.membership_remove(actor=_ctx(me), membership=me)
    assert not Membership.objects.filter(pk=me.pk).exists()


def test_last_owner_cannot_be_demoted_or_removed(owner_m):
    error = _raises("last_owner", 400, services.membership_set_role, actor=_ctx(owner_m), membership=owner_m, role=Role.ADMIN)
    assert error.field == "role"
    _raises("last_owner", 400, services.membership_remove, actor=_ctx(owner_m), membership=owner_m)
    owner_m.refresh_from_db()
    assert owner_m.role == Role.OWNER


def test_an_owner_may_step_down_when_another_remains(owner_m, org):
    second = MembershipFactory(organization=org, role=Role.OWNER)
    services.membership_set_role(actor=_ctx(owner_m), membership=owner_m, role=Role.ADMIN)
    _raises("last_owner", 400, services.membership_remove, actor=_ctx(second), membership=second)


# The same matrix at the API boundary: each endpoint asks for the permission the table says.

# (method, path, body, permission needed)
ENDPOINTS = [
    ("GET", "/api/org/", None, Perm.VIEW_ORG),
    ("PATCH", "/api/org/", {"name": "Renamed"}, Perm.MANAGE_ORG),
    ("GET", "/api/members/", None, Perm.VIEW_ORG),
    ("GET", "/api/teams/", None, Perm.VIEW_ORG),
    ("POST", "/api/teams/", {"name": "New team"}, Perm.MANAGE_MEMBERS),
    ("GET", "/api/invitations/", None, Perm.MANAGE_MEMBERS),
    ("POST", "/api/invitations/", {"email": "new@example.com", "role": "member"}, Perm.MANAGE_MEMBERS),
    ("GET", "/api/tokens/", None, Perm.MANAGE_ORG),
    ("POST", "/api/tokens/", {"name": "ci"}, Perm.MANAGE_ORG),
    ("GET", "/api/audit/", None, Perm.VIEW_AUDIT),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "perm"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
def test_api_endpoints_follow_the_matrix(role, method, path, body, perm, org, owner_m, django_capture_on_commit_callbacks):
    user = owner_m.user if role == Role.OWNER else MembershipFactory(organization=org, role=role).user
    client = APIClient()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.generic(method, path, data=_dumps(body), content_type="application/json")
    allowed = EXPECTED[perm][ROLES.index(role)]
    if allowed:
        assert response.status_code in (200, 201), response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "permission_denied"


def _dumps(body):
    return json.dumps(body) if body is not None else ""
