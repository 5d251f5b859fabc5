"""Services of accounts: invitations end to end, the audit trail of every write, signup."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts import services, tasks
from accounts.errors import ApplicationError
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Role, Team, User
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def invite(owner_ctx, django_capture_on_commit_callbacks):
    """invite(email, role=..., team=...) -> (invitation, token), with the email sent."""

    def make(email, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return services.invitation_create(actor=owner_ctx, email=email, **kwargs)

    return make


# Invitations


def test_invitation_email_carries_the_only_copy_of_the_token(invite, org):
    invitation, token = invite("New.Person@Example.com", role=Role.ADMIN)
    assert invitation.email == "new.person@example.com"
    assert invitation.token_hash != token and token not in invitation.token_hash
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.com"]
    assert token in mail.outbox[0].body
    assert org.name in mail.outbox[0].subject


def test_invitation_accept_creates_membership_with_role_and_team(invite, org):
    team = TeamFactory(organization=org)
    invitation, token = invite("joiner@example.com", role=Role.VIEWER, team=team)
    user = UserFactory(email="Joiner@example.com")

    membership = services.invitation_accept(token=token, user=user, ip=IP)

    assert (membership.organization, membership.user, membership.role) == (org, user, Role.VIEWER)
    assert list(membership.teams.all()) == [team]
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    assert not invitation.is_pending


def test_invitation_expired(invite):
    invitation, token = invite("late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    user = UserFactory(email="late@example.com")
    with pytest.raises(ApplicationError) as info:
        services.invitation_accept(token=token, user=user)
    assert (info.value.code, info.value.field) == ("expired_token", "token")
    assert not Membership.objects.filter(user=user).exists()


def test_invitation_cannot_be_reused(invite, org):
    _invitation, token = invite("once@example.com")
    user = UserFactory(email="once@example.com")
    services.invitation_accept(token=token, user=user)
    with pytest.raises(ApplicationError) as info:
        services.invitation_accept(token=token, user=user)
    assert info.value.code == "used_token"
    assert Membership.objects.filter(organization=org, user=user).count() == 1


def test_invitation_for_another_email_is_refused(invite):
    _invitation, token = invite("right@example.com")
    wrong = UserFactory(email="wrong@example.com")
    with pytest.raises(ApplicationError) as info:
        services.invitation_accept(token=token, user=wrong)
    assert (info.value.code, info.value.status) == ("wrong_user", 403)
    assert not Membership.objects.filter(user=wrong).exists()
    # The rightful invitee can still use it.
    services.invitation_accept(token=token, user=UserFactory(email="right@example.com"))


@pytest.mark.parametrize("token", ["tgi_not-a-real-token", ""])
def test_invitation_unknown_token(token):
    with pytest.raises(ApplicationError) as info:
        services.invitation_lookup(token=token)
    assert (info.value.code, info.value.status) == ("invalid_token", 404)


def test_revoked_invitation_is_invalid(invite, owner_ctx):
    invitation, token = invite("revoked@example.com")
    services.invitation_revoke(actor=owner_ctx, invitation=invitation)
    with pytest.raises(ApplicationError) as info:
        services.invitation_accept(token=token, user=UserFactory(email="revoked@example.com"))
    assert info.value.code == "invalid_token"


def test_revoke_is_idempotent_and_refuses_accepted(invite, owner_ctx):
    invitation, token = invite("keep@example.com")
    services.invitation_accept(token=token, user=UserFactory(email="keep@example.com"))
    invitation.refresh_from_db()
    with pytest.raises(ApplicationError) as info:
        services.invitation_revoke(actor=owner_ctx, invitation=invitation)
    assert info.value.code == "already_accepted"

    pending, _ = invite("later@example.com")
    services.invitation_revoke(actor=owner_ctx, invitation=pending)
    first = Invitation.objects.get(pk=pending.pk).revoked_at
    services.invitation_revoke(actor=owner_ctx, invitation=Invitation.objects.get(pk=pending.pk))
    assert Invitation.objects.get(pk=pending.pk).revoked_at == first
    assert AuditLog.objects.filter(action="invitation.revoke").count() == 1


def test_token_revoke_is_idempotent(owner_ctx, org):
    token, _ = services.api_token_create(organization=org, name="ci")
    services.api_token_revoke(actor=owner_ctx, token=token)
    first = ApiToken.objects.get(pk=token.pk).revoked_at
    services.api_token_revoke(actor=owner_ctx, token=ApiToken.objects.get(pk=token.pk))
    assert ApiToken.objects.get(pk=token.pk).revoked_at == first
    assert AuditLog.objects.filter(action="api_token.revoke").count() == 1


def test_reinviting_revokes_the_previous_link(invite):
    first, first_token = invite("twice@example.com")
    _second, second_token = invite("twice@example.com")
    first.refresh_from_db()
    assert first.revoked_at is not None
    user = UserFactory(email="twice@example.com")
    with pytest.raises(ApplicationError):
        services.invitation_accept(token=first_token, user=user)
    services.invitation_accept(token=second_token, user=user)


def test_inviting_an_existing_member_is_a_duplicate(invite, org, admin_user):
    with pytest.raises(ApplicationError) as info:
        invite(admin_user.email.upper())
    assert (info.value.code, info.value.field) == ("duplicate", "email")
    assert not Invitation.objects.filter(organization=org).exists()


def test_invitations_expire_task_counts_stale(invite):
    fresh, _ = invite("fresh@example.com")
    stale, _ = invite("stale@example.com")
    Invitation.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert services.invitations_expire() == 1
    assert tasks.invitations_expire.name == "accounts.invitations_expire"
    assert tasks.invitations_expire.apply().get() == 1


# Audit: each service writes one entry with action, actor, target and ip.


def _team(org):
    return TeamFactory(organization=org)


def _member(org):
    return MembershipFactory(organization=org, role=Role.MEMBER)


WRITES = [
    # (action, call(ctx, org) -> target)
    ("organization.update", lambda ctx, org: services.organization_update(actor=ctx, name="Renamed", ip=IP)),
    ("team.create", lambda ctx, org: services.team_create(actor=ctx, name="Platform", ip=IP)),
    ("team.rename", lambda ctx, org: services.team_rename(actor=ctx, team=_team(org), name="Core", ip=IP)),
    ("member.role_change", lambda ctx, org: services.membership_set_role(actor=ctx, membership=_member(org), role=Role.ADMIN, ip=IP)),
    ("member.teams_change", lambda ctx, org: services.membership_set_teams(actor=ctx, membership=_member(org), teams=[_team(org)], ip=IP)),
    ("invitation.create", lambda ctx, org: services.invitation_create(actor=ctx, email="a@example.com", ip=IP)[0]),
    ("api_token.create", lambda ctx, org: services.api_token_create(organization=org, name="ci", actor=ctx.user, ip=IP)[0]),
]


@pytest.mark.parametrize(("action", "call"), WRITES, ids=[w[0] for w in WRITES])
def test_each_write_is_audited(action, call, owner_ctx, org):
    target = call(owner_ctx, org)
    entry = AuditLog.objects.get(action=action)
    assert entry.organization == org
    assert entry.actor == owner_ctx.user and entry.actor_label == str(owner_ctx.user)
    assert (entry.target_type, entry.target_id) == (target._meta.model_name, str(target.pk))
    assert entry.target_label == str(target)[:200]
    assert entry.ip == IP


DELETES = [
    ("team.delete", "team", _team, lambda ctx, obj: services.team_delete(actor=ctx, team=obj, ip=IP)),
    ("member.remove", "membership", _member, lambda ctx, obj: services.membership_remove(actor=ctx, membership=obj, ip=IP)),
    (
        "invitation.revoke",
        "invitation",
        lambda org: services.invitation_create(actor=OrgContext(organization=org, role=Role.OWNER, user=None), email="b@example.com")[0],
        lambda ctx, obj: services.invitation_revoke(actor=ctx, invitation=obj, ip=IP),
    ),
    (
        "api_token.revoke",
        "apitoken",
        lambda org: services.api_token_create(organization=org, name="old")[0],
        lambda ctx, obj: services.api_token_revoke(actor=ctx, token=obj, ip=IP),
    ),
]


@pytest.mark.parametrize(("action", "model_name", "make", "call"), DELETES, ids=[d[0] for d in DELETES])
def test_each_removal_is_audited(action, model_name, make, call, owner_ctx, org):
    obj = make(org)
    pk, label = obj.pk, str(obj)
    call(owner_ctx, obj)
    entry = AuditLog.objects.get(action=action)
    assert (entry.organization, entry.actor, entry.ip) == (org, owner_ctx.user, IP)
    assert (entry.target_type, entry.target_id, entry.target_label) == (model_name, str(pk), label)


def test_signup_and_accept_are_audited(invite, org):
    user, new_org = services.user_signup(email="founder@example.com", password="x" * 12, organization_name="Acme", ip=IP)
    entry = AuditLog.objects.get(action="organization.create")
    assert (entry.organization, entry.actor, entry.target_id, entry.ip) == (new_org, user, str(new_org.pk), IP)

    invitation, token = invite("guest@example.com")
    guest = UserFactory(email="guest@example.com")
    services.invitation_accept(token=token, user=guest, ip=IP)
    entry = AuditLog.objects.get(action="invitation.accept")
    assert (entry.organization, entry.actor, entry.target_id, entry.ip) == (org, guest, str(invitation.pk), IP)


def test_audit_data_records_the_change(owner_ctx, org):
    team = TeamFactory(organization=org, name="Old")
    services.team_rename(actor=owner_ctx, team=team, name="New")
    member = _member(org)
    services.membership_set_role(actor=owner_ctx, membership=member, role=Role.VIEWER)
    assert AuditLog.objects.get(action="team.rename").data == {"from": "Old"}
    assert AuditLog.objects.get(action="member.role_change").data == {"from": "member", "to": "viewer"}


def test_audit_never_contains_a_secret(owner_ctx, org, invite):
    token, token_secret = services.api_token_create(organization=org, name="canary", actor=owner_ctx.user, ip=IP)
    services.api_token_revoke(actor=owner_ctx, token=token, ip=IP)
    invitation, invitation_token = invite("canary@example.com")
    services.invitation_accept(token=invitation_token, user=UserFactory(email="canary@example.com"), ip=IP)
    services.invitation_revoke(actor=owner_ctx, invitation=Invitation.objects.create(
        organization=org, email="other@example.com", token_hash="f" * 64, expires_at=timezone.now() + timedelta(days=1),
    ))

    entries = list(AuditLog.objects.filter(organization=org).values())
    assert len(entries) >= 5
    dump = json.dumps(entries, default=str)
    hashes = [ApiToken.objects.get(pk=token.pk).token_hash, Invitation.objects.get(pk=invitation.pk).token_hash]
    for secret in [token_secret, invitation_token, *hashes]:
        assert secret not in dump
        assert secret[4:16] not in dump  # not even a fragment past the visible prefix


# Signup


def test_signup_creates_user_and_owned_org():
    user, org = services.user_signup(email=" Founder@Example.COM ", password="x" * 12, name=" Ada ", organization_name=" Acme ")
    assert user.email == "founder@example.com" and user.name == "Ada"
    assert user.check_password("x" * 12)
    assert org.name == "Acme" and org.slug == "acme"
    assert Membership.objects.get(organization=org, user=user).role == Role.OWNER


def test_signup_duplicate_email_case_insensitive():
    services.user_signup(email="dup@example.com", password="x" * 12, organization_name="First")
    with pytest.raises(ApplicationError) as info:
        services.user_signup(email="DUP@example.com", password="y" * 12, organization_name="Second")
    assert (info.value.code, info.value.field) == ("duplicate", "email")
    assert User.objects.filter(email__iexact="dup@example.com").count() == 1
    assert not Organization.objects.filter(name="Second").exists()


def test_signup_needs_an_organization_name():
    with pytest.raises(ApplicationError) as info:
        services.user_signup(email="solo@example.com", password="x" * 12, organization_name="  ")
    assert info.value.field == "name"
    assert not User.objects.filter(email="solo@example.com").exists()  # rolled back with the org


def test_org_slugs_stay_unique():
    _, first = services.user_signup(email="a1@example.com", password="x" * 12, organization_name="Same Name")
    _, second = services.user_signup(email="a2@example.com", password="x" * 12, organization_name="Same Name")
    assert (first.slug, second.slug) == ("same-name", "same-name-2")


def test_team_names_are_unique_per_org_case_insensitive(owner_ctx, org, other_org):
    services.team_create(actor=owner_ctx, name="Ops")
    with pytest.raises(ApplicationError) as info:
        services.team_create(actor=owner_ctx, name="ops")
    assert (info.value.code, info.value.field) == ("duplicate", "name")
    services.team_create(actor=OrgContext(organization=other_org, role=Role.OWNER, user=None), name="Ops")
    assert Team.objects.filter(name__iexact="ops").count() == 2
