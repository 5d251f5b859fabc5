"""The REST API of keys: virtual keys, provider presets and credentials, models and deployments."""

import dataclasses
import json
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.crypto import keyed_hash
from accounts.models import AuditLog, Membership, Role
from keys import encryption
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.selectors import credential_extra_headers
from relay.snapshots import key_snapshot_by_hash
from tests.accounts.factories import MembershipFactory, TeamFactory, UserFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory
from wire.presets import PRESETS

pytestmark = pytest.mark.django_db

API_KEY = "sk-live-canary-0123456789WXYZ"
HEADER_VALUE = "header-canary-secret-value"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _egress(settings):
    # No DNS in tests: the hosts used below count as reachable; the SSRF tests empty this list.
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com", "llm.example.com"]


@pytest.fixture
def login():
    """login(user) -> an APIClient with a browser session for user."""

    def make(user):
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def owner_client(login, owner):
    return login(owner)


@pytest.fixture
def admin_client(login, admin_user):
    return login(admin_user)


@pytest.fixture
def member_client(login, member_user):
    return login(member_user)


@pytest.fixture
def viewer_client(login, viewer_user):
    return login(viewer_user)


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def field_error(response, field):
    error = error_of(response, 400)
    assert field in error["fields"], error
    assert all(isinstance(message, str) for message in error["fields"][field])
    return error


# Virtual keys: the secret is shown once


def test_key_create_shows_the_secret_once(owner_client, org):
    response = owner_client.post("/api/keys/", {"name": "CI"}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    secret = created["secret"]
    assert secret.startswith("tg-") and secret.startswith(created["prefix"])
    assert created["is_active"] and created["revoked_at"] is None

    for later in (owner_client.get("/api/keys/"), owner_client.get(f"/api/keys/{created['id']}/")):
        assert later.status_code == 200
        content = later.content.decode()
        assert secret not in content
        assert "secret" not in content and "key_hash" not in content
    detail = owner_client.get(f"/api/keys/{created['id']}/").json()
    assert detail["prefix"] == created["prefix"] and "secret" not in detail

    key = VirtualKey.objects.get(pk=created["id"])
    assert key.key_hash == keyed_hash(secret) != secret
    assert key_snapshot_by_hash(keyed_hash(secret)).id == key.pk
    assert secret not in json.dumps(list(AuditLog.objects.values()), default=str)
    assert AuditLog.objects.filter(organization=org, action="key.create", target_id=str(key.pk)).exists()


def test_key_create_with_every_field(admin_client, org, member_user):
    ModelFactory(organization=org, name="gpt-4o")
    ModelFactory(organization=org, name="claude")
    team = TeamFactory(organization=org, name="Data")
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    body = {
        "name": "  Notebook  ", "user": member_user.pk, "team": team.pk, "allowed_models": ["gpt-4o", "claude", "gpt-4o"],
        "rpm_limit": 60, "tpm_limit": 100000, "expires_at": expires.isoformat(), "metadata": {"env": "dev"},
    }
    created = admin_client.post("/api/keys/", body, format="json").json()
    assert created["name"] == "Notebook"
    assert created["user"] == {"id": member_user.pk, "email": member_user.email, "name": member_user.name}
    assert created["team"] == {"id": team.pk, "name": "Data"}
    assert created["allowed_models"] == ["claude", "gpt-4o"]
    assert (created["rpm_limit"], created["tpm_limit"], created["metadata"]) == (60, 100000, {"env": "dev"})
    key = VirtualKey.objects.get(pk=created["id"])
    assert key.expires_at == expires and key.user == member_user and key.created_by is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "rpm_limit": -1}, "rpm_limit"),
        ({"name": "k", "tpm_limit": 0}, "tpm_limit"),
        ({"name": "k", "rpm_limit": "many"}, "rpm_limit"),
        ({"name": "k", "allowed_models": ["no-such-model"]}, "allowed_models"),
        ({"name": "k", "allowed_models": "gpt-4o"}, "allowed_models"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({}, "name"),
        ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "metadata": ["not", "an", "object"]}, "metadata"),
        ({"name": "k", "user": 999999}, "user"),
        ({"name": "k", "team": 999999}, "team"),
    ],
)
def test_key_create_validation(owner_client, org, body, field):
    ModelFactory(organization=org, name="gpt-4o")
    field_error(owner_client.post("/api/keys/", body, format="json"), field)
    assert not VirtualKey.objects.exists()


def test_key_create_refuses_another_orgs_user_and_team(owner_client, other_org):
    stranger = MembershipFactory(organization=other_org).user
    foreign_team = TeamFactory(organization=other_org)
    assert error_of(owner_client.post("/api/keys/", {"name": "k", "user": stranger.pk}, format="json"), 400)["fields"] == {
        "user": ["Unknown user."]
    }
    field_error(owner_client.post("/api/keys/", {"name": "k", "team": foreign_team.pk}, format="json"), "team")
    assert not VirtualKey.objects.exists()


def test_key_update(owner_client, org):
    ModelFactory(organization=org, name="gpt-4o")
    key = VirtualKeyFactory(organization=org, rpm_limit=10, metadata={"a": 1})
    expires = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    body = {"name": "Renamed", "allowed_models": ["gpt-4o"], "rpm_limit": None, "tpm_limit": 500,
            "expires_at": expires.isoformat(), "metadata": {"b": 2}}
    response = owner_client.patch(f"/api/keys/{key.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    updated = response.json()
    assert (updated["name"], updated["allowed_models"], updated["rpm_limit"], updated["tpm_limit"], updated["metadata"]) == (
        "Renamed", ["gpt-4o"], None, 500, {"b": 2}
    )
    assert "secret" not in updated
    # A partial update leaves the other fields alone.
    assert owner_client.patch(f"/api/keys/{key.pk}/", {"tpm_limit": 7}, format="json").json()["name"] == "Renamed"
    key.refresh_from_db()
    assert (key.expires_at, key.tpm_limit, key.metadata) == (expires, 7, {"b": 2})
    assert owner_client.patch(f"/api/keys/{key.pk}/", {"expires_at": None}, format="json").json()["expires_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [({"rpm_limit": -5}, "rpm_limit"), ({"allowed_models": ["unknown"]}, "allowed_models"), ({"name": ""}, "name"),
     ({"tpm_limit": 1.5}, "tpm_limit"), ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at")],
)
def test_key_update_validation(owner_client, org, body, field):
    key = VirtualKeyFactory(organization=org, name="Stable", rpm_limit=10)
    field_error(owner_client.patch(f"/api/keys/{key.pk}/", body, format="json"), field)
    key.refresh_from_db()
    assert (key.name, key.rpm_limit, key.allowed_models, key.expires_at) == ("Stable", 10, [], None)


# Rotation and revocation


def test_rotate_shows_the_new_secret_once_and_keeps_the_old_one_for_the_grace_period(owner_client, monkeypatch):
    created = owner_client.post("/api/keys/", {"name": "svc"}, format="json").json()
    old = created["secret"]

    response = owner_client.post(f"/api/keys/{created['id']}/rotate/", {"grace_seconds": 3600}, format="json")
    assert response.status_code == 200, response.content
    rotated = response.json()
    new = rotated["secret"]
    assert new != old and new.startswith(rotated["prefix"]) and rotated["previous_valid_until"] is not None
    content = owner_client.get(f"/api/keys/{created['id']}/").content.decode()
    assert old not in content and new not in content and "secret" not in content

    # Both work during the grace period; the old one only until it ends.
    assert key_snapshot_by_hash(keyed_hash(new)).id == created["id"]
    old_snapshot = key_snapshot_by_hash(keyed_hash(old))
    assert old_snapshot is not None and old_snapshot.id == created["id"]
    grace_end = VirtualKey.objects.get(pk=created["id"]).previous_valid_until
    assert old_snapshot.expires_at == grace_end.timestamp()

    later = timezone.now() + timedelta(seconds=3601)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert key_snapshot_by_hash(keyed_hash(old)) is None
    assert key_snapshot_by_hash(keyed_hash(new)).id == created["id"]


def test_rotate_without_grace_stops_the_old_secret_at_once(owner_client):
    created = owner_client.post("/api/keys/", {"name": "svc"}, format="json").json()
    rotated = owner_client.post(f"/api/keys/{created['id']}/rotate/", {}, format="json").json()
    assert rotated["previous_valid_until"] is None
    assert key_snapshot_by_hash(keyed_hash(created["secret"])) is None
    assert key_snapshot_by_hash(keyed_hash(rotated["secret"])) is not None
    assert AuditLog.objects.filter(action="key.rotate", data={"grace_seconds": 0}).exists()


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, "soon", 1.5])
def test_rotate_validation(owner_client, org, grace):
    key = VirtualKeyFactory(organization=org)
    before = key.key_hash
    field_error(owner_client.post(f"/api/keys/{key.pk}/rotate/", {"grace_seconds": grace}, format="json"), "grace_seconds")
    key.refresh_from_db()
    assert key.key_hash == before


def test_revoke(owner_client, org):
    created = owner_client.post("/api/keys/", {"name": "gone"}, format="json").json()
    owner_client.post(f"/api/keys/{created['id']}/rotate/", {"grace_seconds": 600}, format="json")
    assert owner_client.delete(f"/api/keys/{created['id']}/").status_code == 204

    detail = owner_client.get(f"/api/keys/{created['id']}/").json()
    assert detail["revoked_at"] is not None and detail["is_active"] is False and detail["previous_valid_until"] is None
    assert key_snapshot_by_hash(keyed_hash(created["secret"])) is None
    assert not VirtualKey.objects.filter(previous_key_hash__isnull=False).exists()
    # Revoking twice is harmless; a revoked key cannot be rotated back to life.
    assert owner_client.delete(f"/api/keys/{created['id']}/").status_code == 204
    assert AuditLog.objects.filter(action="key.revoke").count() == 1
    error = error_of(owner_client.post(f"/api/keys/{created['id']}/rotate/", {}, format="json"), 400)
    assert error["code"] == "revoked"


def test_list_filters(admin_client, org, member_user):
    team = TeamFactory(organization=org)
    mine = VirtualKeyFactory(organization=org, user=member_user, name="member's")
    in_team = VirtualKeyFactory(organization=org, team=team, name="team's")
    revoked = VirtualKeyFactory(organization=org, name="revoked", revoked_at=timezone.now())

    def names(query):
        response = admin_client.get(f"/api/keys/{query}")
        assert response.status_code == 200, response.content
        return {k["name"] for k in response.json()["results"]}

    assert names("") == {mine.name, in_team.name, revoked.name}
    assert names(f"?user={member_user.pk}") == {mine.name}
    assert names(f"?team={team.pk}") == {in_team.name}
    assert names("?revoked=true") == {revoked.name}
    assert names("?revoked=false") == {mine.name, in_team.name}
    assert names(f"?revoked=false&team={team.pk}") == {in_team.name}
    field_error(admin_client.get("/api/keys/?revoked=perhaps"), "revoked")
    field_error(admin_client.get("/api/keys/?team=abc"), "team")


# Virtual keys: roles


def test_member_sees_and_manages_only_own_keys(org, login, member_of, admin_user):
    alice, bob = member_of(org, Role.MEMBER).user, member_of(org, Role.MEMBER).user
    alice_key = VirtualKeyFactory(organization=org, user=alice, name="alice")
    bob_key = VirtualKeyFactory(organization=org, user=bob, name="bob", rpm_limit=5)
    VirtualKeyFactory(organization=org, user=None, name="unowned")
    client = login(alice)

    assert [k["name"] for k in client.get("/api/keys/").json()["results"]] == ["alice"]
    assert [k["name"] for k in client.get(f"/api/keys/?user={bob.pk}").json()["results"]] == []
    assert client.get(f"/api/keys/{alice_key.pk}/").status_code == 200
    assert client.patch(f"/api/keys/{alice_key.pk}/", {"rpm_limit": 9}, format="json").status_code == 200
    assert client.post(f"/api/keys/{alice_key.pk}/rotate/", {}, format="json").status_code == 200

    before = VirtualKey.objects.filter(pk=bob_key.pk).values().get()
    for response in (
        client.get(f"/api/keys/{bob_key.pk}/"),
        client.patch(f"/api/keys/{bob_key.pk}/", {"rpm_limit": 1000}, format="json"),
        client.post(f"/api/keys/{bob_key.pk}/rotate/", {}, format="json"),
        client.delete(f"/api/keys/{bob_key.pk}/"),
    ):
        assert error_of(response, 404)["code"] == "not_found"
    assert VirtualKey.objects.filter(pk=bob_key.pk).values().get() == before
    assert not AuditLog.objects.filter(target_type="virtualkey", target_id=str(bob_key.pk)).exists()

    assert client.delete(f"/api/keys/{alice_key.pk}/").status_code == 204


def test_member_creates_keys_only_for_themselves(org, login, member_user, member_of):
    client = login(member_user)
    created = client.post("/api/keys/", {"name": "mine"}, format="json").json()
    assert created["user"]["id"] == member_user.pk

    other = member_of(org, Role.MEMBER).user
    error = error_of(client.post("/api/keys/", {"name": "theirs", "user": other.pk}, format="json"), 403)
    assert (error["code"], list(error["fields"])) == ("permission_denied", ["user"])

    team = TeamFactory(organization=org)
    error = error_of(client.post("/api/keys/", {"name": "team", "team": team.pk}, format="json"), 403)
    assert list(error["fields"]) == ["team"]
    Membership.objects.get(organization=org, user=member_user).teams.add(team)
    assert client.post("/api/keys/", {"name": "team", "team": team.pk}, format="json").status_code == 201
    assert VirtualKey.objects.filter(user=member_user).count() == 2 and not VirtualKey.objects.filter(user=other).exists()


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_admins_manage_every_key(org, login, member_of, member_user, role):
    client = login(member_of(org, role).user)
    key = VirtualKeyFactory(organization=org, user=member_user)
    assert client.get(f"/api/keys/{key.pk}/").status_code == 200
    assert client.patch(f"/api/keys/{key.pk}/", {"name": "by admin"}, format="json").json()["name"] == "by admin"
    assert "secret" in client.post(f"/api/keys/{key.pk}/rotate/", {}, format="json").json()
    assert client.delete(f"/api/keys/{key.pk}/").status_code == 204
    assert client.post("/api/keys/", {"name": "for member", "user": member_user.pk}, format="json").status_code == 201


def test_viewer_has_no_keys_api(viewer_client, org, viewer_user):
    key = VirtualKeyFactory(organization=org, user=viewer_user)
    assert error_of(viewer_client.get("/api/keys/"), 403)["code"] == "permission_denied"
    assert error_of(viewer_client.post("/api/keys/", {"name": "x"}, format="json"), 403)["code"] == "permission_denied"
    for response in (
        viewer_client.get(f"/api/keys/{key.pk}/"),
        viewer_client.patch(f"/api/keys/{key.pk}/", {"name": "x"}, format="json"),
        viewer_client.delete(f"/api/keys/{key.pk}/"),
        viewer_client.post(f"/api/keys/{key.pk}/rotate/", {}, format="json"),
    ):
        error_of(response, 403)
    key.refresh_from_db()
    assert key.revoked_at is None and VirtualKey.objects.count() == 1


def test_member_token_sees_its_creators_keys(org, member_user, member_of):
    other = member_of(org, Role.MEMBER).user
    VirtualKeyFactory(organization=org, user=member_user, name="creator's")
    VirtualKeyFactory(organization=org, user=other, name="other's")
    VirtualKeyFactory(organization=org, user=None, name="unowned")
    _token, secret = account_services.api_token_create(organization=org, name="m", role=Role.MEMBER, actor=member_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [k["name"] for k in client.get("/api/keys/").json()["results"]] == ["creator's"]

    # With no creator, "own" keys are none, never the unowned ones.
    _token, secret = account_services.api_token_create(organization=org, name="orphan", role=Role.MEMBER)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/keys/").json()["results"] == []


# Provider presets


def test_presets(viewer_client):
    response = viewer_client.get("/api/providers/presets/")
    assert response.status_code == 200
    presets = response.json()
    assert [p["slug"] for p in presets] == list(PRESETS)
    assert presets[0] == {"slug": "openai", "label": "OpenAI", "wire": "openai", "base_url": "https://api.openai.com/v1"}
    assert {p["wire"] for p in presets} == {"openai", "anthropic", "gemini", "azure", "rerank", "mock"}
    error_of(APIClient().get("/api/providers/presets/"), 401)


# Credentials


def _create_credential(client, **overrides):
    body = {"name": "OpenAI prod", "provider": "openai", "api_key": API_KEY, "extra_headers": {"OpenAI-Organization": HEADER_VALUE}}
    return client.post("/api/credentials/", {**body, **overrides}, format="json")


def test_credential_api_key_is_write_only(admin_client, viewer_client, org):
    response = _create_credential(admin_client)
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["has_api_key"] is True and created["api_key_hint"] == "WXYZ"
    assert created["extra_header_names"] == ["OpenAI-Organization"]
    assert created["base_url"] == "https://api.openai.com/v1" and created["provider"] == "openai"
    assert "api_key" not in created and "extra_headers" not in created

    for response in (
        response,
        admin_client.get("/api/credentials/"),
        admin_client.get(f"/api/credentials/{created['id']}/"),
        viewer_client.get(f"/api/credentials/{created['id']}/"),
    ):
        assert response.status_code in (200, 201)
        content = response.content.decode()
        assert API_KEY not in content and HEADER_VALUE not in content and "encrypted" not in content
    assert API_KEY not in json.dumps(list(AuditLog.objects.values()), default=str)


def test_credential_update(admin_client, org):
    created = _create_credential(admin_client).json()
    url = f"/api/credentials/{created['id']}/"

    # No api_key (or an empty one): the stored key stays.
    updated = admin_client.patch(url, {"name": "Renamed", "api_key": "", "read_timeout": 60}, format="json").json()
    credential = ProviderCredential.objects.get(pk=created["id"])
    assert (updated["name"], updated["read_timeout"], updated["api_key_hint"]) == ("Renamed", 60.0, "WXYZ")
    assert encryption.decrypt(credential.api_key_encrypted) == API_KEY

    updated = admin_client.patch(url, {"api_key": "sk-replacement-key-0000ABCD"}, format="json").json()
    credential.refresh_from_db()
    assert updated["api_key_hint"] == "ABCD" and encryption.decrypt(credential.api_key_encrypted).endswith("ABCD")

    updated = admin_client.patch(url, {"extra_headers": {"X-A": "1", "X-B": "2"}}, format="json").json()
    assert updated["extra_header_names"] == ["X-A", "X-B"]
    assert admin_client.patch(url, {"extra_headers": {}}, format="json").json()["extra_header_names"] == []
    credential.refresh_from_db()
    assert credential.extra_headers_encrypted == "" and credential_extra_headers(credential) == {}

    updated = admin_client.patch(url, {"base_url": "https://llm.example.com/v1/"}, format="json").json()
    assert updated["base_url"] == "https://llm.example.com/v1"
    assert AuditLog.objects.filter(action="credential.update").count() == 5


def test_credential_delete(admin_client, org):
    credential = ProviderCredentialFactory(organization=org)
    deployment = DeploymentFactory(organization=org, credential=credential)
    error = error_of(admin_client.delete(f"/api/credentials/{credential.pk}/"), 400)
    assert error["code"] == "in_use"
    deployment.delete()
    assert admin_client.delete(f"/api/credentials/{credential.pk}/").status_code == 204
    assert not ProviderCredential.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extra_headers": {"X-Evil": "a\r\nHost: internal"}}, "extra_headers"),
        ({"extra_headers": {"X-Evil\r\nInjected": "a"}}, "extra_headers"),
        ({"extra_headers": {"X-Evil": "trailing\n"}}, "extra_headers"),
        ({"extra_headers": {"Host": "internal"}}, "extra_headers"),
        ({"extra_headers": ["X-A"]}, "extra_headers"),
        ({"provider": "nonsense"}, "provider"),
        ({"api_key": ""}, "api_key"),
        ({"name": ""}, "name"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": -1}, "read_timeout"),
        ({"provider": "custom"}, "base_url"),
    ],
)
def test_credential_validation(admin_client, org, overrides, field):
    field_error(_create_credential(admin_client, **overrides), field)
    assert not ProviderCredential.objects.exists()


def test_credential_duplicate_name(admin_client, org):
    ProviderCredentialFactory(organization=org, name="Taken")
    assert field_error(_create_credential(admin_client, name="Taken"), "name")["code"] == "duplicate"
    other = ProviderCredentialFactory(organization=org, name="Other")
    error = field_error(admin_client.patch(f"/api/credentials/{other.pk}/", {"name": "Taken"}, format="json"), "name")
    assert error["code"] == "duplicate"
    other.refresh_from_db()
    assert other.name == "Other"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254/",
        "https://127.0.0.1/v1",
        "https://10.0.0.1/v1",
        "https://[::1]/v1",
        "https://[::ffff:127.0.0.1]/v1",
        "https://0.0.0.0/v1",
        "https://192.168.1.10/v1",
        "https://user:pass@llm.example.com/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://llm.example.com/",
        "not a url",
    ],
)
def test_credential_base_url_must_be_public(admin_client, org, settings, base_url):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    field_error(_create_credential(admin_client, provider="custom", base_url=base_url), "base_url")
    assert not ProviderCredential.objects.exists()

    credential = ProviderCredentialFactory(organization=org, provider="custom", base_url="https://llm.example.com/v1")
    field_error(admin_client.patch(f"/api/credentials/{credential.pk}/", {"base_url": base_url}, format="json"), "base_url")
    credential.refresh_from_db()
    assert credential.base_url == "https://llm.example.com/v1"


@pytest.fixture
def offline(monkeypatch, settings):
    def getaddrinfo(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []


def test_credentials_save_without_dns(admin_client, offline):
    assert _create_credential(admin_client, name="Preset").status_code == 201
    response = _create_credential(admin_client, name="Split", provider="custom", base_url="https://provider.invalid/v1")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["base_url"] == "https://provider.invalid/v1" and API_KEY not in response.content.decode()
    response = admin_client.patch(f"/api/credentials/{created['id']}/", {"base_url": "https://other.invalid/v1"}, format="json")
    assert response.status_code == 200 and response.json()["base_url"] == "https://other.invalid/v1"


def test_a_private_address_names_the_allow_list_and_a_refused_preset_url_is_the_providers_fault(admin_client, offline, monkeypatch):
    error = field_error(_create_credential(admin_client, provider="custom", base_url="https://10.1.2.3/v1"), "base_url")
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in error["fields"]["base_url"][0]
    monkeypatch.setitem(PRESETS, "openai", dataclasses.replace(PRESETS["openai"], base_url="https://127.0.0.1/v1"))
    error = field_error(_create_credential(admin_client), "provider")
    assert "base_url" not in error["fields"]


def test_mock_provider_needs_no_key_or_url(admin_client):
    created = admin_client.post("/api/credentials/", {"name": "Demo", "provider": "mock"}, format="json").json()
    assert (created["has_api_key"], created["api_key_hint"], created["base_url"]) == (False, "", "mock://local")


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_credentials_readable_but_not_writable_below_admin(org, login, member_of, role):
    client = login(member_of(org, role).user)
    credential = ProviderCredentialFactory(organization=org, name="Keep")
    assert client.get("/api/credentials/").json()["count"] == 1
    assert client.get(f"/api/credentials/{credential.pk}/").json()["name"] == "Keep"
    for response in (
        _create_credential(client),
        client.patch(f"/api/credentials/{credential.pk}/", {"name": "Stolen"}, format="json"),
        client.delete(f"/api/credentials/{credential.pk}/"),
    ):
        assert error_of(response, 403)["code"] == "permission_denied"
    credential.refresh_from_db()
    assert credential.name == "Keep" and ProviderCredential.objects.count() == 1


def test_owner_manages_credentials(owner_client):
    created = _create_credential(owner_client).json()
    assert owner_client.patch(f"/api/credentials/{created['id']}/", {"name": "x"}, format="json").status_code == 200
    assert owner_client.delete(f"/api/credentials/{created['id']}/").status_code == 204


# Models and deployments


def test_model_and_deployment_lifecycle(admin_client, org):
    credential = ProviderCredentialFactory(organization=org, name="OpenAI")
    response = admin_client.post("/api/models/", {"name": "gpt", "description": "General", "routing": "sticky"}, format="json")
    assert response.status_code == 201, response.content
    model = response.json()
    assert (model["name"], model["routing"], model["is_active"], model["deployments"]) == ("gpt", "sticky", True, [])

    response = admin_client.post(
        f"/api/models/{model['id']}/deployments/",
        {"credential": credential.pk, "upstream_model": "gpt-4o-mini", "name": "mini", "weight": 3, "order": 1},
        format="json",
    )
    assert response.status_code == 201, response.content
    deployment = response.json()
    assert deployment["credential"] == {"id": credential.pk, "name": "OpenAI", "provider": "openai"}
    assert (deployment["model_id"], deployment["weight"], deployment["order"], deployment["is_active"]) == (model["id"], 3, 1, True)
    fallback = admin_client.post(
        f"/api/models/{model['id']}/deployments/", {"credential": credential.pk, "upstream_model": "gpt-4o"}, format="json"
    ).json()
    assert (fallback["weight"], fallback["order"], fallback["name"]) == (1, 0, "")

    detail = admin_client.get(f"/api/models/{model['id']}/").json()
    assert [d["id"] for d in detail["deployments"]] == [fallback["id"], deployment["id"]]  # by fallback order
    assert admin_client.get(f"/api/deployments/{deployment['id']}/").json()["upstream_model"] == "gpt-4o-mini"

    second = ProviderCredentialFactory(organization=org, name="Backup")
    response = admin_client.patch(
        f"/api/deployments/{deployment['id']}/", {"credential": second.pk, "weight": 0, "is_active": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["credential"]["name"], response.json()["weight"], response.json()["is_active"]) == ("Backup", 0, False)

    updated = admin_client.patch(f"/api/models/{model['id']}/", {"description": "", "routing": "weighted", "is_active": False}, format="json")
    assert (updated.json()["description"], updated.json()["routing"], updated.json()["is_active"]) == ("", "weighted", False)
    assert updated.json()["stream_deadline_seconds"] == 600  # the default
    streamed = admin_client.patch(f"/api/models/{model['id']}/", {"stream_deadline_seconds": 120}, format="json")
    assert streamed.status_code == 200 and streamed.json()["stream_deadline_seconds"] == 120
    field_error(admin_client.patch(f"/api/models/{model['id']}/", {"stream_deadline_seconds": 0}, format="json"), "stream_deadline_seconds")
    assert len(updated.json()["deployments"]) == 2

    assert admin_client.delete(f"/api/deployments/{fallback['id']}/").status_code == 204
    assert [d["id"] for d in admin_client.get("/api/models/").json()["results"][0]["deployments"]] == [deployment["id"]]
    assert admin_client.delete(f"/api/models/{model['id']}/").status_code == 204
    assert not Model.objects.exists() and not Deployment.objects.exists()
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"model.create", "model.update", "model.delete", "deployment.create", "deployment.update", "deployment.delete"} <= actions


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "a\r\nb"}, "name"), ({"name": "x" * 121}, "name"), ({"name": "m", "routing": "random"}, "routing"),
     ({"name": "m", "description": "d" * 301}, "description")],
)
def test_model_validation(admin_client, body, field):
    field_error(admin_client.post("/api/models/", body, format="json"), field)
    assert not Model.objects.exists()


def test_model_duplicate_name(admin_client, org):
    ModelFactory(organization=org, name="gpt")
    assert field_error(admin_client.post("/api/models/", {"name": "gpt"}, format="json"), "name")["code"] == "duplicate"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": -1}, "weight"),
        ({"order": -1}, "order"),
        ({"weight": "heavy"}, "weight"),
        ({"upstream_model": ""}, "upstream_model"),
        ({"upstream_model": "gpt\r\nX-Injected: 1"}, "upstream_model"),
        ({"credential": 999999}, "credential"),
        ({"credential": None}, "credential"),
    ],
)
def test_deployment_validation(admin_client, org, body, field):
    model = ModelFactory(organization=org)
    credential = ProviderCredentialFactory(organization=org)
    field_error(
        admin_client.post(f"/api/models/{model.pk}/deployments/", {"credential": credential.pk, "upstream_model": "m", **body}, format="json"),
        field,
    )
    assert not Deployment.objects.exists()

    deployment = DeploymentFactory(organization=org, model=model, credential=credential, weight=2)
    if body.get("credential", 1) is not None:
        field_error(admin_client.patch(f"/api/deployments/{deployment.pk}/", body, format="json"), field)
    deployment.refresh_from_db()
    assert (deployment.weight, deployment.order, deployment.upstream_model, deployment.credential_id) == (2, 0, "gpt-4o-mini", credential.pk)


def test_deployment_refuses_another_orgs_credential(admin_client, org, other_org):
    model = ModelFactory(organization=org)
    theirs = ProviderCredentialFactory(organization=other_org)
    error = field_error(
        admin_client.post(f"/api/models/{model.pk}/deployments/", {"credential": theirs.pk, "upstream_model": "m"}, format="json"),
        "credential",
    )
    assert error["code"] == "not_found"
    assert not Deployment.objects.exists()

    deployment = DeploymentFactory(organization=org, model=model)
    field_error(admin_client.patch(f"/api/deployments/{deployment.pk}/", {"credential": theirs.pk}, format="json"), "credential")
    deployment.refresh_from_db()
    assert deployment.credential.organization == org


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_models_readable_but_not_writable_below_admin(org, login, member_of, role):
    client = login(member_of(org, role).user)
    deployment = DeploymentFactory(organization=org, weight=4)
    model = deployment.model
    assert client.get("/api/models/").json()["results"][0]["deployments"][0]["id"] == deployment.pk
    assert client.get(f"/api/models/{model.pk}/").status_code == 200
    assert client.get(f"/api/deployments/{deployment.pk}/").status_code == 200
    for response in (
        client.post("/api/models/", {"name": "new"}, format="json"),
        client.patch(f"/api/models/{model.pk}/", {"description": "x"}, format="json"),
        client.delete(f"/api/models/{model.pk}/"),
        client.post(f"/api/models/{model.pk}/deployments/", {"credential": deployment.credential_id, "upstream_model": "m"}, format="json"),
        client.patch(f"/api/deployments/{deployment.pk}/", {"weight": 1}, format="json"),
        client.delete(f"/api/deployments/{deployment.pk}/"),
    ):
        assert error_of(response, 403)["code"] == "permission_denied"
    assert Model.objects.count() == 1 and Deployment.objects.get().weight == 4


# Other organizations: never found


def _other_org_requests(org):
    key = VirtualKeyFactory(organization=org)
    deployment = DeploymentFactory(organization=org)
    credential = ProviderCredentialFactory(organization=org)
    model = deployment.model
    return [
        ("get", f"/api/keys/{key.pk}/", None),
        ("patch", f"/api/keys/{key.pk}/", {"name": "stolen"}),
        ("delete", f"/api/keys/{key.pk}/", None),
        ("post", f"/api/keys/{key.pk}/rotate/", {"grace_seconds": 0}),
        ("get", f"/api/credentials/{credential.pk}/", None),
        ("patch", f"/api/credentials/{credential.pk}/", {"name": "stolen"}),
        ("delete", f"/api/credentials/{credential.pk}/", None),
        ("get", f"/api/models/{model.pk}/", None),
        ("patch", f"/api/models/{model.pk}/", {"description": "stolen"}),
        ("delete", f"/api/models/{model.pk}/", None),
        ("post", f"/api/models/{model.pk}/deployments/", {"credential": deployment.credential_id, "upstream_model": "m"}),
        ("get", f"/api/deployments/{deployment.pk}/", None),
        ("patch", f"/api/deployments/{deployment.pk}/", {"weight": 9}),
        ("delete", f"/api/deployments/{deployment.pk}/", None),
    ]


def _snapshot(org):
    return [
        list(manager.filter(organization=org).order_by("pk").values())
        for manager in (VirtualKey.objects, ProviderCredential.objects, Model.objects, Deployment.objects, AuditLog.objects)
    ]


def test_other_orgs_objects_are_not_found(owner_client, other_org):
    requests = _other_org_requests(other_org)
    before = _snapshot(other_org)
    for method, url, body in requests:
        response = getattr(owner_client, method)(url, body, format="json") if body else getattr(owner_client, method)(url)
        assert error_of(response, 404)["code"] == "not_found", (method, url)
    assert _snapshot(other_org) == before


def test_lists_show_only_own_org(owner_client, org, other_org):
    VirtualKeyFactory(organization=org, name="ours")
    VirtualKeyFactory(organization=other_org, name="theirs")
    ours = ProviderCredentialFactory(organization=org, name="ours")
    theirs = ProviderCredentialFactory(organization=other_org, name="theirs")
    DeploymentFactory(organization=org, model__name="ours", credential=ours)
    DeploymentFactory(organization=other_org, model__name="theirs", credential=theirs)
    for path in ("/api/keys/", "/api/credentials/", "/api/models/"):
        assert [row["name"] for row in owner_client.get(path).json()["results"]] == ["ours"], path
    assert owner_client.get(f"/api/keys/?user={UserFactory().pk}").json()["results"] == []


def test_unknown_ids_are_not_found(owner_client):
    for path in ("/api/keys/999999/", "/api/credentials/999999/", "/api/models/999999/", "/api/deployments/999999/"):
        assert error_of(owner_client.get(path), 404)["code"] == "not_found"
    assert error_of(owner_client.post("/api/models/999999/deployments/", {}, format="json"), 404)["code"] == "not_found"
    assert error_of(owner_client.post("/api/keys/999999/rotate/", {}, format="json"), 404)["code"] == "not_found"


def test_token_acts_for_its_org_only(org, other_org):
    _token, secret = account_services.api_token_create(organization=org, name="ci", role=Role.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    theirs = VirtualKeyFactory(organization=other_org)
    assert client.get(f"/api/keys/{theirs.pk}/").status_code == 404
    created = client.post("/api/keys/", {"name": "from ci"}, format="json").json()
    assert created["user"] is None and VirtualKey.objects.get(pk=created["id"]).organization == org


# Lists, methods and the schema


@pytest.mark.parametrize("path", ["/api/keys/", "/api/credentials/", "/api/models/"])
def test_lists_do_not_grow_queries_with_rows(path, owner_client, org, owner, django_assert_max_num_queries):
    def add_rows():
        team = TeamFactory(organization=org)
        VirtualKeyFactory(organization=org, team=team, user=owner)
        DeploymentFactory(organization=org)
        DeploymentFactory(organization=org, model=Model.objects.filter(organization=org).first())

    add_rows()
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get(path).status_code == 200
    for _ in range(4):
        add_rows()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert owner_client.get(path).status_code == 200


def test_methods_not_allowed(owner_client, org):
    key = VirtualKeyFactory(organization=org)
    assert error_of(owner_client.put(f"/api/keys/{key.pk}/", {}, format="json"), 405)["code"] == "method_not_allowed"
    assert error_of(owner_client.get(f"/api/keys/{key.pk}/rotate/"), 405)["code"] == "method_not_allowed"
    assert error_of(owner_client.post("/api/providers/presets/", {}, format="json"), 405)["code"] == "method_not_allowed"


def test_schema_documents_the_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    paths = schema["paths"]
    for path, methods in {
        "/api/keys/": {"get", "post"},
        "/api/keys/{id}/": {"get", "patch", "delete"},
        "/api/keys/{id}/rotate/": {"post"},
        "/api/providers/presets/": {"get"},
        "/api/credentials/": {"get", "post"},
        "/api/credentials/{id}/": {"get", "patch", "delete"},
        "/api/models/": {"get", "post"},
        "/api/models/{id}/": {"get", "patch", "delete"},
        "/api/models/{id}/deployments/": {"post"},
        "/api/deployments/{id}/": {"get", "patch", "delete"},
    }.items():
        assert methods <= set(paths[path]), path
    assert {p["name"] for p in paths["/api/keys/"]["get"]["parameters"]} >= {"team", "user", "revoked"}
    components = schema["components"]["schemas"]
    assert "secret" in components["VirtualKeyWithSecret"]["properties"]
    assert "secret" not in components["VirtualKey"]["properties"]
    assert not {"api_key", "extra_headers", "api_key_encrypted"} & set(components["ProviderCredential"]["properties"])
    assert {"api_key", "extra_headers"} <= set(components["CredentialCreate"]["properties"])
    assert components["CredentialCreate"]["properties"]["api_key"].get("writeOnly") is True
    assert "deployments" in components["Model"]["properties"]


# Django admin


def test_admin_never_shows_secrets(client, org):
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    key = VirtualKeyFactory(organization=org, previous_key_hash="b" * 64)
    credential = ProviderCredentialFactory(organization=org, api_key=API_KEY)
    deployment = DeploymentFactory(organization=org, credential=credential)
    pages = [
        "/admin/keys/virtualkey/", f"/admin/keys/virtualkey/{key.pk}/change/",
        "/admin/keys/providercredential/", f"/admin/keys/providercredential/{credential.pk}/change/",
        "/admin/keys/model/", f"/admin/keys/model/{deployment.model_id}/change/",
        "/admin/keys/deployment/", f"/admin/keys/deployment/{deployment.pk}/change/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        content = response.content.decode()
        for secret in (key.key_hash, key.previous_key_hash, credential.api_key_encrypted, API_KEY):
            assert secret not in content, page
    assert client.get("/admin/keys/virtualkey/add/").status_code == 403


def test_admin_revokes_through_the_service(client, org):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    key = VirtualKeyFactory(organization=org)
    response = client.post("/admin/keys/virtualkey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditLog.objects.filter(organization=org, action="key.revoke", target_id=str(key.pk)).exists()
