"""The keys dashboard through Django's test client: keys, providers, models; roles, tenancy, secrets, escaping."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.crypto import keyed_hash
from accounts.models import Role, User
from accounts.tenancy import OrgContext
from keys import encryption, services
from keys import testing as credential_testing
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.selectors import credential_extra_headers, key_snapshot_by_hash
from tests.accounts.factories import MembershipFactory, TeamFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory
from tests.upstream.openai_routes import EXPECTED_KEY
from tests.upstream.server import MockUpstream

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
    assert not ok and "non-public" in message and len(upstream.requests) == requests_before


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
