"""Canaries: recognisable secrets pushed through every flow, then searched for everywhere they must not be.

Provider secrets (a credential's API key and extra header values, a bot's signing secret) are given to
Tollgate through the API and the dashboard, on create and on update, and then used for real: relay calls
through a loopback upstream that quotes the credential back in its errors (400, 401, 429, 500 and an error
event inside a stream), the credential "test" button, alert deliveries to a receiver that echoes. Secrets
Tollgate issues (virtual keys, API tokens, webhook signing secrets) are created and rotated the same ways.

Afterwards every sink is searched: every captured log record (DEBUG, every logger, SQL included), every
response (including every dashboard page and API list and detail visited afterwards), every row of every
table (sessions decoded), every Celery message sent, every email, the usage spool. A provider secret may
appear nowhere; an issued secret only in the single response that showed it once.
"""

import json
import logging
import secrets
from pathlib import Path

import httpx
import pytest
from celery import Celery
from celery.app.task import Task
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from billing import alerts, services as billing_services
from accounts.models import ApiToken, Invitation, Membership, Team
from batches.models import Batch
from billing.credit_models import CreditAccount
from billing.models import AlertChannel, AlertDelivery, Budget, ExchangeRate, Price, UsageEvent
from config.env import DATA_DIR
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from tests.gateway import drain_usage, wait_for
from tests.hardening.helpers import EGRESS_TEST_HOSTS, ROUTES, LeakyUpstream


def canary(kind: str = "sk") -> str:
    # Two shapes: a key-like one, and one no key pattern would recognise (an arbitrary header value).
    return f"sk-CANARY-{secrets.token_hex(12)}" if kind == "sk" else f"CANARY{secrets.token_hex(6)}"


@pytest.fixture
def leaky():
    server = LeakyUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def celery_sent(monkeypatch):
    """Every Celery message the code sends, captured instead of sent."""
    sent = []

    def apply_async(self, args=None, kwargs=None, **options):
        sent.append({"task": self.name, "args": args, "kwargs": kwargs, "options": {k: str(v) for k, v in options.items()}})

    def send_task(self, name, args=None, kwargs=None, **options):
        sent.append({"task": name, "args": args, "kwargs": kwargs, "options": {k: str(v) for k, v in options.items()}})

    monkeypatch.setattr(Task, "apply_async", apply_async)
    monkeypatch.setattr(Celery, "send_task", send_task)
    return sent


@pytest.fixture
def every_log(caplog, settings):
    """DEBUG for every logger, SQL included, but those settings.LOGGING pins on purpose (the HTTP clients, which log URLs)."""
    pinned = [name for name in settings.LOGGING.get("loggers", {}) if name != "django.db.backends"]
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if not any(name == p or name.startswith(p + ".") for p in pinned):
            caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True  # SQL and its parameters are logged too
    yield caplog
    connection.force_debug_cursor = False


class Responses:
    """Every response seen, with the issued secrets it was allowed to show."""

    def __init__(self):
        self.seen: list[tuple[str, bytes, dict]] = []

    def add(self, label: str, response, issued: str | None = None, upstream_errors: bool = False) -> bytes:
        if getattr(response, "streaming", False):
            body = b"".join(response.streaming_content)
        elif isinstance(response, httpx.Response):
            body = response.content
        else:
            body = response.content
        headers = dict(response.headers.items()) if hasattr(response, "headers") else {}
        text = body + json.dumps(headers).encode()
        self.seen.append((label, text, {"issued": issued}))
        # The relay passes upstream failures on as 502/504; nothing else may answer a server error.
        assert response.status_code < 500 or upstream_errors, (label, response.status_code, body[:500])
        return body


def _all_rows() -> str:
    """Every row of every table as text, sessions decoded."""
    dump = []
    for model in apps.get_models():
        dump.append(json.dumps(list(model._default_manager.all().values()), default=str))
    for session in Session.objects.all():
        dump.append(json.dumps(session.get_decoded(), default=str))
    return "\n".join(dump)


def _logs_of(record) -> str:
    lines = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        lines.append(logging.Formatter().formatException(record.exc_info))
    lines.append(repr({k: v for k, v in record.__dict__.items() if k not in ("args", "msg", "exc_info")}))
    return "\n".join(lines)


def _logs(caplog) -> str:
    return "\n".join(_logs_of(record) for record in caplog.records)


def _spool_files() -> str:
    spool = Path(DATA_DIR) / "spool"
    return "\n".join(p.read_text(errors="replace") for p in spool.glob("**/*") if p.is_file()) if spool.exists() else ""


@pytest.mark.timeout(240)
def test_canaries_appear_only_where_shown_once(gateway, leaky, celery_sent, every_log, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1", *EGRESS_TEST_HOSTS]
    org, owner = gateway.org, gateway.ctx.user
    responses = Responses()
    provider_secrets: dict[str, str] = {}  # label -> canary; never to be seen again
    issued: dict[str, str] = {}  # label of the response that showed it -> secret

    dash = APIClient()
    dash.force_login(owner)
    session_api = APIClient()
    session_api.force_login(owner)

    # An API token, issued through the API (a session may create the first one).
    response = session_api.post("/api/tokens/", {"name": "automation", "role": "admin"}, format="json")
    body = responses.add("api token create", response, issued="api token create")
    issued["api token create"] = json.loads(body)["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued['api token create']}")

    # --- Provider credentials: create and update, through the API and the dashboard ---
    for name in ("api key 1", "header 1", "odd header 1", "api key 2", "header 2", "odd header 2", "api key 3", "header 3",
                 "odd header 3", "api key 4", "header 4", "refused key", "refused header", "bot 1", "bot 2",
                 "hook url 1", "hook url 2", "bot url 1", "bot url 2", "refused url 1", "refused url 2", "refused url 3",
                 "refused url 4"):
        provider_secrets[name] = canary("odd" if name.startswith("odd") else "sk")
    s = provider_secrets

    response = api.post("/api/credentials/", {
        "name": "leaky-api", "provider": "custom", "base_url": leaky.url + "/v1", "api_key": s["api key 1"],
        "extra_headers": {"X-Canary": s["header 1"], "X-Org-Token": s["odd header 1"]},
    }, format="json")
    responses.add("credential create (api)", response)
    assert response.status_code == 201, response.content
    api_credential = ProviderCredential.objects.get(organization=org, name="leaky-api")

    response = dash.post(reverse("credential_create"), {
        "provider": "custom", "name": "leaky-dash", "base_url": leaky.url + "/v1", "api_key": s["api key 2"], "api_version": "",
        "extra_headers": json.dumps({"X-Canary": s["header 2"], "X-Org-Token": s["odd header 2"]}),
        "connect_timeout": "5", "read_timeout": "30",
    })
    responses.add("credential create (dashboard)", response)
    assert response.status_code == 302, response.content
    dash_credential = ProviderCredential.objects.get(organization=org, name="leaky-dash")

    # A refused save (a metadata address) must not echo what was typed either.
    response = dash.post(reverse("credential_create"), {
        "provider": "custom", "name": "refused", "base_url": "http://169.254.169.254/v1", "api_key": s["refused key"],
        "extra_headers": json.dumps({"X-Canary": s["refused header"]}), "connect_timeout": "5", "read_timeout": "30",
    })
    responses.add("credential create refused (dashboard)", response)
    assert response.status_code == 400
    response = api.post("/api/credentials/", {
        "name": "refused", "provider": "custom", "base_url": "http://169.254.169.254/v1", "api_key": s["refused key"],
        "extra_headers": {"X-Canary": s["refused header"]},
    }, format="json")
    responses.add("credential create refused (api)", response)
    assert response.status_code == 400

    response = api.patch(f"/api/credentials/{api_credential.pk}/", {
        "api_key": s["api key 3"], "extra_headers": {"X-Canary": s["header 3"], "X-Org-Token": s["odd header 3"]},
    }, format="json")
    responses.add("credential update (api)", response)
    assert response.status_code == 200, response.content

    responses.add("credential edit page", dash.get(reverse("credential_edit", args=[dash_credential.pk])))
    response = dash.post(reverse("credential_edit", args=[dash_credential.pk]), {
        "name": "leaky-dash", "base_url": leaky.url + "/v1", "api_key": s["api key 4"],
        "extra_headers": json.dumps({"X-Canary": s["header 4"]}), "connect_timeout": "5", "read_timeout": "30",
    })
    responses.add("credential update (dashboard)", response)
    assert response.status_code == 302, response.content

    # --- Models on the leaky credentials, and the relay calling them with a virtual key ---
    for suffix in ("400", "401", "429", "500", "stream", "ok"):
        for label, credential in (("api", api_credential), ("dash", dash_credential)):
            response = api.post("/api/models/", {"name": f"canary-{label}-{suffix}"}, format="json")
            responses.add("model create", response)
            model_id = response.json()["id"]
            response = api.post(f"/api/models/{model_id}/deployments/", {
                "credential": credential.pk, "upstream_model": "leak-stream" if suffix == "stream" else
                ("echo" if suffix == "ok" else f"leak-{suffix}"),
            }, format="json")
            responses.add("deployment create", response)
            assert response.status_code == 201, response.content

    response = api.post("/api/keys/", {"name": "canary key (api)"}, format="json")
    body = responses.add("key create (api)", response, issued="key create (api)")
    issued["key create (api)"] = json.loads(body)["secret"]
    vkey = issued["key create (api)"]

    with httpx.Client(base_url=gateway.base_url, timeout=30) as relay:
        for model in Model.objects.filter(organization=org, name__startswith="canary-"):
            for stream in (False, True):
                response = relay.post("/chat/completions", headers={"Authorization": f"Bearer {vkey}"}, json={
                    "model": model.name, "messages": [{"role": "user", "content": "hello"}], "stream": stream,
                })
                responses.add(f"relay {model.name} stream={stream}", response, upstream_errors=True)
    assert len(leaky.requests) >= 12
    assert any(s["api key 3"] in r["headers"].get("Authorization", "") for r in leaky.requests), "the relay used the key"
    assert any(r["headers"].get("X-Org-Token") == s["odd header 3"] for r in leaky.requests), "the relay sent the headers"

    # --- The credential "test" button, which shows the provider's answer ---
    for credential in (api_credential, dash_credential):
        for upstream_model in ("leak-400", "leak-401", "leak-500", "echo"):
            response = dash.post(reverse("credential_test", args=[credential.pk]), {"upstream_model": upstream_model})
            responses.add(f"credential test {upstream_model}", response)
            responses.add("providers page after test", dash.get(reverse("providers")))  # shows the flashed result

    # --- Issued secrets: keys, tokens and webhook secrets through the dashboard and API, and rotations ---
    response = dash.post(reverse("key_create"), {"name": "canary key (dashboard)", "team": "", "user": owner.pk})
    body = responses.add("key create (dashboard)", response, issued="key create (dashboard)")
    dash_key = VirtualKey.objects.get(organization=org, name="canary key (dashboard)")
    issued["key create (dashboard)"] = _secret_on_page(body, "tg-")
    response = dash.post(reverse("key_rotate", args=[dash_key.pk]), {"rotate-grace_seconds": "3600"})
    body = responses.add("key rotate (dashboard)", response, issued="key rotate (dashboard)")
    issued["key rotate (dashboard)"] = _secret_on_page(body, "tg-")
    api_key = VirtualKey.objects.get(organization=org, name="canary key (api)")
    response = api.post(f"/api/keys/{api_key.pk}/rotate/", {"grace_seconds": 60}, format="json")
    body = responses.add("key rotate (api)", response, issued="key rotate (api)")
    issued["key rotate (api)"] = json.loads(body)["secret"]

    # Webhook and bot URLs carry a token (in the query or the path): provider secrets too, written, never shown.
    response = api.post("/api/alert-channels/", {"name": "hook (api)", "kind": "webhook", "target": f"{leaky.url}/hook?token={s['hook url 1']}"}, format="json")
    body = responses.add("webhook create (api)", response, issued="webhook create (api)")
    issued["webhook create (api)"] = json.loads(body)["secret"]
    api_hook = AlertChannel.objects.get(organization=org, name="hook (api)")
    response = api.post(f"/api/alert-channels/{api_hook.pk}/rotate-secret/", format="json")
    body = responses.add("webhook rotate (api)", response, issued="webhook rotate (api)")
    issued["webhook rotate (api)"] = json.loads(body)["secret"]
    response = dash.post(reverse("channel_create"), {"name": "hook (dashboard)", "kind": "webhook", "target": f"{leaky.url}/w/{s['hook url 2']}/hook"})
    body = responses.add("webhook create (dashboard)", response, issued="webhook create (dashboard)")
    issued["webhook create (dashboard)"] = _secret_on_page(body, "whsec_")
    dash_hook = AlertChannel.objects.get(organization=org, name="hook (dashboard)")
    response = dash.post(reverse("channel_rotate", args=[dash_hook.pk]))
    body = responses.add("webhook rotate (dashboard)", response, issued="webhook rotate (dashboard)")
    issued["webhook rotate (dashboard)"] = _secret_on_page(body, "whsec_")

    # Bot signing secrets are the provider's, like credentials: written, never shown.
    response = api.post("/api/alert-channels/", {"name": "bot", "kind": "feishu", "target": f"{leaky.url}/bot/{s['bot url 1']}/hook",
                                                  "secret": s["bot 1"]}, format="json")
    responses.add("bot create (api)", response)
    assert response.status_code == 201, response.content
    bot = AlertChannel.objects.get(organization=org, name="bot")
    response = dash.post(reverse("channel_edit", args=[bot.pk]), {"name": "bot", "target": "", "secret": s["bot 2"], "enabled": "on"})
    responses.add("bot update (dashboard)", response)
    assert response.status_code == 302, response.content
    response = api.patch(f"/api/alert-channels/{bot.pk}/", {"target": f"{leaky.url}/bot/{s['bot url 2']}/hook"}, format="json")
    responses.add("bot url update (api)", response)
    assert response.status_code == 200, response.content

    # Refused channel saves echo no URL: a private address, or another field's error with a good URL.
    for label, client, url, data in (
        ("refused url 1", dash, reverse("channel_create"), {"name": "r", "kind": "dingtalk", "target": "https://10.0.0.1/robot/send?access_token="}),
        ("refused url 2", dash, reverse("channel_create"), {"name": "", "kind": "feishu", "target": f"{leaky.url}/bot/"}),
        ("refused url 3", dash, reverse("channel_edit", args=[bot.pk]), {"name": "", "target": f"{leaky.url}/bot/", "enabled": "on"}),
        ("refused url 4", api, "/api/alert-channels/", {"name": "r", "kind": "wecom", "target": "https://169.254.169.254/cgi-bin/webhook/send?key="}),
    ):
        data = {**data, "target": data["target"] + s[label]}
        response = client.post(url, data, format="json") if client is api else client.post(url, data)
        responses.add(f"channel save refused: {label}", response)
        assert response.status_code == 400, (label, response.status_code)

    # Deliveries to receivers that echo: test buttons, then a real alert through Celery (captured) and its task.
    for channel in (api_hook, dash_hook, bot):
        responses.add("channel test (api)", api.post(f"/api/alert-channels/{channel.pk}/test/", format="json"))
        responses.add("channel test (dashboard)", dash.post(reverse("channel_test", args=[channel.pk])))
    wait_for(lambda: drain_usage() is not None and UsageEvent.objects.filter(organization=org).count() >= 24, timeout=20)
    assert billing_services.unpriced_usage_alert() >= 1
    queued = [m for m in celery_sent if m["task"] == "billing.alert_deliver"]
    assert queued, celery_sent
    for message in queued:
        alerts.alert_deliver(delivery_id=message["args"][0])
    assert AlertDelivery.objects.filter(organization=org, attempts__gte=1).exclude(alert__kind="test").exists()
    sent_paths = [r["path"] for r in leaky.requests]
    assert any(s["bot url 2"] in p for p in sent_paths) and any(s["hook url 2"] in p for p in sent_paths), "the URLs were used"

    # --- Everything visible afterwards: every page and list, every detail of every object ---
    _visit_everything(dash, api, org, responses)

    # --- The search ---
    every_secret = {**{f"provider {k}": v for k, v in provider_secrets.items()}, **{f"issued {k}": v for k, v in issued.items()},
                    "fixture key": gateway.secret}
    sinks = {
        "logs": _logs(every_log),
        "database": _all_rows(),
        "celery": json.dumps(celery_sent, default=str),
        "mail": "\n".join(f"{m.subject}\n{m.body}\n{m.alternatives}" for m in mail.outbox),
        "spool": _spool_files(),
    }
    problems = []
    for label, secret in every_secret.items():
        for sink, text in sinks.items():
            if secret in text:
                problems.append(f"{label} found in {sink}: …{_around(text, secret)}…")
                if sink == "logs":
                    problems.append("  loggers: " + ", ".join(sorted({r.name for r in every_log.records if secret in _logs_of(r)})))
        shown = [seen_label for seen_label, text, meta in responses.seen if secret.encode() in text]
        allowed = [label[len("issued "):]] if label.startswith("issued ") else []
        if label.startswith("issued ") and allowed[0] not in shown:
            problems.append(f"{label} was not shown in its own response")
        for seen_label in shown:
            if seen_label not in allowed:
                problems.append(f"{label} found in the response to {seen_label!r}")
    assert not problems, "\n".join(problems)
    assert Deployment.objects.filter(organization=org).count() >= 12


def _secret_on_page(body: bytes, prefix: str) -> str:
    import re

    match = re.search(re.escape(prefix).encode() + rb"[A-Za-z0-9_\-+/=]{20,}", body)
    assert match, body[:2000]
    return match.group().decode()


def _around(text: str, secret: str) -> str:
    at = text.index(secret)
    return text[max(0, at - 120): at + len(secret) + 40].replace("\n", " ")


def _visit_everything(dash, api, org, responses) -> None:
    from tests.hardening import helpers

    objects = {
        helpers._key: VirtualKey, helpers._credential: ProviderCredential, helpers._mock_credential: ProviderCredential,
        helpers._model: Model, helpers._deployment: Deployment, helpers._usage_event: UsageEvent, helpers._budget: Budget,
        helpers._channel: AlertChannel, helpers._webhook: AlertChannel, helpers._price: Price, helpers._api_token: ApiToken,
        helpers._exchange_rate: ExchangeRate,
        helpers._membership: Membership, helpers._invitation: Invitation, helpers._team: Team,
        helpers._credit_account: CreditAccount, helpers._batch: Batch,
    }
    for route in ROUTES:
        if not any(op.method == "GET" for op in route.ops) or route.by_query:
            continue
        client = api if route.api else dash
        if route.make is None:
            urls = [reverse(route.name)]
        else:
            model = objects[route.make]
            urls = [reverse(route.name, kwargs=route.url_kwargs(obj)) for obj in model.objects.filter(organization=org)]
        for url in urls:
            response = client.get(url)
            # "Fetch models" asks the provider (here the leaky upstream): its refusal is a 502, still without a secret.
            responses.add(f"GET {url}", response, upstream_errors=route.name == "api-credential-models")
