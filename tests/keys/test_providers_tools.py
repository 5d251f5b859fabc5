"""Fetch models, test all and balance polling against the loopback mock upstream (real HTTP through the egress client)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from accounts.models import Role
from billing.models import Alert
from billing.tasks_alerts import credential_balances_poll
from keys import balances, discovery, egress, probes
from keys.models import Deployment, DeploymentProbe, Model
from keys.tasks import deployment_probes_run
from keys.testing import credential_test_all
from tests.billing.factories import AlertChannelFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory
from tests.upstream.catalog_routes import EXPECTED_KEY
from tests.upstream.server import MockUpstream

pytestmark = pytest.mark.django_db

WRONG_KEY = "sk-live-canary-0123456789WXYZ"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # messages are asserted in English whatever an earlier test activated
        yield


@pytest.fixture(scope="module")
def mock_upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(mock_upstream, settings):
    mock_upstream.reset()
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = [mock_upstream.host]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    return mock_upstream


def cred(org, upstream, provider="openai", key=EXPECTED_KEY, path="/v1", **fields):
    return ProviderCredentialFactory(organization=org, provider=provider, base_url=f"{upstream.url}{path}", api_key=key, **fields)


# --- Fetch models: the three list formats ------------------------------------------------------------------


def test_openai_format_list(org, upstream):
    names = discovery.credential_models(credential=cred(org, upstream))
    assert names == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    sent = upstream.requests[-1]
    assert sent["method"] == "GET" and sent["path"] == "/v1/models" and sent["headers"]["Authorization"] == f"Bearer {EXPECTED_KEY}"


def test_anthropic_list_follows_pages(org, upstream):
    names = discovery.credential_models(credential=cred(org, upstream, provider="anthropic", path=""))
    assert names == ["claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4-5"]
    pages = [r for r in upstream.requests if r["path"] == "/v1/models"]
    assert len(pages) == 2 and pages[1]["query"]["after_id"] == "claude-haiku-4-5"
    assert pages[0]["headers"]["x-api-key"] == EXPECTED_KEY and pages[0]["headers"]["anthropic-version"] == "2023-06-01"


def test_gemini_list_follows_pages_and_keeps_generating_models(org, upstream):
    names = discovery.credential_models(credential=cred(org, upstream, provider="gemini", path="/v1beta"))
    assert names == ["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]  # no "models/" prefix, no tuning-only model
    pages = [r for r in upstream.requests if r["path"] == "/v1beta/models"]
    assert len(pages) == 2 and pages[1]["query"]["pageToken"] == "2"
    assert pages[0]["headers"]["x-goog-api-key"] == EXPECTED_KEY and "key" not in pages[0]["query"]


def test_demo_provider_lists_without_network(org):
    assert discovery.credential_models(credential=ProviderCredentialFactory(organization=org, provider="mock", base_url="")) == ["demo"]


def test_provider_error_is_clear_and_never_shows_the_key(org, upstream):
    with pytest.raises(discovery.DiscoveryFailed) as caught:
        discovery.credential_models(credential=cred(org, upstream, key=WRONG_KEY))
    message = str(caught.value.message)
    assert "HTTP 401" in message and "rejected" in message and WRONG_KEY not in message and "0123456789WXYZ" not in message
    assert caught.value.status == 502


def test_refused_destination_is_not_contacted(org, upstream, settings):
    credential = cred(org, upstream)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    before = len(upstream.requests)
    with pytest.raises(discovery.DiscoveryFailed) as caught:
        discovery.credential_models(credential=credential)
    assert "non-public" in caught.value.message and len(upstream.requests) == before


@pytest.mark.parametrize("body", [b"<html>login</html>", b'{"data": "none"}', b"[1, 2]"])
def test_malformed_list_and_azure(org, upstream, monkeypatch, body):
    monkeypatch.setattr(discovery.egress, "fetch", lambda *a, **k: egress.EgressResponse(200, body, {}))
    with pytest.raises(discovery.DiscoveryFailed, match="not a JSON model list"):
        discovery.credential_models(credential=cred(org, upstream))
    azure = ProviderCredentialFactory(organization=org, provider="azure", base_url="https://llm.example.com")
    with pytest.raises(discovery.DiscoveryFailed, match="Azure"):
        discovery.credential_models(credential=azure)


# --- Fetch models: the page and the REST API --------------------------------------------------------------


def test_fetch_page_then_create_models_from_the_selection(client, org, owner, upstream):
    credential = cred(org, upstream)
    existing = ModelFactory(organization=org, name="gpt-4o")
    client.force_login(owner)
    page = client.post(reverse("credential_models_fetch", args=[credential.pk])).content.decode()
    assert 'name="models" value="gpt-4o-mini"' in page and 'value="text-embedding-3-small"' in page
    response = client.post(reverse("credential_models_create", args=[credential.pk]), {"models": ["gpt-4o-mini", "gpt-4o"]}, follow=True)
    assert response.status_code == 200 and "gpt-4o-mini" in response.content.decode()
    created = Model.objects.get(organization=org, name="gpt-4o-mini")
    assert [(d.credential_id, d.upstream_model) for d in created.deployments.all()] == [(credential.pk, "gpt-4o-mini")]
    assert list(existing.deployments.values_list("upstream_model", flat=True)) == ["gpt-4o"]
    # Fetched again: what is deployed cannot be chosen twice.
    page = client.post(reverse("credential_models_fetch", args=[credential.pk])).content.decode()
    assert 'value="gpt-4o-mini" disabled' in page
    again = client.post(reverse("credential_models_create", args=[credential.pk]), {"models": ["gpt-4o-mini"]}, follow=True)
    assert Deployment.objects.filter(credential=credential, upstream_model="gpt-4o-mini").count() == 1
    assert "Already deployed" in again.content.decode()


def test_fetch_page_shows_provider_error_without_key(client, org, owner, upstream):
    credential = cred(org, upstream, key=WRONG_KEY)
    client.force_login(owner)
    response = client.post(reverse("credential_models_fetch", args=[credential.pk]))
    body = response.content.decode()
    assert response.status_code == 502 and "HTTP 401" in body and WRONG_KEY not in body


def test_create_without_a_choice_is_a_form_error(client, org, owner, upstream):
    credential = cred(org, upstream)
    client.force_login(owner)
    response = client.post(reverse("credential_models_create", args=[credential.pk]), {"offered": ["gpt-4o"]})
    assert response.status_code == 400 and "Choose at least one model" in response.content.decode()
    assert not Model.objects.filter(organization=org).exists()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_only_admins_fetch_create_test_and_check(client, org, member_of, upstream, role):
    credential = cred(org, upstream)
    client.force_login(member_of(org, role).user)
    for name in ("credential_models_fetch", "credential_models_create", "credential_test_all", "credential_balance"):
        assert client.post(reverse(name, args=[credential.pk]), {"models": ["gpt-4o"]}).status_code == 403
    assert not upstream.requests


def test_other_org_credential_is_404(client, org, other_org, owner, upstream):
    foreign = cred(other_org, upstream)
    client.force_login(owner)
    for name in ("credential_models_fetch", "credential_models_create", "credential_test_all", "credential_balance"):
        assert client.post(reverse(name, args=[foreign.pk]), {"models": ["gpt-4o"]}).status_code == 404
    api = APIClient()
    api.force_login(owner)
    assert api.get(f"/api/credentials/{foreign.pk}/models/").status_code == 404
    assert not upstream.requests


def test_api_lists_and_creates(org, owner, member_user, upstream):
    credential = cred(org, upstream)
    api = APIClient()
    api.force_login(owner)
    listed = api.get(f"/api/credentials/{credential.pk}/models/")
    assert listed.status_code == 200 and {"id": "gpt-4o", "deployed": False} in listed.json()["models"]
    created = api.post(f"/api/credentials/{credential.pk}/models/", {"models": ["gpt-4o", "gpt-4o"]}, format="json")
    assert created.status_code == 201 and created.json() == {"created": ["gpt-4o"], "extended": [], "skipped": []}
    assert {"id": "gpt-4o", "deployed": True} in api.get(f"/api/credentials/{credential.pk}/models/").json()["models"]
    assert api.post(f"/api/credentials/{credential.pk}/models/", {"models": []}, format="json").status_code == 400
    too_long = api.post(f"/api/credentials/{credential.pk}/models/", {"models": ["x" * 121]}, format="json")
    assert too_long.status_code == 400
    member = APIClient()
    member.force_login(member_user)
    assert member.get(f"/api/credentials/{credential.pk}/models/").status_code == 403


def test_api_provider_error_is_502_without_key(org, owner, upstream):
    credential = cred(org, upstream, key=WRONG_KEY)
    api = APIClient()
    api.force_login(owner)
    response = api.get(f"/api/credentials/{credential.pk}/models/")
    assert response.status_code == 502 and WRONG_KEY not in response.content.decode() and "HTTP 401" in response.content.decode()


# --- Test all ---------------------------------------------------------------------------------------------


def test_test_all_reports_status_and_latency_per_model(client, org, owner, upstream):
    credential = cred(org, upstream)
    for upstream_model in ("echo", "fail-404", "echo"):
        DeploymentFactory(organization=org, model=ModelFactory(organization=org), credential=credential, upstream_model=upstream_model)
    client.force_login(owner)
    response = client.post(reverse("credential_test_all", args=[credential.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    rows = body.split('id="test-all-results"')[1]
    assert rows.count("<tr data-model=") == 2  # one test per distinct upstream model
    assert 'data-model="echo"' in rows and 'data-model="fail-404"' in rows and "HTTP 404" in rows and " ms</td>" in rows
    assert len([r for r in upstream.requests if r["path"] == "/v1/chat/completions"]) == 2


# --- Balances ---------------------------------------------------------------------------------------------


def test_deepseek_balance(org, upstream):
    credential = balances.balance_check(credential=cred(org, upstream, provider="deepseek"))
    assert credential.balance == Decimal("110.00") and credential.balance_currency == "CNY" and credential.balance_error == ""
    assert upstream.requests[-1]["path"] == "/user/balance"  # the base URL's /v1 is dropped


@pytest.mark.parametrize("provider, currency", [("moonshot-cn", "CNY"), ("moonshot-ai", "USD")])
def test_moonshot_balance_is_decimal(org, upstream, provider, currency):
    credential = balances.balance_check(credential=cred(org, upstream, provider=provider))
    credential.refresh_from_db()
    assert credential.balance == Decimal("49.58") and credential.balance_currency == currency
    assert upstream.requests[-1]["path"] == "/v1/users/me/balance"


@pytest.mark.parametrize("provider, currency", [("siliconflow-cn", "CNY"), ("siliconflow-com", "USD")])
def test_siliconflow_balance_is_the_total(org, upstream, provider, currency):
    credential = balances.balance_check(credential=cred(org, upstream, provider=provider))
    credential.refresh_from_db()
    assert credential.balance == Decimal("88.88") and credential.balance_currency == currency and credential.balance_error == ""
    assert upstream.requests[-1]["path"] == "/v1/user/info"


def test_openrouter_balance_is_credits_left(org, upstream):
    credential = balances.balance_check(credential=cred(org, upstream, provider="openrouter"))
    credential.refresh_from_db()
    assert credential.balance == Decimal("74.75") and credential.balance_currency == "USD"  # 100.5 bought - 25.75 used, exactly
    assert upstream.requests[-1]["path"] == "/v1/credits"
    # An inference key where OpenRouter wants a management key: the refusal is the check's error, the amount stays.
    upstream.balance_answers["/v1/credits"] = (403, {"error": {"message": "Only management keys can perform this operation", "code": 403}})
    credential = balances.balance_check(credential=credential)
    assert credential.balance == Decimal("74.75") and "HTTP 403" in credential.balance_error and "management keys" in credential.balance_error
    upstream.balance_answers["/v1/credits"] = (200, {"data": {"total_credits": "lots"}})
    assert "not understood" in balances.balance_check(credential=credential).balance_error


def test_balance_failure_keeps_last_amount_and_hides_key(org, upstream):
    credential = balances.balance_check(credential=cred(org, upstream, provider="deepseek"))
    upstream.balance_answers["/user/balance"] = (500, {"error": {"message": f"broken for {EXPECTED_KEY}"}})
    credential = balances.balance_check(credential=credential)
    assert credential.balance == Decimal("110.00") and "HTTP 500" in credential.balance_error
    assert EXPECTED_KEY not in credential.balance_error
    upstream.balance_answers["/user/balance"] = (200, {"is_available": True, "balance_infos": [{"currency": "CNY", "total_balance": "NaN"}]})
    assert "not understood" in balances.balance_check(credential=credential).balance_error


def test_poll_task_alerts_once_a_day_below_threshold(org, upstream):
    AlertChannelFactory(organization=org)
    low = cred(org, upstream, provider="deepseek", low_balance_threshold=Decimal("200"))
    cred(org, upstream, provider="moonshot-cn", low_balance_threshold=Decimal("10"))  # 49.58: not low
    cred(org, upstream, provider="openai")  # no balance endpoint: not polled
    credits = cred(org, upstream, provider="openrouter", low_balance_threshold=Decimal("100"))  # 74.75 left: low
    cred(org, upstream, provider="siliconflow-com", low_balance_threshold=Decimal("50"))  # 88.88: not low
    assert credential_balances_poll() == 4
    assert credential_balances_poll() == 4
    alerts = sorted(Alert.objects.filter(organization=org, kind="credential.low_balance"), key=lambda a: a.payload["credential"])
    assert [a.payload["credential"] for a in alerts] == sorted([low.name, credits.name])
    assert {a.payload["credential"]: a.payload["balance"] for a in alerts}[low.name] == "110.0000"
    assert "/v1/models" not in [r["path"] for r in upstream.requests]


def test_balance_page_threshold_and_list(client, org, owner, upstream, settings):
    credential = cred(org, upstream, provider="deepseek", name="DS")
    client.force_login(owner)
    response = client.post(reverse("credential_balance", args=[credential.pk]), follow=True)
    assert "110.00 CNY" in response.content.decode()
    form = {"name": "DS", "base_url": credential.base_url, "connect_timeout": 10, "read_timeout": 60, "low_balance_threshold": "500"}
    assert client.post(reverse("credential_edit", args=[credential.pk]), form).status_code == 302
    credential.refresh_from_db()
    assert credential.low_balance_threshold == Decimal("500")
    listing = client.get(reverse("providers")).content.decode()
    assert "110.00 CNY" in listing and "status bad" in listing  # shown as low on the list
    bad = client.post(reverse("credential_edit", args=[credential.pk]), {**form, "low_balance_threshold": "-1"})
    assert bad.status_code == 400


# --- Scheduled probes -------------------------------------------------------------------------------------


def test_probes_are_off_by_default_and_record_history(client, org, owner, upstream):
    credential = cred(org, upstream)
    model = ModelFactory(organization=org)
    listed = DeploymentFactory(organization=org, model=model, credential=credential, upstream_model="gpt-4o")
    assert listed.probe == Deployment.Probe.OFF
    assert probes.deployment_probes_run() == 0 and not upstream.requests  # nothing is probed unless turned on

    unlisted = DeploymentFactory(organization=org, model=model, credential=credential, upstream_model="gpt-unknown", probe="models")
    paid = DeploymentFactory(organization=org, model=model, credential=credential, upstream_model="fail-503", probe="chat")
    Deployment.objects.filter(pk=listed.pk).update(probe="models")
    assert deployment_probes_run() == 3
    assert DeploymentProbe.objects.get(deployment=listed).ok
    bad = DeploymentProbe.objects.get(deployment=unlisted)
    assert not bad.ok and "gpt-unknown" in bad.message
    failed_call = DeploymentProbe.objects.get(deployment=paid)
    assert not failed_call.ok and failed_call.kind == "chat" and "HTTP 503" in failed_call.message
    assert len([r for r in upstream.requests if r["path"] == "/v1/chat/completions"]) == 1

    client.force_login(owner)
    page = client.get(reverse("deployment_edit", args=[paid.pk])).content.decode()
    assert "HTTP 503" in page and 'id="probe-history"' in page
    client.post(reverse("deployment_probe", args=[listed.pk]))
    assert DeploymentProbe.objects.filter(deployment=listed).count() == 2
    # The setting is edited through the deployment form and the API.
    api = APIClient()
    api.force_login(owner)
    assert api.patch(f"/api/deployments/{listed.pk}/", {"probe": "off"}, format="json").json()["probe"] == "off"
    assert api.patch(f"/api/deployments/{listed.pk}/", {"probe": "often"}, format="json").status_code == 400


def test_probe_history_is_pruned(org, upstream):
    deployment = DeploymentFactory(organization=org, model=ModelFactory(organization=org), credential=cred(org, upstream), probe="models")
    old = DeploymentProbe.objects.create(organization=org, deployment=deployment, kind="models", ok=True,
                                         checked_at=timezone.now() - timedelta(days=probes.HISTORY_DAYS + 1))
    deployment_probes_run()
    assert not DeploymentProbe.objects.filter(pk=old.pk).exists() and DeploymentProbe.objects.filter(deployment=deployment).count() == 1


def test_beat_schedule_names_registered_tasks():
    from config.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    for entry in ("billing-credential-balances-poll", "keys-deployment-probes-run"):
        assert schedule[entry]["task"] in app.tasks


def test_test_all_and_chat_probe_on_the_demo_provider(org, owner_ctx):
    demo = ProviderCredentialFactory(organization=org, provider="mock", base_url="mock://local", api_key="")
    deployment = DeploymentFactory(organization=org, model=ModelFactory(organization=org), credential=demo, upstream_model="demo", probe="chat")
    [row] = credential_test_all(actor=owner_ctx, credential=demo)
    assert row["upstream_model"] == "demo" and row["ok"], row
    assert probes.deployment_probe(deployment=deployment).ok
