"""No field lets a user raise their own role, widen a key beyond their own rights, or move an object elsewhere.

Through the REST API and the dashboard forms alike:
- roles: nobody changes their own role upwards, grants a role above their own, or touches the owner role
  without being an owner (invitations and API tokens included);
- keys: a member creates and edits keys for themselves only, in teams they belong to, for models of their
  organization; extra fields (user, team, organization) in an update are ignored, never applied;
- moving: every update endpoint and edit form, sent the ids of another organization's (or another team's)
  objects beside a valid body, leaves the object's organization, team, user, model, credential and scope as
  they were.
"""

import json

import pytest
from django.urls import reverse

from accounts import services as account_services
from accounts.models import ApiToken, Invitation, Membership, Role
from keys.models import VirtualKey
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.hardening import helpers
from tests.hardening.helpers import ROUTES
from tests.keys.factories import ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

pytestmark = pytest.mark.django_db

ROLE_ORDER = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]
OWNERSHIP_FIELDS = ("organization_id", "team_id", "user_id", "model_id", "credential_id", "key_id", "scope", "kind", "created_by_id")


@pytest.fixture(autouse=True)
def _egress(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = helpers.EGRESS_TEST_HOSTS


@pytest.fixture
def w():
    return helpers.make_world()


def _session(user):
    client = helpers.APIClient()
    client.force_login(user)
    return client


def _membership(org, user) -> Membership:
    return Membership.objects.get(organization=org, user=user)


def _patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


# --- Roles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "target"), [
    (role, target) for i, role in enumerate(ROLE_ORDER[:-1]) for target in ROLE_ORDER[i + 1:]
])
def test_nobody_raises_their_own_role_through_the_api(w, role, target):
    user = {Role.VIEWER: w.viewer_b, Role.MEMBER: w.member_b, Role.ADMIN: w.admin_b}[role]
    membership = _membership(w.org_b, user)
    response = _patch(_session(user), f"/api/members/{membership.pk}/", {"role": target})
    assert response.status_code == 403, response.content
    membership.refresh_from_db()
    assert membership.role == role


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER, Role.ADMIN])
def test_nobody_raises_their_own_role_through_the_form(w, role):
    user = {Role.VIEWER: w.viewer_b, Role.MEMBER: w.member_b, Role.ADMIN: w.admin_b}[role]
    membership = _membership(w.org_b, user)
    response = _session(user).post(reverse("member_role", args=[membership.pk]), {"role": Role.OWNER})
    # Viewers and members may not use the form at all (403); an admin is not offered "owner" (400).
    assert response.status_code == (400 if role == Role.ADMIN else 403), response.status_code
    membership.refresh_from_db()
    assert membership.role == role


def test_an_admin_cannot_grant_owner_or_demote_an_owner(w):
    admin = _session(w.admin_b)
    other = MembershipFactory(organization=w.org_b, role=Role.ADMIN)
    owner = _membership(w.org_b, w.owner_b)
    assert _patch(admin, f"/api/members/{other.pk}/", {"role": Role.OWNER}).status_code == 403
    assert _patch(admin, f"/api/members/{owner.pk}/", {"role": Role.VIEWER}).status_code == 403
    assert admin.delete(f"/api/members/{owner.pk}/").status_code == 403
    assert admin.post(reverse("member_role", args=[owner.pk]), {"role": Role.VIEWER}).status_code in (400, 403)
    assert admin.post(reverse("member_remove", args=[owner.pk])).status_code == 403
    other.refresh_from_db()
    owner.refresh_from_db()
    assert (other.role, owner.role) == (Role.ADMIN, Role.OWNER)


def test_a_member_cannot_change_or_remove_anyone_else(w):
    member = _session(w.member_b)
    viewer = _membership(w.org_b, w.viewer_b)
    assert _patch(member, f"/api/members/{viewer.pk}/", {"role": Role.MEMBER}).status_code == 403
    assert member.delete(f"/api/members/{viewer.pk}/").status_code == 403
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_leaving_is_allowed_but_is_not_a_role_change(w):
    member = _membership(w.org_b, w.member_b)
    response = _session(w.member_b).delete(f"/api/members/{member.pk}/")
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_invitations_never_grant_above_the_inviter(w):
    admin = _session(w.admin_b)
    response = admin.post("/api/invitations/", {"email": "boss@example.com", "role": Role.OWNER}, format="json")
    assert response.status_code == 403
    response = admin.post(reverse("member_invite"), {"email": "boss2@example.com", "role": Role.OWNER, "team": ""})
    assert response.status_code == 400  # "owner" is not a choice for an admin
    foreign_team = TeamFactory(organization=w.org_a)
    response = admin.post("/api/invitations/", {"email": "x@example.com", "role": Role.MEMBER, "team": foreign_team.pk}, format="json")
    assert response.status_code in (400, 404)
    assert not Invitation.objects.filter(organization=w.org_b).exists()


def test_api_tokens_cannot_hold_the_owner_role(w):
    owner = _session(w.owner_b)
    response = owner.post("/api/tokens/", {"name": "root", "role": Role.OWNER}, format="json")
    assert response.status_code == 400
    assert not ApiToken.objects.filter(organization=w.org_b, role=Role.OWNER).exists()


def test_a_member_api_token_cannot_raise_its_creator(w):
    """A token acts with its own role; its creator's higher role does not leak into it, and back."""
    _token, secret = account_services.api_token_create(organization=w.org_b, name="ci", role=Role.MEMBER, actor=w.admin_b)
    client = helpers.APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    member = _membership(w.org_b, w.member_b)
    assert _patch(client, f"/api/members/{member.pk}/", {"role": Role.ADMIN}).status_code == 403
    assert client.post("/api/tokens/", {"name": "more", "role": Role.ADMIN}, format="json").status_code == 403


# --- Keys ---------------------------------------------------------------------------------------------


def test_a_member_creates_keys_only_for_themselves(w):
    member = _session(w.member_b)
    response = member.post("/api/keys/", {"name": "for someone else", "user": w.other_b.pk}, format="json")
    assert response.status_code == 403
    response = member.post(reverse("key_create"), {"name": "form for someone else", "user": w.other_b.pk, "team": ""})
    assert response.status_code == 200  # the field is not on a member's form: the key is theirs
    key = VirtualKey.objects.get(organization=w.org_b, name="form for someone else")
    assert key.user_id == w.member_b.pk
    assert not VirtualKey.objects.filter(name="for someone else").exists()


def test_a_member_creates_keys_only_in_their_teams(w):
    member = _session(w.member_b)
    other_team = TeamFactory(organization=w.org_b)
    foreign_team = TeamFactory(organization=w.org_a)
    for team in (other_team, foreign_team):
        response = member.post("/api/keys/", {"name": "team key", "team": team.pk}, format="json")
        assert response.status_code in (403, 400), response.content
        response = member.post(reverse("key_create"), {"name": "team key (form)", "team": team.pk})
        assert response.status_code == 400
    assert not VirtualKey.objects.filter(name__startswith="team key").exists()
    response = member.post("/api/keys/", {"name": "own team key", "team": w.team_b.pk}, format="json")
    assert response.status_code == 201


def test_allowed_models_are_the_organizations_own(w):
    member = _session(w.member_b)
    foreign = ModelFactory(organization=w.org_a, name="only-in-a")
    response = member.post("/api/keys/", {"name": "wide", "allowed_models": [foreign.name]}, format="json")
    assert response.status_code == 400
    assert "allowed_models" in response.json()["error"]["fields"]
    response = _patch(member, f"/api/keys/{w.member_key.pk}/", {"allowed_models": [foreign.name]})
    assert response.status_code == 400
    w.member_key.refresh_from_db()
    assert w.member_key.allowed_models == []


def test_a_key_update_cannot_change_its_owner_team_or_organization(w):
    member = _session(w.member_b)
    foreign_team = TeamFactory(organization=w.org_a)
    before = helpers.row(w.member_key)
    hostile = {"user": w.other_b.pk, "user_id": w.other_b.pk, "team": foreign_team.pk, "team_id": w.team_b.pk,
               "organization": w.org_a.pk, "organization_id": w.org_a.pk, "key_hash": "0" * 64, "revoked_at": None,
               "created_by": w.other_b.pk}
    response = _patch(member, f"/api/keys/{w.member_key.pk}/", {"name": "renamed", **hostile})
    assert response.status_code in (200, 400)
    response = member.post(reverse("key_update", args=[w.member_key.pk]),
                           {"edit-name": "renamed again", **{f"edit-{k}": v for k, v in hostile.items() if v is not None}, **{
                               k: v for k, v in hostile.items() if v is not None}})
    assert response.status_code in (302, 400)
    after = helpers.row(w.member_key)
    for field in ("organization_id", "team_id", "user_id", "key_hash", "created_by_id", "revoked_at"):
        assert after[field] == before[field], field


def test_an_admin_key_for_a_member_stays_as_the_admin_set_it(w):
    """A key an admin made for a member in a team the member is not in: the member may rename it, not move it."""
    team = TeamFactory(organization=w.org_b)
    key = VirtualKeyFactory(organization=w.org_b, user=w.member_b, team=team, rpm_limit=10)
    response = _patch(_session(w.member_b), f"/api/keys/{key.pk}/", {"name": "mine", "team": w.team_b.pk, "user": w.other_b.pk})
    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.team_id, key.user_id, key.name) == (team.pk, w.member_b.pk, "mine")


# --- Moving objects elsewhere -------------------------------------------------------------------------


def _foreign_ids(w) -> dict:
    """Ids of organization A's objects, and of organization B's team, under every name an update might take."""
    team_a = TeamFactory(organization=w.org_a)
    credential_a = ProviderCredentialFactory(organization=w.org_a)
    model_a = w.model_a
    key_a = VirtualKeyFactory(organization=w.org_a)
    ids = {"organization": w.org_a.pk, "team": team_a.pk, "user": w.admin_a.pk, "model": model_a.pk, "credential": credential_a.pk,
           "key": key_a.pk, "scope": "team", "kind": "webhook", "teams": [team_a.pk]}
    return {**ids, **{f"{k}_id": v for k, v in ids.items() if isinstance(v, int)}}


UPDATE_OPS = [
    pytest.param(route, op, id=f"{route.name}-{op.method}")
    for route in ROUTES
    for op in route.ops
    if route.make is not None and op.body is not None and (op.method == "PATCH" or route.name.endswith(("_edit", "_rename", "_update", "_teams")))
]


@pytest.mark.parametrize(("route", "op"), UPDATE_OPS)
def test_no_update_moves_an_object(route, op, w):
    """An admin of B updates B's object with a valid body plus A's ids in every field name: nothing moves."""
    obj = route.make(w, w.member_b)
    body = op.body(w, obj, w.org_b)
    foreign = _foreign_ids(w)
    before = helpers.row(obj)
    client = _session(w.admin_b)
    if route.api:
        response = helpers.send(client, op.method, reverse(route.name, args=[obj.pk]), api=True, body={**foreign, **body})
        assert response.status_code in (200, 400), response.content
        if "teams" in foreign and route.name == "api-member-detail":
            response = _patch(client, reverse(route.name, args=[obj.pk]), {"teams": foreign["teams"]})
            assert response.status_code == 400
    else:
        prefixed = {f"{prefix}{k}": v for k, v in foreign.items() for prefix in ("", "edit-", f"model-{obj.pk}-")}
        response = client.post(reverse(route.name, args=[obj.pk]), {**prefixed, **body})
        assert response.status_code in (302, 400), response.status_code
    after = helpers.row(obj)
    assert after is not None
    for name in OWNERSHIP_FIELDS:
        if name in before:
            assert after[name] == before[name], f"{route.name}: {name} went from {before[name]} to {after[name]}"
    if isinstance(obj, Membership):
        if not route.api:  # the teams form, given only another organization's team
            response = client.post(reverse(route.name, args=[obj.pk]), {"teams": foreign["teams"]})
            assert response.status_code == 400
        assert not obj.teams.filter(organization=w.org_a).exists()


def test_a_user_of_two_organizations_acts_in_the_chosen_one_only(w):
    """Someone who is admin in A but only viewer in B cannot carry A's role into B by switching."""
    user = UserFactory()
    MembershipFactory(organization=w.org_a, user=user, role=Role.ADMIN)
    MembershipFactory(organization=w.org_b, user=user, role=Role.VIEWER)
    client = _session(user)
    assert client.post(reverse("org_switch"), {"organization": w.org_b.pk}).status_code == 302
    response = client.post("/api/teams/", {"name": "sneaky"}, format="json")
    assert response.status_code == 403
    assert client.post(reverse("team_create"), {"name": "sneaky"}).status_code == 403
    stranger_org = OrganizationFactory()
    assert client.post(reverse("org_switch"), {"organization": stranger_org.pk}).status_code == 404
    assert client.post("/api/teams/", {"name": "still sneaky"}, format="json").status_code == 403
