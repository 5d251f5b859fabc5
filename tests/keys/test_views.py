"""The keys dashboard through Django's test client: keys, providers, models; roles, tenancy, secrets, escaping."""

import dataclasses
import json
import re
import socket
from datetime import datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.crypto import keyed_hash
from accounts.models import Role, User
from accounts.tenancy import OrgContext
from billing.model_report_views import REPORT_COLUMNS
from billing.selectors import model_variant_report
from keys import encryption, services, testing as credential_testing
from keys.forms import ModelUpdateForm
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.selectors import credential_extra_headers
from relay.snapshots import key_snapshot_by_hash
from tests.accounts.factories import MembershipFactory, TeamFactory
from tests.billing.factories import UsageEventFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory
from tests.upstream.openai_routes import EXPECTED_KEY
from tests.upstream.server import MockUpstream
from wire.presets import PRESETS

pytestmark = pytest.mark.django_db

API_KEY = "sk-live-canary-0123456789WXYZ"
HOSTILE_NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
MANAGERS = {Role.OWNER, Role.ADMIN}
KEY_HOLDERS = {Role.OWNER, Role.ADMIN, Role.MEMBER}


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _egress(settings):
    # No DNS in tests: these hosts count as public; the SSRF test empties the list.
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com", "llm.example.com"]
    settings.TOLLGATE_PUBLIC_URL = "https://gateway.example.com"


def logged_in(client, user):
    client.force_login(user)
    return client


def actor(org, user, role=Role.OWNER):
    return OrgContext(organization=org, role=role, user=user)


def make_key(org, user=None, **fields):
    """A key created through the service (as its owner would), returning (key, secret)."""
    owner = user or MembershipFactory(organization=org, role=Role.OWNER).user
    return services.virtual_key_create(actor=actor(org, owner), name=fields.pop("name", "Key"), user=user, **fields)


def credential(org, **fields):
    fields.setdefault("api_key", API_KEY)
    return ProviderCredentialFactory(organization=org, **fields)


def html_of(response) -> str:
    return response.content.decode()


# --- Access: login, the role matrix, nav ------------------------------------------------------------


@pytest.mark.parametrize("name", ["keys", "providers", "models"])
def test_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


PAGES = {"keys": KEY_HOLDERS, "providers": set(Role), "models": set(Role)}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_access_by_role(client, org, member_of, name, role):
    logged_in(client, member_of(org, role).user)
    response = client.get(reverse(name))
    assert response.status_code == (200 if role in PAGES[name] else 403)


@pytest.mark.parametrize("role", list(Role))
def test_nav_and_controls_follow_role(client, org, member_of, role):
    cred = credential(org)
    model = ModelFactory(organization=org)
    DeploymentFactory(organization=org, model=model, credential=cred)
    logged_in(client, member_of(org, role).user)
    nav = html_of(client.get(reverse("home")))
    assert (reverse("keys") in nav) is (role in KEY_HOLDERS)
    assert reverse("providers") in nav and reverse("models") in nav
    providers = html_of(client.get(reverse("providers")))
    models = html_of(client.get(reverse("models")))
    manages = role in MANAGERS
    assert (reverse("credential_create") in providers) is manages
    assert (reverse("credential_test", args=[cred.pk]) in providers) is manages
    assert (reverse("credential_edit", args=[cred.pk]) in providers) is manages
    assert (reverse("model_create") in models) is manages
    assert (reverse("deployment_create", args=[model.pk]) in models) is manages
    assert cred.name in providers and model.name in models  # everyone with view_org reads them


@pytest.mark.parametrize("role", list(Role))
def test_provider_and_model_writes_by_role(client, org, member_of, role, settings):
    cred = credential(org, name="Existing")
    spare = credential(org, name="Spare")
    model = ModelFactory(organization=org, name="existing-model")
    deployment = DeploymentFactory(organization=org, model=model, credential=cred, weight=1)
    doomed_deployment = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="second")
    doomed_model = ModelFactory(organization=org, name="doomed")
    mock_cred = credential(org, name="Demo", provider="mock", base_url="mock://local", api_key="")
    logged_in(client, member_of(org, role).user)
    allowed = role in MANAGERS
    redirect_or_403 = 302 if allowed else 403

    assert client.get(reverse("credential_edit", args=[cred.pk])).status_code == (200 if allowed else 403)
    assert client.get(reverse("model_edit", args=[model.pk])).status_code == (200 if allowed else 403)
    assert client.get(reverse("deployment_edit", args=[deployment.pk])).status_code == (200 if allowed else 403)
    posts = [
        ("credential_create", [], {"provider": "openai", "name": "New", "api_key": API_KEY, "connect_timeout": 10, "read_timeout": 300}),
        ("credential_edit", [cred.pk], {"name": "Renamed", "base_url": "", "connect_timeout": 10, "read_timeout": 300}),
        ("credential_test", [mock_cred.pk], {"upstream_model": "demo"}),
        ("credential_delete", [spare.pk], {}),
        ("model_create", [], {"name": "new-model", "routing": Model.Routing.WEIGHTED}),
        ("model_edit", [model.pk], {"description": "edited", "routing": Model.Routing.STICKY, "is_active": "on"}),
        ("deployment_create", [model.pk], {f"model-{model.pk}-{k}": v for k, v in
                                           {"credential": cred.pk, "upstream_model": "gpt-4o", "weight": 1, "order": 0}.items()}),
        ("deployment_edit", [deployment.pk], {"credential": cred.pk, "upstream_model": "gpt-4.1", "weight": 5, "order": 0, "is_active": "on"}),
        ("deployment_delete", [doomed_deployment.pk], {}),
        ("model_delete", [doomed_model.pk], {}),
    ]
    for name, args, data in posts:
        assert client.post(reverse(name, args=args), data).status_code == redirect_or_403, name
    assert ProviderCredential.objects.filter(organization=org, name="New").exists() is allowed
    assert ProviderCredential.objects.filter(pk=cred.pk, name="Renamed").exists() is allowed
    assert ProviderCredential.objects.filter(pk=spare.pk).exists() is not allowed
    assert Model.objects.filter(organization=org, name="new-model").exists() is allowed
    assert Model.objects.filter(pk=model.pk, description="edited").exists() is allowed
    assert Deployment.objects.filter(model=model, upstream_model="gpt-4o").exists() is allowed
    assert Deployment.objects.filter(pk=deployment.pk, weight=5).exists() is allowed
    assert Deployment.objects.filter(pk=doomed_deployment.pk).exists() is not allowed
    assert Model.objects.filter(pk=doomed_model.pk).exists() is not allowed


@pytest.mark.parametrize("role", list(Role))
def test_key_writes_by_role(client, org, member_of, role):
    user = member_of(org, role).user
    own, _secret = make_key(org, user=user, name="Mine") if role in KEY_HOLDERS else make_key(org, name="Not mine")
    logged_in(client, user)
    holder = role in KEY_HOLDERS
    created = client.post(reverse("key_create"), {"name": "Fresh"})
    assert created.status_code == (200 if holder else 403)
    assert VirtualKey.objects.filter(organization=org, name="Fresh").exists() is holder
    expected = 200 if holder else 403
    assert client.get(reverse("key_detail", args=[own.pk])).status_code == expected
    assert client.post(reverse("key_update", args=[own.pk]), {"edit-name": "Renamed"}).status_code == (302 if holder else 403)
    assert client.post(reverse("key_rotate", args=[own.pk]), {"rotate-grace_seconds": 0}).status_code == expected
    assert client.post(reverse("key_revoke", args=[own.pk])).status_code == (302 if holder else 403)
    own.refresh_from_db()
    assert (own.revoked_at is not None) is holder


# --- Keys: visibility ---------------------------------------------------------------------------------


def test_member_sees_only_own_keys_and_404s_on_others(client, org, member_of):
    alice, bob = member_of(org, Role.MEMBER).user, member_of(org, Role.MEMBER).user
    mine, _s = make_key(org, user=alice, name="alice-key")
    theirs, _s = make_key(org, user=bob, name="bob-key")
    unowned, _s = make_key(org, name="service-key")
    logged_in(client, alice)
    response = client.get(reverse("keys"))
    html = html_of(response)
    assert "alice-key" in html and "bob-key" not in html and "service-key" not in html
    assert "user" not in response.context["filter_form"].fields  # no "owner" filter for a member
    assert 'name="user"' not in html  # nor an owner choice on the create form
    for other in (theirs, unowned):
        assert client.get(reverse("key_detail", args=[other.pk])).status_code == 404
        assert client.post(reverse("key_update", args=[other.pk]), {"edit-name": "x"}).status_code == 404
        assert client.post(reverse("key_rotate", args=[other.pk]), {"rotate-grace_seconds": 0}).status_code == 404
        assert client.post(reverse("key_revoke", args=[other.pk])).status_code == 404
        other.refresh_from_db()
        assert other.revoked_at is None and other.name != "x"
    assert client.get(reverse("key_detail", args=[mine.pk])).status_code == 200


def test_member_creates_key_for_self_only(client, org, member_of):
    alice, bob = member_of(org, Role.MEMBER), member_of(org, Role.MEMBER).user
    own_team, other_team = TeamFactory(organization=org, name="Mine"), TeamFactory(organization=org, name="Not mine")
    alice.teams.add(own_team)
    logged_in(client, alice.user)
    response = client.post(reverse("key_create"), {"name": "For Bob", "user": bob.pk, "team": own_team.pk})
    assert response.status_code == 200
    key = VirtualKey.objects.get(name="For Bob")
    assert key.user == alice.user and key.team == own_team  # the user field is not even on a member's form
    refused = client.post(reverse("key_create"), {"name": "Other team", "team": other_team.pk})
    assert refused.status_code == 400 and "team" in refused.context["create_form"].errors
    assert not VirtualKey.objects.filter(name="Other team").exists()


def test_admin_sees_all_keys_and_creates_for_a_member(client, org, admin_user, member_of):
    bob = member_of(org, Role.MEMBER).user
    make_key(org, user=bob, name="bob-key")
    logged_in(client, admin_user)
    assert "bob-key" in html_of(client.get(reverse("keys")))
    response = client.post(reverse("key_create"), {"name": "Issued", "user": bob.pk})
    assert response.status_code == 200 and VirtualKey.objects.get(name="Issued").user == bob


def test_key_list_filters(client, org, owner, member_of):
    team = TeamFactory(organization=org, name="Search")
    bob = member_of(org, Role.MEMBER).user
    active, _s = make_key(org, user=bob, name="alpha active", team=team)
    revoked, _s = make_key(org, name="beta revoked")
    services.virtual_key_revoke(actor=actor(org, owner), key=revoked)
    expired, _s = make_key(org, name="gamma expired")
    VirtualKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    logged_in(client, owner)

    def names(**params):
        response = client.get(reverse("keys"), params)
        assert response.status_code == 200
        return {key.name for key in response.context["page"].object_list}

    assert names() == {"alpha active", "beta revoked", "gamma expired"}
    assert names(status="active") == {"alpha active"}
    assert names(status="revoked") == {"beta revoked"}
    assert names(status="expired") == {"gamma expired"}
    assert names(team=team.pk) == {"alpha active"}
    assert names(user=bob.pk) == {"alpha active"}
    assert names(q="BETA") == {"beta revoked"}
    assert names(q=expired.prefix) == {"gamma expired"}
    # Nonsense values are reported on the form and ignored, never a 500.
    response = client.get(reverse("keys"), {"team": "999999", "status": "nope", "page": "x", "q": "gamma"})
    assert response.status_code == 200 and {k.name for k in response.context["page"].object_list} == {"gamma expired"}
    assert "team" in response.context["filter_form"].errors
    html = html_of(client.get(reverse("keys"), {"status": "revoked"}))
    assert "Revoked" in html and "No keys match" not in html


def test_key_list_uses_a_fixed_number_of_queries(client, org, owner, member_of):
    def grow():
        team = TeamFactory(organization=org)
        make_key(org, user=member_of(org, Role.MEMBER).user, team=team, name=f"k-{team.pk}")

    logged_in(client, owner)
    grow()
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse("keys")).status_code == 200
    for _n in range(4):
        grow()
    with CaptureQueriesContext(connection) as large:
        assert client.get(reverse("keys")).status_code == 200
    assert len(large) == len(small), [query["sql"] for query in large.captured_queries]


# --- Keys: the secret is shown once ---------------------------------------------------------------------


def test_secret_shown_once_with_no_store_and_nowhere_else(client, org, owner):
    model = ModelFactory(organization=org, name="demo")
    logged_in(client, owner)
    response = client.post(reverse("key_create"), {"name": "CI", "user": owner.pk, "allowed_models": ["demo"], "rpm_limit": 60, "tpm_limit": ""})
    assert response.status_code == 200  # rendered by the POST: no redirect that would need the secret stored
    secret = response.context["secret"]
    html = html_of(response)
    key = VirtualKey.objects.get(name="CI")
    assert secret.startswith("tg-") and keyed_hash(secret) == key.key_hash
    assert key.allowed_models == [model.name] and key.rpm_limit == 60 and key.tpm_limit is None and key.user == owner
    assert "no-store" in response["Cache-Control"]
    assert f'data-copy="{secret}"' in html and "will not be shown again" in html
    snippet = response.context["snippet"]
    assert 'base_url="https://gateway.example.com/v1"' in snippet and f'api_key="{secret}"' in snippet and 'model="demo"' in snippet
    assert f"api_key=&quot;{secret}&quot;" in html  # in the <pre> and the copy button
    assert key_snapshot_by_hash(keyed_hash(secret)) is not None
    # Not in the session, not in cookies, not in any later page.
    assert secret not in str(dict(client.session.items()))
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    for page in (client.get(reverse("keys")), client.get(reverse("key_detail", args=[key.pk]))):
        page_html = html_of(page)
        assert secret not in page_html and key.prefix in page_html
    detail = html_of(client.get(reverse("key_detail", args=[key.pk])))
    assert "https://gateway.example.com/v1" in detail and 'os.environ[&quot;TOLLGATE_API_KEY&quot;]' in detail


def test_rotate_with_grace_shows_new_secret_once(client, org, owner):
    key, old_secret = make_key(org, user=owner, name="Rotating")
    logged_in(client, owner)
    response = client.post(reverse("key_rotate", args=[key.pk]), {"rotate-grace_seconds": 3600})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_secret = response.context["secret"]
    assert new_secret != old_secret and new_secret in html_of(response)
    assert "previous secret keeps working until" in html_of(response)
    assert key_snapshot_by_hash(keyed_hash(new_secret)) is not None
    assert key_snapshot_by_hash(keyed_hash(old_secret)) is not None  # grace period
    assert new_secret not in html_of(client.get(reverse("key_detail", args=[key.pk])))
    # Without a grace period the old secret stops at once.
    newest = client.post(reverse("key_rotate", args=[key.pk]), {"rotate-grace_seconds": 0}).context["secret"]
    assert key_snapshot_by_hash(keyed_hash(new_secret)) is None and key_snapshot_by_hash(keyed_hash(newest)) is not None


def test_revoke_stops_the_key(client, org, owner):
    key, secret = make_key(org, user=owner, name="Doomed")
    logged_in(client, owner)
    response = client.post(reverse("key_revoke", args=[key.pk]), follow=True)
    assert response.status_code == 200 and "revoked" in html_of(response)
    assert key_snapshot_by_hash(keyed_hash(secret)) is None
    rotate = client.post(reverse("key_rotate", args=[key.pk]), {"rotate-grace_seconds": 0})
    assert rotate.status_code == 400 and "cannot be rotated" in html_of(rotate)


def test_edit_key_limits_models_and_expiry(client, org, owner):
    ModelFactory(organization=org, name="alpha")
    ModelFactory(organization=org, name="beta")
    key, _s = make_key(org, user=owner, name="Editable")
    logged_in(client, owner)
    when = (timezone.now() + timedelta(days=3)).astimezone(timezone.get_current_timezone()).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("key_update", args=[key.pk]), {
        "edit-name": "Edited", "edit-allowed_models": ["beta", "alpha"], "edit-rpm_limit": 10, "edit-tpm_limit": 5000, "edit-expires_at": when,
    })
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.allowed_models, key.rpm_limit, key.tpm_limit) == ("Edited", ["alpha", "beta"], 10, 5000)
    assert key.expires_at is not None
    # Clearing limits and expiry.
    assert client.post(reverse("key_update", args=[key.pk]), {"edit-name": "Edited"}).status_code == 302
    key.refresh_from_db()
    assert (key.allowed_models, key.rpm_limit, key.tpm_limit, key.expires_at) == ([], None, None, None)


def test_expiry_is_read_in_the_org_time_zone(client, org, owner):
    org.time_zone = "Asia/Shanghai"
    org.save()
    logged_in(client, owner)
    assert client.post(reverse("key_create"), {"name": "Tz", "expires_at": "2099-01-01T08:00"}).status_code == 200
    expires = VirtualKey.objects.get(name="Tz").expires_at
    assert expires.isoformat() == "2099-01-01T00:00:00+00:00"
    key = VirtualKey.objects.get(name="Tz")
    assert 'value="2099-01-01T08:00"' in html_of(client.get(reverse("key_detail", args=[key.pk])))


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "Neg", "rpm_limit": "-5"}, "rpm_limit"),
        ({"name": "Zero", "tpm_limit": "0"}, "tpm_limit"),
        ({"name": "Huge", "rpm_limit": str(2**40)}, "rpm_limit"),
        ({"name": "Text", "rpm_limit": "many"}, "rpm_limit"),
        ({"name": "", "rpm_limit": "5"}, "name"),
        ({"name": "Past", "expires_at": "2001-01-01T00:00"}, "expires_at"),
        ({"name": "Bad date", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "Unknown model", "allowed_models": ["nope"]}, "allowed_models"),
        ({"name": "Unknown user", "user": "999999"}, "user"),
    ],
)
def test_key_form_errors(client, org, owner, data, field):
    logged_in(client, owner)
    response = client.post(reverse("key_create"), data)
    assert response.status_code == 400
    assert field in response.context["create_form"].errors
    assert not VirtualKey.objects.filter(organization=org).exists()


def test_key_edit_and_rotate_form_errors(client, org, owner):
    key, _s = make_key(org, user=owner, name="Stable")
    logged_in(client, owner)
    bad = client.post(reverse("key_update", args=[key.pk]), {"edit-name": "Stable", "edit-rpm_limit": "-1"})
    assert bad.status_code == 400 and "rpm_limit" in bad.context["edit_form"].errors
    grace = client.post(reverse("key_rotate", args=[key.pk]), {"rotate-grace_seconds": "99999999"})
    assert grace.status_code == 400 and "grace_seconds" in grace.context["rotate_form"].errors
    key.refresh_from_db()
    assert key.rpm_limit is None


def test_foreign_user_or_team_cannot_be_given_a_key(client, org, owner, other_org):
    stranger = MembershipFactory(organization=other_org).user
    foreign_team = TeamFactory(organization=other_org)
    logged_in(client, owner)
    response = client.post(reverse("key_create"), {"name": "Sneaky", "user": stranger.pk, "team": foreign_team.pk})
    assert response.status_code == 400
    assert {"user", "team"} <= set(response.context["create_form"].errors)
    assert not VirtualKey.objects.filter(name="Sneaky").exists()


# --- Providers --------------------------------------------------------------------------------------------


def test_credential_create_key_is_write_only(client, org, owner):
    logged_in(client, owner)
    response = client.post(reverse("credential_create"), {
        "provider": "openai", "name": "OpenAI prod", "base_url": "", "api_key": API_KEY,
        "extra_headers": '{"X-Org": "header-canary-value"}', "connect_timeout": 5, "read_timeout": 120,
    })
    assert response.status_code == 302
    cred = ProviderCredential.objects.get(organization=org, name="OpenAI prod")
    assert encryption.decrypt(cred.api_key_encrypted) == API_KEY
    assert credential_extra_headers(cred) == {"X-Org": "header-canary-value"}
    assert cred.base_url == "https://api.openai.com/v1" and cred.connect_timeout == 5
    for page in (client.get(reverse("providers")), client.get(reverse("credential_edit", args=[cred.pk]))):
        html = html_of(page)
        assert API_KEY not in html and "header-canary-value" not in html
        assert "…WXYZ" in html
    assert "X-Org" in html_of(client.get(reverse("credential_edit", args=[cred.pk])))  # header names only


def test_credential_edit_blank_key_keeps_it(client, org, owner):
    cred = credential(org, name="Keep")
    services.credential_update(actor=actor(org, owner), credential=cred, extra_headers={"X-A": "1"})
    logged_in(client, owner)
    base = {"name": "Keep", "base_url": "https://llm.example.com/v1", "connect_timeout": 10, "read_timeout": 300}
    assert client.post(reverse("credential_edit", args=[cred.pk]), {**base, "api_key": "", "extra_headers": ""}).status_code == 302
    cred.refresh_from_db()
    assert encryption.decrypt(cred.api_key_encrypted) == API_KEY and credential_extra_headers(cred) == {"X-A": "1"}
    assert cred.base_url == "https://llm.example.com/v1"
    new_key = "sk-replacement-key-9876"
    assert client.post(reverse("credential_edit", args=[cred.pk]), {**base, "api_key": new_key, "extra_headers": "{}"}).status_code == 302
    cred.refresh_from_db()
    assert encryption.decrypt(cred.api_key_encrypted) == new_key and cred.api_key_hint == "9876"
    assert credential_extra_headers(cred) == {}


def test_demo_preset_needs_no_key_and_is_labelled(client, org, owner):
    logged_in(client, owner)
    page = html_of(client.get(reverse("providers")))
    assert re.search(r'<option value="mock" data-base-url="mock://local" data-wire="mock"[^>]*>Demo', page)
    assert 'data-base-url="https://api.openai.com/v1"' in page
    response = client.post(reverse("credential_create"), {"provider": "mock", "name": "Demo", "connect_timeout": 10, "read_timeout": 300})
    assert response.status_code == 302
    html = html_of(client.get(reverse("providers")))
    assert 'class="badge demo"' in html


@pytest.mark.parametrize(
    "data, field",
    [
        ({"base_url": "https://169.254.169.254/latest/meta-data"}, "base_url"),
        ({"base_url": "http://127.0.0.1:8080/v1"}, "base_url"),
        ({"base_url": "ftp://api.openai.com/v1"}, "base_url"),
        ({"extra_headers": "{not json"}, "extra_headers"),
        ({"extra_headers": '["a", "b"]'}, "extra_headers"),
        ({"extra_headers": '{"X-N": 5}'}, "extra_headers"),
        ({"extra_headers": '{"Host": "evil"}'}, "extra_headers"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "sk-abc\r\nX-Evil: 1"}, "api_key"),
        ({"connect_timeout": "-1"}, "connect_timeout"),
        ({"read_timeout": "forever"}, "read_timeout"),
        ({"provider": "nope"}, "provider"),
        ({"provider": "custom"}, "base_url"),
        ({"name": ""}, "name"),
    ],
)
def test_credential_form_errors(client, org, owner, settings, data, field):
    if "base_url" in data:
        settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []  # only the allow-list could let these through
    logged_in(client, owner)
    post = {"provider": "openai", "name": "Bad", "api_key": API_KEY, "connect_timeout": 10, "read_timeout": 300, **data}
    response = client.post(reverse("credential_create"), post)
    assert response.status_code == 400
    assert field in response.context["create_form"].errors, response.context["create_form"].errors
    assert not ProviderCredential.objects.filter(organization=org).exists()


def test_credential_edit_errors_never_500(client, org, owner, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    credential(org, name="Taken")
    cred = credential(org, name="Mine", base_url="https://api.openai.com/v1")
    logged_in(client, owner)
    base = {"name": "Mine", "base_url": "https://api.openai.com/v1", "connect_timeout": 10, "read_timeout": 300}
    cases = [
        ({"name": "Taken"}, "name"),
        ({"base_url": "https://169.254.169.254/"}, "base_url"),
        ({"extra_headers": "nope"}, "extra_headers"),
        ({"read_timeout": "0"}, "read_timeout"),
    ]
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com"]
    for change, field in cases:
        response = client.post(reverse("credential_edit", args=[cred.pk]), {**base, **change})
        assert response.status_code == 400 and field in response.context["form"].errors, (change, response.context["form"].errors)
    cred.refresh_from_db()
    assert cred.name == "Mine" and cred.base_url == "https://api.openai.com/v1"


# --- Saving without DNS; what a refused form keeps ---------------------------------------------------


@pytest.fixture
def offline(monkeypatch, settings):
    """No name resolves (offline, or split DNS that this server does not see), and nothing is allow-listed."""

    def getaddrinfo(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []


def test_credentials_save_without_dns(client, org, owner, offline):
    logged_in(client, owner)
    base = {"api_key": API_KEY, "connect_timeout": 10, "read_timeout": 300}
    response = client.post(reverse("credential_create"), {**base, "provider": "openai", "name": "Preset", "base_url": ""})
    assert response.status_code == 302, response.context["create_form"].errors
    response = client.post(reverse("credential_create"), {**base, "provider": "custom", "name": "Split", "base_url": "https://provider.invalid/v1"})
    assert response.status_code == 302, response.context["create_form"].errors
    cred = ProviderCredential.objects.get(organization=org, name="Split")
    assert cred.base_url == "https://provider.invalid/v1"
    response = client.post(reverse("credential_edit", args=[cred.pk]), {**base, "name": "Split", "base_url": "https://other.invalid/v1"})
    assert response.status_code == 302
    cred.refresh_from_db()
    assert cred.base_url == "https://other.invalid/v1"


def test_a_private_address_is_refused_on_its_field_naming_the_allow_list(client, org, owner, offline):
    logged_in(client, owner)
    response = client.post(reverse("credential_create"), {
        "provider": "custom", "name": "Intranet", "base_url": "https://10.1.2.3/v1", "api_key": API_KEY,
        "connect_timeout": 10, "read_timeout": 300,
    })
    assert response.status_code == 400
    errors = response.context["create_form"].errors
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in " ".join(errors["base_url"])


def test_a_refused_preset_url_is_reported_on_the_preset_not_the_empty_field(client, org, owner, offline, monkeypatch):
    monkeypatch.setitem(PRESETS, "openai", dataclasses.replace(PRESETS["openai"], base_url="https://169.254.169.254/v1"))
    logged_in(client, owner)
    response = client.post(reverse("credential_create"), {
        "provider": "openai", "name": "Preset", "base_url": "", "api_key": API_KEY, "connect_timeout": 10, "read_timeout": 300,
    })
    assert response.status_code == 400
    errors = response.context["create_form"].errors
    assert "base_url" not in errors and "TOLLGATE_EGRESS_ALLOW_HOSTS" in " ".join(errors["provider"])


def test_a_refused_form_keeps_what_was_typed_except_the_secrets(client, org, owner):
    credential(org, name="Taken")
    logged_in(client, owner)
    response = client.post(reverse("credential_create"), {
        "provider": "custom", "name": "Taken", "base_url": "https://llm.example.com/v1", "api_key": API_KEY,
        "extra_headers": '{"X-Org": "header-canary-value"}', "connect_timeout": "7", "read_timeout": "123",
    })
    assert response.status_code == 400
    form = response.context["create_form"]
    assert "name" in form.errors
    assert form["api_key"].errors == ["Re-enter the API key: it is never sent back to the browser."]
    assert "Re-enter the extra headers" in " ".join(form["extra_headers"].errors)
    html = html_of(response)
    assert API_KEY not in html and "header-canary-value" not in html
    for typed in ('value="Taken"', 'value="https://llm.example.com/v1"', 'value="7"', 'value="123"', '<option value="custom" selected'):
        assert typed in html, typed
    # Nothing typed in a secret field: nothing to re-enter.
    response = client.post(reverse("credential_create"), {"provider": "custom", "name": "Taken", "base_url": "https://llm.example.com/v1",
                                                          "connect_timeout": "7", "read_timeout": "123"})
    assert "Re-enter" not in html_of(response)


def test_a_refused_edit_asks_to_reenter_a_new_key_instead_of_keeping_the_old_one_silently(client, org, owner):
    cred = credential(org, name="Mine", base_url="https://llm.example.com/v1")
    logged_in(client, owner)
    response = client.post(reverse("credential_edit", args=[cred.pk]), {
        "name": "Mine", "base_url": "https://169.254.169.254/v1", "api_key": "sk-new-key-0123456789", "connect_timeout": 10, "read_timeout": 300,
    })
    assert response.status_code == 400
    form = response.context["form"]
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in " ".join(form["base_url"].errors)
    assert "Re-enter the API key" in " ".join(form["api_key"].errors)
    html = html_of(response)
    assert "sk-new-key-0123456789" not in html and 'value="https://169.254.169.254/v1"' in html


def test_credential_delete_refused_while_in_use(client, org, owner):
    cred = credential(org, name="Busy")
    DeploymentFactory(organization=org, credential=cred, model=ModelFactory(organization=org))
    logged_in(client, owner)
    response = client.post(reverse("credential_delete", args=[cred.pk]), follow=True)
    assert response.status_code == 200 and "Remove the deployments using this credential first" in html_of(response)
    assert ProviderCredential.objects.filter(pk=cred.pk).exists()


# --- Test credential ----------------------------------------------------------------------------------


@pytest.fixture
def upstream(settings):
    server = MockUpstream().start()
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = [server.host]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    yield server
    server.stop()


def test_credential_test_mock_provider(client, org, owner):
    cred = credential(org, name="Demo", provider="mock", base_url="mock://local", api_key="")
    ok, message, latency = credential_testing.credential_test(actor=actor(org, owner), credential=cred, upstream_model="demo")
    assert ok and "answered" in message and latency >= 0
    logged_in(client, owner)
    response = client.post(reverse("credential_test", args=[cred.pk]), {"upstream_model": "demo"}, follow=True)
    assert "Test of Demo with demo: The provider answered" in html_of(response)


def test_credential_test_real_http_upstream(org, owner, upstream):
    good = credential(org, name="Good", base_url=f"{upstream.url}/v1", api_key=EXPECTED_KEY)
    ok, message, _latency = credential_testing.credential_test(actor=actor(org, owner), credential=good, upstream_model="echo")
    assert ok, message
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["json"]["max_tokens"] == 1 and sent["json"]["model"] == "echo"
    failing = credential_testing.credential_test(actor=actor(org, owner), credential=good, upstream_model="fail-404")
    assert failing[0] is False and "HTTP 404" in failing[1]


def test_credential_test_rejected_key_is_reported_without_the_key(client, org, owner, upstream):
    wrong = credential(org, name="Wrong", base_url=f"{upstream.url}/v1", api_key=API_KEY)
    logged_in(client, owner)
    response = client.post(reverse("credential_test", args=[wrong.pk]), {"upstream_model": "echo"}, follow=True)
    html = html_of(response)
    assert "rejected the gateway&#x27;s credentials" in html and "HTTP 401" in html
    assert API_KEY not in html
    assert upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"


def test_credential_test_timeout_and_refused_destination(org, owner, upstream, settings, monkeypatch):
    monkeypatch.setattr(credential_testing, "TEST_TIMEOUT_SECONDS", 0.3)
    slow = credential(org, name="Slow", base_url=f"{upstream.url}/v1", api_key=EXPECTED_KEY)
    ok, message, latency = credential_testing.credential_test(actor=actor(org, owner), credential=slow, upstream_model="slow-2")
    assert not ok and "in time" in message and latency >= 250
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []  # loopback is no longer allowed: refused before connecting
    requests_before = len(upstream.requests)
    ok, message, _latency = credential_testing.credential_test(actor=actor(org, owner), credential=slow, upstream_model="echo")
    assert not ok and "non-public" in message and "TOLLGATE_EGRESS_ALLOW_HOSTS" in message and len(upstream.requests) == requests_before


def test_credential_test_needs_a_model_and_the_role(client, org, owner, member_of):
    cred = credential(org, name="Demo", provider="mock", base_url="mock://local", api_key="")
    logged_in(client, owner)
    response = client.post(reverse("credential_test", args=[cred.pk]), {"upstream_model": ""})
    assert response.status_code == 400 and "This field is required" in html_of(response)
    with pytest.raises(Exception, match="does not allow"):
        credential_testing.credential_test(actor=actor(org, owner, Role.MEMBER), credential=cred, upstream_model="demo")


# --- Models and deployments ---------------------------------------------------------------------------------


def test_models_page_shows_deployments_and_weight_shares(client, org, viewer_user):
    cred = credential(org, name="Primary")
    model = ModelFactory(organization=org, name="chat")
    DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="big", weight=3)
    DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="small", weight=1)
    DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="off", weight=4, is_active=False)
    DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="backup", weight=0)
    logged_in(client, viewer_user)
    response = client.get(reverse("models"))
    shares = {item["deployment"].upstream_model: item["share"] for item in response.context["rows"][0]["deployments"]}
    assert shares == {"big": 75.0, "small": 25.0, "off": None, "backup": 0.0}
    html = html_of(response)
    assert "75%" in html and "25%" in html and "Primary" in html


def test_model_and_deployment_lifecycle(client, org, owner):
    cred = credential(org, name="Cred")
    logged_in(client, owner)
    assert client.post(reverse("model_create"), {"name": "demo", "description": "Demo model", "routing": "weighted"}).status_code == 302
    model = Model.objects.get(organization=org, name="demo")
    prefix = f"model-{model.pk}-"
    data = {prefix + "credential": cred.pk, prefix + "upstream_model": "gpt-4o-mini", prefix + "weight": 2, prefix + "order": 1, prefix + "name": "A"}
    assert client.post(reverse("deployment_create", args=[model.pk]), data).status_code == 302
    deployment = Deployment.objects.get(model=model)
    assert (deployment.upstream_model, deployment.weight, deployment.order, deployment.name) == ("gpt-4o-mini", 2, 1, "A")
    edit = {"credential": cred.pk, "upstream_model": "gpt-4.1-mini", "weight": 7, "order": 0, "name": "B", "is_active": "on"}
    assert client.post(reverse("deployment_edit", args=[deployment.pk]), edit).status_code == 302
    deployment.refresh_from_db()
    assert (deployment.upstream_model, deployment.weight, deployment.is_active) == ("gpt-4.1-mini", 7, True)
    # The only active deployment of an active model can be neither switched off nor removed.
    refused = client.post(reverse("deployment_edit", args=[deployment.pk]), {**edit, "is_active": ""})
    assert refused.status_code == 400 and "is_active" in refused.context["form"].errors
    response = client.post(reverse("deployment_delete", args=[deployment.pk]), follow=True)
    assert "was not removed" in html_of(response) and Deployment.objects.filter(pk=deployment.pk).exists()
    assert client.post(reverse("model_edit", args=[model.pk]), {"description": "", "routing": "sticky"}).status_code == 302
    model.refresh_from_db()
    assert model.routing == "sticky" and model.is_active is False
    assert client.post(reverse("deployment_edit", args=[deployment.pk]), {**edit, "is_active": ""}).status_code == 302
    assert client.post(reverse("deployment_delete", args=[deployment.pk])).status_code == 302
    assert client.post(reverse("model_delete", args=[model.pk])).status_code == 302
    assert not Model.objects.filter(pk=model.pk).exists()


def test_model_and_deployment_form_errors(client, org, owner, other_org):
    cred = credential(org)
    foreign_cred = credential(other_org)
    model = ModelFactory(organization=org, name="taken")
    deployment = DeploymentFactory(organization=org, model=model, credential=cred)
    logged_in(client, owner)
    duplicate = client.post(reverse("model_create"), {"name": "taken", "routing": "weighted"})
    assert duplicate.status_code == 400 and "name" in duplicate.context["create_form"].errors
    assert client.post(reverse("model_create"), {"name": "x", "routing": "random"}).status_code == 400
    prefix = f"model-{model.pk}-"
    base = {prefix + "credential": cred.pk, prefix + "upstream_model": "m", prefix + "weight": 1, prefix + "order": 0}
    for change, field in [
        ({prefix + "weight": "-1"}, "weight"),
        ({prefix + "order": "x"}, "order"),
        ({prefix + "weight": str(2**40)}, "weight"),
        ({prefix + "upstream_model": "  "}, "upstream_model"),
        ({prefix + "credential": foreign_cred.pk}, "credential"),
    ]:
        response = client.post(reverse("deployment_create", args=[model.pk]), {**base, **change})
        assert response.status_code == 400, change
        form = next(row["deployment_form"] for row in response.context["rows"] if row["model"].pk == model.pk)
        assert field in form.errors, (change, form.errors)
    bad_edit = client.post(reverse("deployment_edit", args=[deployment.pk]), {"credential": cred.pk, "upstream_model": "m", "weight": -3, "order": 0})
    assert bad_edit.status_code == 400 and "weight" in bad_edit.context["form"].errors
    assert Deployment.objects.filter(model=model).count() == 1


@pytest.mark.parametrize("name", ["providers", "models"])
def test_provider_and_model_pages_use_a_fixed_number_of_queries(client, org, owner, name):
    def grow():
        cred = credential(org)
        model = ModelFactory(organization=org)
        DeploymentFactory(organization=org, model=model, credential=cred)
        DeploymentFactory(organization=org, model=model, credential=cred)

    logged_in(client, owner)
    grow()
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse(name)).status_code == 200
    for _n in range(4):
        grow()
    with CaptureQueriesContext(connection) as large:
        assert client.get(reverse(name)).status_code == 200
    assert len(large) == len(small), "\n".join(query["sql"] for query in large.captured_queries)


# --- Tenancy: another organization's objects are 404 ------------------------------------------------------


def test_cross_org_objects_are_404(client, org, owner, other_org):
    foreign_key, foreign_secret = make_key(other_org, name="theirs")
    foreign_cred = credential(other_org, name="Their cred", provider="mock", base_url="mock://local", api_key="")
    foreign_model = ModelFactory(organization=other_org, name="their-model")
    foreign_deployment = DeploymentFactory(organization=other_org, model=foreign_model, credential=foreign_cred)
    own_cred = credential(org, name="Own")
    logged_in(client, owner)
    requests = [
        ("get", "key_detail", foreign_key.pk, {}),
        ("post", "key_update", foreign_key.pk, {"edit-name": "mine"}),
        ("post", "key_rotate", foreign_key.pk, {"rotate-grace_seconds": 0}),
        ("post", "key_revoke", foreign_key.pk, {}),
        ("get", "credential_edit", foreign_cred.pk, {}),
        ("post", "credential_edit", foreign_cred.pk, {"name": "mine", "connect_timeout": 10, "read_timeout": 300}),
        ("post", "credential_test", foreign_cred.pk, {"upstream_model": "demo"}),
        ("post", "credential_delete", foreign_cred.pk, {}),
        ("get", "model_edit", foreign_model.pk, {}),
        ("post", "model_edit", foreign_model.pk, {"routing": "weighted"}),
        ("post", "model_delete", foreign_model.pk, {}),
        ("post", "deployment_create", foreign_model.pk, {f"model-{foreign_model.pk}-credential": own_cred.pk, f"model-{foreign_model.pk}-upstream_model": "x",
                                                         f"model-{foreign_model.pk}-weight": 1, f"model-{foreign_model.pk}-order": 0}),
        ("get", "deployment_edit", foreign_deployment.pk, {}),
        ("post", "deployment_edit", foreign_deployment.pk, {"credential": own_cred.pk, "upstream_model": "x", "weight": 1, "order": 0}),
        ("post", "deployment_delete", foreign_deployment.pk, {}),
    ]
    for method, name, pk, data in requests:
        response = getattr(client, method)(reverse(name, args=[pk]), data)
        assert response.status_code == 404, (method, name, response.status_code)
    foreign_key.refresh_from_db()
    assert foreign_key.revoked_at is None and foreign_key.name == "theirs"
    assert key_snapshot_by_hash(keyed_hash(foreign_secret)) is not None
    assert ProviderCredential.objects.get(pk=foreign_cred.pk).name == "Their cred"
    assert Model.objects.filter(pk=foreign_model.pk).exists() and Deployment.objects.get(pk=foreign_deployment.pk).credential == foreign_cred
    assert not Deployment.objects.filter(model=foreign_model, upstream_model="x").exists()
    # Lists never show them either.
    assert "theirs" not in html_of(client.get(reverse("keys")))
    assert "Their cred" not in html_of(client.get(reverse("providers")))
    assert "their-model" not in html_of(client.get(reverse("models")))


# --- Escaping of names entered by users ---------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_names_are_escaped_everywhere(client, org, owner, member_of, hostile):
    membership = member_of(org, Role.MEMBER)
    User.objects.filter(pk=membership.user_id).update(name=hostile)
    team = TeamFactory(organization=org, name=hostile)
    cred = credential(org, name=hostile)
    model = ModelFactory(organization=org, name=hostile, description=hostile)
    deployment = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model=hostile, name=hostile)
    logged_in(client, owner)
    created = client.post(reverse("key_create"), {"name": hostile, "team": team.pk, "user": membership.user_id, "allowed_models": [hostile]})
    assert created.status_code == 200
    key = VirtualKey.objects.get(name=hostile)
    assert key.allowed_models == [hostile]
    tested = client.post(reverse("credential_test", args=[cred.pk]), {"upstream_model": hostile}, follow=True)
    pages = {
        "secret": created,
        "test result": tested,
        "keys": client.get(reverse("keys")),
        "keys filtered": client.get(reverse("keys"), {"q": hostile}),
        "key_detail": client.get(reverse("key_detail", args=[key.pk])),
        "providers": client.get(reverse("providers")),
        "credential_edit": client.get(reverse("credential_edit", args=[cred.pk])),
        "models": client.get(reverse("models")),
        "model_edit": client.get(reverse("model_edit", args=[model.pk])),
        "deployment_edit": client.get(reverse("deployment_edit", args=[deployment.pk])),
    }
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    for label, response in pages.items():
        html = html_of(response)
        assert response.status_code == 200, label
        assert hostile not in html, label
        assert escaped in html, label


# --- Content Security Policy -------------------------------------------------------------------------------


def test_pages_have_no_inline_script_or_style(client, org, owner):
    cred = credential(org, name="Cred")
    model = ModelFactory(organization=org, name="demo")
    deployment = DeploymentFactory(organization=org, model=model, credential=cred)
    logged_in(client, owner)
    created = client.post(reverse("key_create"), {"name": "CSP"})
    key = VirtualKey.objects.get(name="CSP")
    responses = [
        created,
        client.get(reverse("keys")),
        client.get(reverse("key_detail", args=[key.pk])),
        client.get(reverse("providers")),
        client.get(reverse("credential_edit", args=[cred.pk])),
        client.get(reverse("models")),
        client.get(reverse("model_edit", args=[model.pk])),
        client.get(reverse("deployment_edit", args=[deployment.pk])),
    ]
    for response in responses:
        html = html_of(response)
        assert response.status_code == 200
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
        assert not re.search(r"\sstyle=", html), "style attribute"
        assert not re.search(r"<style", html), "<style> element"
        assert not re.search(r"\son[a-z]+=", html), "inline event handler"


# --- Routing policy on the model edit page ------------------------------------------------------------------

POLICY_FORM = {
    "description": "Chat", "is_active": "on", "routing": "sticky", "fallback_models": "backup-b, backup-a",
    "retry_statuses": "503, 429,500", "max_attempts": "5", "retries_per_deployment": "2", "deadline_seconds": "90",
    "stream_deadline_seconds": "1200", "cooldown_failures": "4", "cooldown_window_seconds": "120", "cooldown_seconds": "45",
    "fallback_max_price_ratio": "1.5", "context_fallback": "on",
}


@pytest.fixture
def chat_model(org):
    """A served model "chat" and two other models it may fall back to."""
    model = ModelFactory(organization=org, name="chat")
    DeploymentFactory(organization=org, model=model, credential=credential(org))
    for name in ("backup-a", "backup-b"):
        ModelFactory(organization=org, name=name)
    return model


def test_policy_form_shows_and_saves_each_field(client, org, owner, chat_model):
    logged_in(client, owner)
    page = client.get(reverse("model_edit", args=[chat_model.pk]))
    html = html_of(page)
    assert "Routing and fallbacks" in html
    for field in ModelUpdateForm.POLICY_FIELDS:
        assert f'name="{field}"' in html, field
    assert 'data-fallback-add="backup-a"' in html and 'data-fallback-add="chat"' not in html  # other models only

    response = client.post(reverse("model_edit", args=[chat_model.pk]), POLICY_FORM)
    assert response.status_code == 302, response.context and response.context["form"].errors
    chat_model.refresh_from_db()
    saved = {field: getattr(chat_model, field) for field in ModelUpdateForm.POLICY_FIELDS}
    assert saved == {
        "routing": "sticky", "fallback_models": ["backup-b", "backup-a"], "retry_statuses": [429, 500, 503],
        "max_attempts": 5, "retries_per_deployment": 2, "deadline_seconds": 90, "stream_deadline_seconds": 1200, "cooldown_failures": 4,
        "cooldown_window_seconds": 120, "cooldown_seconds": 45, "fallback_max_price_ratio": Decimal("1.50"),
        "context_fallback": True,
    }
    assert (chat_model.description, chat_model.is_active) == ("Chat", True)

    # The edit page shows the saved values, the fallbacks in their order; the models list shows the chain.
    form = client.get(reverse("model_edit", args=[chat_model.pk])).context["form"]
    assert form["fallback_models"].value() == "backup-b, backup-a" and form["retry_statuses"].value() == "429, 500, 503"
    assert form["max_attempts"].value() == 5 and form["fallback_max_price_ratio"].value() == Decimal("1.50")
    models_html = html_of(client.get(reverse("models")))
    assert "<code>backup-b</code> → <code>backup-a</code>" in models_html

    # Emptied fields: numbers back to their defaults, no fallbacks, default statuses, no price cap, box unticked.
    cleared = {**POLICY_FORM, **{field: "" for field in ModelUpdateForm.POLICY_FIELDS if field != "routing"}}
    assert client.post(reverse("model_edit", args=[chat_model.pk]), cleared).status_code == 302
    chat_model.refresh_from_db()
    defaults = {field: Model._meta.get_field(field).default for field in ModelUpdateForm.NUMBER_FIELDS}
    assert {field: getattr(chat_model, field) for field in ModelUpdateForm.NUMBER_FIELDS} == defaults
    assert (chat_model.fallback_models, chat_model.retry_statuses, chat_model.fallback_max_price_ratio) == ([], [], None)
    assert chat_model.context_fallback is False


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"fallback_models": "backup-a"}, "fallback_models", "cycle"),  # backup-a already falls back to chat
        ({"fallback_models": "chat"}, "fallback_models", "Unknown model: chat"),
        ({"fallback_models": "backup-b, nowhere"}, "fallback_models", "Unknown model: nowhere"),
        ({"retry_statuses": "429, abc"}, "retry_statuses", "is not a status code"),
        ({"retry_statuses": "200"}, "retry_statuses", "between 400 and 599"),
        ({"max_attempts": "0"}, "max_attempts", "from 1 to 10"),
        ({"max_attempts": "11"}, "max_attempts", "from 1 to 10"),
        ({"max_attempts": "two"}, "max_attempts", "whole number"),
        ({"retries_per_deployment": "-1"}, "retries_per_deployment", "from 0 to 5"),
        ({"deadline_seconds": "0"}, "deadline_seconds", "from 1 to 3600"),
        ({"stream_deadline_seconds": "0"}, "stream_deadline_seconds", "from 1 to 86400"),
        ({"cooldown_failures": "0"}, "cooldown_failures", "from 1 to 1000"),
        ({"cooldown_window_seconds": "100000"}, "cooldown_window_seconds", "from 1 to 86400"),
        ({"cooldown_seconds": "0"}, "cooldown_seconds", "from 1 to 86400"),
        ({"fallback_max_price_ratio": "0.5"}, "fallback_max_price_ratio", "at least 1"),
        ({"fallback_max_price_ratio": "cheap"}, "fallback_max_price_ratio", "Enter a number"),
        ({"routing": "random"}, "routing", "Select a valid choice"),
    ],
)
def test_policy_refusals_are_shown_on_their_field(client, org, owner, chat_model, change, field, message):
    Model.objects.filter(organization=org, name="backup-a").update(fallback_models=["chat"])
    logged_in(client, owner)
    response = client.post(reverse("model_edit", args=[chat_model.pk]), {**POLICY_FORM, **change})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and message in " ".join(errors[field]), errors
    html = html_of(response)
    assert re.search(rf'class="field has-error[^"]*" data-field="{field}"', html)
    assert "Check the routing settings marked below." in html
    chat_model.refresh_from_db()
    assert chat_model.fallback_models == [] and chat_model.max_attempts == 3 and chat_model.routing == "weighted"


def test_deployment_context_window_and_weights(client, org, owner, chat_model):
    cred = credential(org, name="Second")
    logged_in(client, owner)
    prefix = f"model-{chat_model.pk}-"
    data = {prefix + "credential": cred.pk, prefix + "upstream_model": "long", prefix + "weight": 1, prefix + "order": 1,
            prefix + "context_window": "200000"}
    assert client.post(reverse("deployment_create", args=[chat_model.pk]), data).status_code == 302
    deployment = Deployment.objects.get(model=chat_model, upstream_model="long")
    assert deployment.context_window == 200_000
    assert "200000" in html_of(client.get(reverse("models")))
    edit = {"credential": cred.pk, "upstream_model": "long", "weight": 1, "order": 1, "is_active": "on", "context_window": "128000"}
    page = client.get(reverse("deployment_edit", args=[deployment.pk]))
    assert page.context["form"]["context_window"].value() == 200_000
    assert client.post(reverse("deployment_edit", args=[deployment.pk]), edit).status_code == 302
    deployment.refresh_from_db()
    assert deployment.context_window == 128_000
    assert client.post(reverse("deployment_edit", args=[deployment.pk]), {**edit, "context_window": ""}).status_code == 302
    deployment.refresh_from_db()
    assert deployment.context_window is None
    for value in ("0", "-5", "many"):
        refused = client.post(reverse("deployment_edit", args=[deployment.pk]), {**edit, "context_window": value})
        assert refused.status_code == 400 and list(refused.context["form"].errors) == ["context_window"], value
    # Negative weights are refused on the weight field, on create and on edit; nothing changes.
    refused = client.post(reverse("deployment_edit", args=[deployment.pk]), {**edit, "weight": "-1"})
    assert refused.status_code == 400 and "weight" in refused.context["form"].errors
    created = client.post(reverse("deployment_create", args=[chat_model.pk]), {**data, prefix + "weight": "-2"})
    assert created.status_code == 400
    form = next(row["deployment_form"] for row in created.context["rows"] if row["model"].pk == chat_model.pk)
    assert "weight" in form.errors and "greater than or equal to 0" in " ".join(form.errors["weight"])
    deployment.refresh_from_db()
    assert deployment.weight == 1 and Deployment.objects.filter(model=chat_model).count() == 2


def test_last_active_deployment_cannot_be_deactivated(client, org, owner, chat_model):
    deployment = chat_model.deployments.get()
    logged_in(client, owner)
    edit = {"credential": deployment.credential_id, "upstream_model": deployment.upstream_model, "weight": 1, "order": 0}
    refused = client.post(reverse("deployment_edit", args=[deployment.pk]), edit)  # "is_active" unticked
    assert refused.status_code == 400
    assert "An active model needs at least one active deployment" in " ".join(refused.context["form"].errors["is_active"])
    assert "An active model needs at least one active deployment" in html_of(refused)
    removed = client.post(reverse("deployment_delete", args=[deployment.pk]), follow=True)
    assert "was not removed from chat: An active model needs at least one active deployment" in html_of(removed)
    deployment.refresh_from_db()
    assert deployment.is_active


# --- The A/B comparison report ------------------------------------------------------------------------------

REPORT_ROLES = {Role.OWNER, Role.ADMIN, Role.VIEWER}  # view_usage


class _ReportParser(HTMLParser):
    """The variant table's cells: {deployment id: {field: data-value}}, and the differences to the first."""

    def __init__(self):
        super().__init__()
        self.values, self.differences, self.row = {}, {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-deployment" in attrs:
            self.row = attrs["data-deployment"]
            self.values[self.row], self.differences[self.row] = {}, {}
            self.field = None
        elif tag == "td" and "data-field" in attrs and self.row is not None:
            self.field = attrs["data-field"]
            self.values[self.row][self.field] = attrs["data-value"]
        elif tag == "span" and "data-difference" in attrs:
            self.differences[self.row][self.field] = attrs["data-difference"]


def report_of(response):
    parser = _ReportParser()
    parser.feed(html_of(response))
    return parser


def chart_data_of(response):
    match = re.search(r'<script id="model-report-data" type="application/json">(.*?)</script>', html_of(response), re.S)
    return json.loads(match.group(1))


def event(org, model_name, deployment, at, **fields):
    fields.setdefault("status_code", 200)
    return UsageEventFactory(
        organization=org, model_name=model_name, deployment_id=deployment.pk if deployment else None,
        upstream_model=deployment.upstream_model if deployment else "", created_at=at, **fields,
    )


@pytest.mark.parametrize("role", list(Role))
def test_report_access_by_role(client, org, member_of, role):
    model = ModelFactory(organization=org)
    logged_in(client, member_of(org, role).user)
    response = client.get(reverse("model_report", args=[model.pk]))
    assert response.status_code == (200 if role in REPORT_ROLES else 403)
    models_html = html_of(client.get(reverse("models")))
    assert (reverse("model_report", args=[model.pk]) in models_html) is (role in REPORT_ROLES)


def test_report_needs_login_and_is_404_across_orgs(client, org, owner, other_org):
    foreign = ModelFactory(organization=other_org, name="their-model")
    assert client.get(reverse("model_report", args=[foreign.pk])).status_code == 302
    logged_in(client, owner)
    assert client.get(reverse("model_report", args=[foreign.pk])).status_code == 404
    assert client.get(reverse("model_report", args=[foreign.pk]), {"range": "30d"}).status_code == 404
    assert client.get(reverse("model_report", args=[987654])).status_code == 404


def test_report_figures_equal_the_selector_for_a_ledger_built_here(client, org, owner, other_org):
    org.time_zone, org.currency = "Asia/Shanghai", "CNY"
    org.save()
    cred = credential(org, name="Cred")
    model = ModelFactory(organization=org, name="chat")
    first = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="kimi-k2", name="Kimi")
    second = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="claude", name="")
    gone = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model="retired")
    shanghai = ZoneInfo("Asia/Shanghai")
    since = datetime(2025, 3, 1, 0, 0, tzinfo=shanghai)  # 2025-02-28 16:00 UTC
    until = datetime(2025, 3, 8, 0, 0, tzinfo=shanghai)
    inside = since + timedelta(hours=1)
    # Variant 1: 4 requests, one error; latencies 100, 200, 300 ms; 0.001 each; 10+5 tokens each.
    for latency in (100, 200, 300):
        event(org, "chat", first, inside, latency_ms=latency, ttft_ms=latency // 2, prompt_tokens=10, completion_tokens=5,
              cost_display=Decimal("0.001"))
    event(org, "chat", first, inside, status_code=429, latency_ms=5)
    # Variant 2: 2 requests, faster and dearer.
    for latency in (50, 70):
        event(org, "chat", second, inside, latency_ms=latency, ttft_ms=None, prompt_tokens=20, completion_tokens=20,
              cost_display=Decimal("0.01"))
    event(org, "chat", gone, inside, latency_ms=10, prompt_tokens=1, completion_tokens=1, cost_display=Decimal("0.5"))
    event(org, "chat", None, inside, status_code=400)
    gone_pk = gone.pk
    gone.delete()
    # Not counted: before the range (by the org's clock), at its end, another model, another organization.
    event(org, "chat", first, since - timedelta(seconds=1), latency_ms=9999)
    event(org, "chat", first, until, latency_ms=9999)
    event(org, "other", first, inside, latency_ms=9999)
    event(other_org, "chat", first, inside, latency_ms=9999)

    logged_in(client, owner)
    response = client.get(reverse("model_report", args=[model.pk]), {"range": "custom", "since": "2025-03-01T00:00", "until": "2025-03-08T00:00"})
    assert response.status_code == 200
    expected = model_variant_report(organization=org, model=model, since=since, until=until)
    assert response.context["report"] == expected

    # The ledger, by hand.
    variants = {v["deployment_id"]: v for v in expected["variants"]}
    assert list(variants) == [first.pk, second.pk, gone_pk, None]
    assert (variants[first.pk]["requests"], variants[first.pk]["errors"], variants[first.pk]["latency_p50_ms"]) == (4, 1, 200)
    assert (variants[first.pk]["latency_p95_ms"], variants[first.pk]["ttft_p50_ms"]) == (300, 100)
    assert Decimal(variants[first.pk]["cost_per_1k_tokens"]) == Decimal("0.003") * 1000 / 45
    assert (variants[second.pk]["requests"], variants[second.pk]["latency_p50_ms"], variants[second.pk]["latency_p95_ms"]) == (2, 50, 70)
    assert Decimal(variants[second.pk]["cost_per_request"]) == Decimal("0.01")

    # The table carries exactly the selector's figures and differences, one row per variant in its order.
    page = report_of(response)
    assert list(page.values) == [str(first.pk), str(second.pk), str(gone_pk), ""]
    for variant in expected["variants"]:
        row = str(variant["deployment_id"] or "")
        for field, value in page.values[row].items():
            assert value == ("" if variant[field] is None else str(variant[field])), (row, field)
        assert set(page.values[row]) == {c[0] for c in REPORT_COLUMNS}
        assert page.differences[row] == {k: v for k, v in (variant.get("vs_first") or {}).items() if v is not None}, row
    html = html_of(response)
    assert "Kimi" in html and "claude" in html and f"Deleted deployment #{gone_pk}" in html and "No deployment" in html
    assert "25.0%" in html and "Cost per 1k tokens (CNY)" in html and "(Asia/Shanghai)" in html
    assert "−150" in html  # p50 latency of the second variant vs the first: 50 - 200

    # The charts get the same numbers.
    chart = chart_data_of(response)
    assert chart["labels"] == [row["name"] for row in response.context["rows"]] and chart["labels"][:2] == ["Kimi", "claude"]
    assert chart["latency"]["p50"] == [v["latency_p50_ms"] for v in expected["variants"]]
    assert chart["latency"]["p95"] == [v["latency_p95_ms"] for v in expected["variants"]]
    assert chart["cost"] == [None if v["cost_per_1k_tokens"] is None else float(v["cost_per_1k_tokens"]) for v in expected["variants"]]


def test_report_time_ranges(client, org, owner):
    model = ModelFactory(organization=org, name="chat")
    deployment = DeploymentFactory(organization=org, model=model)
    now = timezone.now()
    for age in (timedelta(hours=2), timedelta(days=3), timedelta(days=20), timedelta(days=40)):
        event(org, "chat", deployment, now - age, latency_ms=100)
    logged_in(client, owner)

    def requests(**params):
        response = client.get(reverse("model_report", args=[model.pk]), params)
        assert response.status_code == 200, response.context["form"].errors
        variants = response.context["report"]["variants"]
        return variants[0]["requests"] if variants else 0

    assert requests() == 2  # the default: 7 days
    assert (requests(range="24h"), requests(range="7d"), requests(range="30d")) == (1, 2, 3)
    local = timezone.localtime(now - timedelta(days=50), ZoneInfo(org.time_zone)).strftime("%Y-%m-%dT%H:%M")
    assert requests(range="custom", since=local) == 4  # until defaults to now
    assert requests(since=local) == 4  # a start alone means a custom range, and the select says so
    alone = client.get(reverse("model_report", args=[model.pk]), {"since": local})
    assert alone.context["form"]["range"].value() == "custom" and '<option value="custom" selected>' in html_of(alone)
    empty = client.get(reverse("model_report", args=[model.pk]), {"range": "custom", "since": "2020-01-01T00:00", "until": "2020-01-02T00:00"})
    assert "No requests for this model in this time range." in html_of(empty)
    assert 'id="model-report-data"' not in html_of(empty)
    for params, field in [
        ({"range": "custom"}, "since"),
        ({"range": "custom", "since": "2025-03-02T00:00", "until": "2025-03-01T00:00"}, "since"),
        ({"range": "custom", "since": "2020-01-01T00:00", "until": "2025-01-01T00:00"}, "since"),
        ({"range": "custom", "since": "yesterday"}, "since"),
        ({"range": "forever"}, "range"),
    ]:
        response = client.get(reverse("model_report", args=[model.pk]), params)
        assert response.status_code == 400 and field in response.context["form"].errors, params
        assert response.context["report"] is None


def test_report_uses_a_fixed_number_of_queries(client, org, owner):
    model = ModelFactory(organization=org, name="chat")
    now = timezone.now()

    def grow():
        deployment = DeploymentFactory(organization=org, model=model)
        for latency in (10, 20):
            event(org, "chat", deployment, now - timedelta(hours=1), latency_ms=latency, cost_display=Decimal("0.01"))

    logged_in(client, owner)
    grow()
    with CaptureQueriesContext(connection) as small:
        assert client.get(reverse("model_report", args=[model.pk])).status_code == 200
    for _n in range(4):
        grow()
    with CaptureQueriesContext(connection) as large:
        response = client.get(reverse("model_report", args=[model.pk]))
    assert len(response.context["rows"]) == 5
    assert len(large) == len(small), "\n".join(query["sql"] for query in large.captured_queries)


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_names_escaped_in_routing_and_report(client, org, owner, hostile):
    cred = credential(org, name=hostile)
    model = ModelFactory(organization=org, name=hostile, description=hostile)
    deployment = DeploymentFactory(organization=org, model=model, credential=cred, upstream_model=hostile, name=hostile)
    DeploymentFactory(organization=org, model=model, credential=cred, upstream_model=hostile + "2", name=hostile + "2")
    other = ModelFactory(organization=org, name="plain", fallback_models=[hostile])
    event(org, hostile, deployment, timezone.now() - timedelta(hours=1), latency_ms=10, cost_display=Decimal("0.01"))
    event(org, hostile, deployment.model.deployments.last(), timezone.now() - timedelta(hours=1), latency_ms=20)
    logged_in(client, owner)
    pages = {
        "report": client.get(reverse("model_report", args=[model.pk])),
        "model_edit (fallback choices)": client.get(reverse("model_edit", args=[other.pk])),
        "models (fallback chain)": client.get(reverse("models")),
        "refused fallback": client.post(reverse("model_edit", args=[other.pk]), {"routing": "weighted", "fallback_models": hostile + ", " + hostile + "x"}),
    }
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    for label, response in pages.items():
        html = html_of(response)
        assert response.status_code in (200, 400), label
        assert hostile not in html, label
        assert escaped in html, label
    assert chart_data_of(pages["report"])["labels"] == [hostile, hostile + "2"]  # json_script escapes <, > and &


def test_report_and_routing_pages_have_no_inline_script_or_style(client, org, owner):
    model = ModelFactory(organization=org, name="chat")
    deployment = DeploymentFactory(organization=org, model=model)
    event(org, "chat", deployment, timezone.now() - timedelta(hours=1), latency_ms=10)
    logged_in(client, owner)
    for response in (client.get(reverse("model_report", args=[model.pk])), client.get(reverse("model_edit", args=[model.pk]))):
        html = html_of(response)
        assert response.status_code == 200
        # Only data islands: <script type="application/json"> is never executed.
        assert not re.search(r'<script(?![^>]*\bsrc=)(?![^>]*type="application/json")[^>]*>', html), "inline <script>"
        assert not re.search(r"\sstyle=", html) and not re.search(r"<style", html)
        assert not re.search(r"\son[a-z]+=", html)
