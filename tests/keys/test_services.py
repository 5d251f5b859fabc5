"""keys.services and the key visibility selector, below the HTTP layer."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.crypto import keyed_hash
from accounts.errors import ApplicationError
from accounts.models import AuditLog, Role
from accounts.tenancy import OrgContext
from keys import selectors, services
from keys.invalidation import config_changed, local_version_path
from keys.models import Deployment, ProviderCredential
from relay.snapshots import key_snapshot_by_hash
from tests.accounts.factories import MembershipFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def ctx(org, role, user=None):
    return OrgContext(organization=org, role=role, user=user)


@pytest.fixture
def people(org):
    """One user per role, plus a second member."""
    users = {role: MembershipFactory(organization=org, role=role).user for role in Role.values}
    users["other_member"] = MembershipFactory(organization=org, role=Role.MEMBER).user
    return users


# Who may manage which key


@pytest.mark.parametrize(
    ("role", "own", "allowed"),
    [
        (Role.OWNER, False, True), (Role.ADMIN, False, True), (Role.MEMBER, True, True),
        (Role.MEMBER, False, False), (Role.VIEWER, True, False), (Role.VIEWER, False, False),
    ],
)
def test_can_manage_key(org, people, role, own, allowed):
    actor = people[role]
    key = VirtualKeyFactory(organization=org, user=actor if own else people["other_member"])
    assert services.can_manage_key(ctx(org, role, actor), key) is allowed


def test_member_writes_to_a_visible_but_foreign_key_are_forbidden(org, people):
    """The service is the last line: even if a view showed the key, a member's write is a 403."""
    key = VirtualKeyFactory(organization=org, user=people["other_member"], name="theirs")
    actor = ctx(org, Role.MEMBER, people[Role.MEMBER])
    for call in (
        lambda: services.virtual_key_update(actor=actor, key=key, name="mine now"),
        lambda: services.virtual_key_rotate(actor=actor, key=key),
        lambda: services.virtual_key_revoke(actor=actor, key=key),
    ):
        with pytest.raises(ApplicationError) as exc:
            call()
        assert (exc.value.status, exc.value.code) == (403, "permission_denied")
    key.refresh_from_db()
    assert key.name == "theirs" and key.revoked_at is None


def test_visible_keys_per_caller(org, people):
    mine = VirtualKeyFactory(organization=org, user=people[Role.MEMBER])
    theirs = VirtualKeyFactory(organization=org, user=people["other_member"])
    unowned = VirtualKeyFactory(organization=org, user=None)
    VirtualKeyFactory()  # another organization

    def visible(role, user):
        return set(selectors.virtual_key_visible_list(actor=ctx(org, role, user)))

    assert visible(Role.OWNER, people[Role.OWNER]) == {mine, theirs, unowned}
    assert visible(Role.ADMIN, None) == {mine, theirs, unowned}
    assert visible(Role.MEMBER, people[Role.MEMBER]) == {mine}
    assert visible(Role.MEMBER, None) == set()
    assert visible(Role.VIEWER, people[Role.VIEWER]) == set()


# Secrets, rotation, revocation


def test_create_keeps_only_the_hash(org, people):
    key, secret = services.virtual_key_create(actor=ctx(org, Role.MEMBER, people[Role.MEMBER]), name="k")
    assert key.user == people[Role.MEMBER]
    assert key.key_hash == keyed_hash(secret) and secret not in json.dumps(list(AuditLog.objects.values()), default=str)
    assert secret.startswith(key.prefix) and len(key.prefix) < len(secret)


def test_update_refuses_a_new_past_expiry_but_keeps_an_unchanged_one(org, owner):
    actor = ctx(org, Role.OWNER, owner)
    past = timezone.now() - timedelta(days=1)
    key = VirtualKeyFactory(organization=org, expires_at=past)
    # An edit form resubmits the stored expiry with the other fields.
    assert services.virtual_key_update(actor=actor, key=key, name="renamed", expires_at=past).name == "renamed"
    with pytest.raises(ApplicationError) as exc:
        services.virtual_key_update(actor=actor, key=key, expires_at=past - timedelta(hours=1))
    assert exc.value.field == "expires_at"
    assert services.virtual_key_update(actor=actor, key=key, expires_at=None).expires_at is None


def test_grace_period_snapshot_expires_with_the_grace(org, owner):
    key, old = services.virtual_key_create(actor=ctx(org, Role.OWNER, owner), name="k", expires_at=timezone.now() + timedelta(days=9))
    key, new = services.virtual_key_rotate(actor=ctx(org, Role.OWNER, owner), key=key, grace_seconds=60)
    old_snapshot = key_snapshot_by_hash(keyed_hash(old))
    new_snapshot = key_snapshot_by_hash(keyed_hash(new))
    assert old_snapshot.expires_at == key.previous_valid_until.timestamp()
    assert new_snapshot.expires_at == key.expires_at.timestamp()


def test_a_second_rotation_ends_the_first_grace(org, owner):
    actor = ctx(org, Role.OWNER, owner)
    key, first = services.virtual_key_create(actor=actor, name="k")
    key, second = services.virtual_key_rotate(actor=actor, key=key, grace_seconds=3600)
    key, third = services.virtual_key_rotate(actor=actor, key=key, grace_seconds=3600)
    assert key_snapshot_by_hash(keyed_hash(first)) is None
    assert key_snapshot_by_hash(keyed_hash(second)) is not None
    assert key_snapshot_by_hash(keyed_hash(third)) is not None


def test_revoke_ends_the_grace_too(org, owner):
    actor = ctx(org, Role.OWNER, owner)
    key, first = services.virtual_key_create(actor=actor, name="k")
    key, second = services.virtual_key_rotate(actor=actor, key=key, grace_seconds=3600)
    services.virtual_key_revoke(actor=actor, key=key)
    assert key_snapshot_by_hash(keyed_hash(first)) is None
    assert key_snapshot_by_hash(keyed_hash(second)) is None


def test_writes_tell_the_relay_after_commit(org, owner, django_capture_on_commit_callbacks, settings, tmp_path, monkeypatch):
    settings.REDIS_URL = None
    monkeypatch.setattr("keys.invalidation.DATA_DIR", tmp_path)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.virtual_key_create(actor=ctx(org, Role.OWNER, owner), name="k")
    assert config_changed in callbacks
    assert local_version_path().read_text().isdigit()


# Credentials, models, deployments


def test_api_key_hint_only_for_long_keys(org, owner):
    actor = ctx(org, Role.OWNER, owner)
    long = services.credential_create(actor=actor, name="a", provider="mock", api_key="sk-0123456789ABCD")
    short = services.credential_create(actor=actor, name="b", provider="mock", api_key="sk-short")
    assert (long.api_key_hint, short.api_key_hint) == ("ABCD", "")


def test_credential_rename_to_a_taken_name_is_a_field_error(org, owner):
    ProviderCredentialFactory(organization=org, name="Taken")
    credential = ProviderCredentialFactory(organization=org, name="Mine")
    with pytest.raises(ApplicationError) as exc:
        services.credential_update(actor=ctx(org, Role.OWNER, owner), credential=credential, name=" Taken ")
    assert (exc.value.field, exc.value.code) == ("name", "duplicate")
    # Keeping its own name is no conflict.
    assert services.credential_update(actor=ctx(org, Role.OWNER, owner), credential=credential, name="Mine").name == "Mine"


@pytest.mark.parametrize("upstream", ["", "   ", "gpt\r\nX-Injected: 1", "gpt\x00"])
def test_deployment_upstream_model_is_checked_on_update(org, owner, upstream):
    deployment = DeploymentFactory(organization=org)
    with pytest.raises(ApplicationError) as exc:
        services.deployment_update(actor=ctx(org, Role.OWNER, owner), deployment=deployment, upstream_model=upstream)
    assert exc.value.field == "upstream_model"
    assert Deployment.objects.get(pk=deployment.pk).upstream_model == "gpt-4o-mini"


def test_deployment_across_organizations_is_refused(org, other_org, owner):
    actor = ctx(org, Role.OWNER, owner)
    model = ModelFactory(organization=org)
    with pytest.raises(ApplicationError) as exc:
        services.deployment_create(actor=actor, model=model, credential=ProviderCredentialFactory(organization=other_org), upstream_model="m")
    assert (exc.value.field, exc.value.status) == ("credential", 400)
    with pytest.raises(ApplicationError) as exc:
        services.deployment_create(
            actor=actor, model=ModelFactory(organization=other_org), credential=ProviderCredentialFactory(organization=org), upstream_model="m"
        )
    assert exc.value.status == 404
    assert not Deployment.objects.exists()


def test_model_delete_removes_its_deployments_but_not_credentials(org, owner):
    deployment = DeploymentFactory(organization=org)
    services.model_delete(actor=ctx(org, Role.OWNER, owner), model=deployment.model)
    assert not Deployment.objects.exists() and ProviderCredential.objects.filter(pk=deployment.credential_id).exists()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_provider_writes_need_manage_providers(org, people, role):
    actor = ctx(org, role, people[role])
    credential = ProviderCredentialFactory(organization=org)
    deployment = DeploymentFactory(organization=org)
    for call in (
        lambda: services.credential_create(actor=actor, name="x", provider="mock"),
        lambda: services.credential_update(actor=actor, credential=credential, name="x"),
        lambda: services.credential_delete(actor=actor, credential=credential),
        lambda: services.model_create(actor=actor, name="x"),
        lambda: services.model_update(actor=actor, model=deployment.model, description="x"),
        lambda: services.model_delete(actor=actor, model=deployment.model),
        lambda: services.deployment_create(actor=actor, model=deployment.model, credential=credential, upstream_model="m"),
        lambda: services.deployment_update(actor=actor, deployment=deployment, weight=5),
        lambda: services.deployment_delete(actor=actor, deployment=deployment),
    ):
        with pytest.raises(ApplicationError) as exc:
            call()
        assert exc.value.status == 403
    assert not AuditLog.objects.exists()
