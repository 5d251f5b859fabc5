"""The dashboard and API as a browser meets them: cookies, CSRF, security headers, escaping, hostile input.

- production settings (DJANGO_DEBUG=false, read in a fresh process) make session and CSRF cookies Secure,
  HttpOnly (session) and SameSite, and a real login sets them so;
- every POST form of the dashboard (the route table's, the authentication pages', set_language) and every
  session-authenticated API write is refused without a CSRF token and, with a valid token, from a foreign
  Origin or (over HTTPS) a foreign Referer; the same request with the token from our own origin passes;
- every dashboard page carries a Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval',
  X-Frame-Options DENY and nosniff, and its HTML has no inline script, style or event handler for it to block;
- hostile names (organization, team, user, key, model, deployment, credential, budget, channel, usage rows)
  are rendered escaped on every page, by every role, and in the browsable API;
- SQL fragments in every query parameter of every page and endpoint, in ids, keys, tokens and logins get a
  clear 200/400/401/404, never a 500, and the tables are intact; CR/LF never reaches a response header.
"""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import Client, override_settings
from django.urls import resolve, reverse

from accounts import services as account_services
from accounts.models import AuditLog, Membership, Role, Team
from billing.models import Budget
from keys.models import Model, VirtualKey
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.batches.factories import BatchFactory
from tests.billing.factories import AlertChannelFactory, BudgetFactory, ExchangeRateFactory, PriceFactory, UsageEventFactory
from tests.hardening import helpers
from tests.hardening.helpers import HOSTILE_NAMES, ROUTES, SQL_FRAGMENTS
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

REPO = Path(__file__).resolve().parents[2]
EVIL_ORIGIN = "http://evil.example"


@pytest.fixture(autouse=True)
def _egress(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = helpers.EGRESS_TEST_HOSTS


# --- Production cookie settings -------------------------------------------------------------------------------

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 20 + "production-secret-key-for-the-settings-check-only-0123456789",
    "TOLLGATE_KEY_HASH_SECRET": "k" * 48,
    "TOLLGATE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DJANGO_ALLOWED_HOSTS": "gateway.example.com",
    "DATABASE_URL": "postgres://tollgate:secret@127.0.0.1:5432/tollgate",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TOLLGATE_ACCEPT_VOLATILE_REDIS": "true",  # the test machine's Redis has no persistence; not contacted
}
COOKIE_SETTINGS = [
    "DEBUG", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_SAMESITE", "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY", "CONTENT_SECURITY_POLICY",
]


@pytest.fixture(scope="module")
def production_settings(tmp_path_factory):
    """The settings a DJANGO_DEBUG=false process computes (no service is contacted to compute them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_", "DATABASE_URL", "REDIS_URL"))}
    env.update(PRODUCTION_ENV, TOLLGATE_DATA_DIR=str(tmp_path_factory.mktemp("prod-data")), DJANGO_SETTINGS_MODULE="config.settings")
    code = "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in %r}, default=str))" % COOKIE_SETTINGS
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_cookies_are_secure_httponly_and_samesite(production_settings):
    s = production_settings
    assert s["DEBUG"] is False
    assert s["SESSION_COOKIE_SECURE"] is True and s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True
    assert s["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict") and s["CSRF_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert s["X_FRAME_OPTIONS"] == "DENY" and s["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    directives = s["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert "'unsafe-inline'" not in json.dumps(directives) and "'unsafe-eval'" not in json.dumps(directives)
    assert directives["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_a_real_login_sets_the_production_cookie_flags(production_settings, settings):
    flags = {name: production_settings[name] for name in COOKIE_SETTINGS if name.startswith(("SESSION_", "CSRF_"))}
    with override_settings(**flags):
        user = UserFactory(email="cookie@example.com")
        MembershipFactory(user=user, role=Role.OWNER)
        client = Client(enforce_csrf_checks=True)
        client.get(reverse("login"), secure=True)
        token = client.cookies["csrftoken"].value
        response = client.post(reverse("login"), {"username": "cookie@example.com", "password": "correct-horse-battery",
                                                  "csrfmiddlewaretoken": token}, secure=True, HTTP_REFERER="https://testserver/login/")
        assert response.status_code == 302, response.content[:500]
        session = response.cookies[settings.SESSION_COOKIE_NAME]
        assert session["secure"] and session["httponly"] and session["samesite"] in ("Lax", "Strict")
        csrf = response.cookies.get("csrftoken") or client.cookies["csrftoken"]
        assert csrf["secure"] and csrf["samesite"] in ("Lax", "Strict")


# --- CSRF -----------------------------------------------------------------------------------------------------

DASHBOARD_POSTS = [
    pytest.param(route, op, id=route.name) for route in ROUTES if not route.api for op in route.ops if op.method == "POST"
]
API_WRITES = [
    pytest.param(route, op, id=f"{route.name}-{op.method}") for route in ROUTES if route.api for op in route.ops if op.method != "GET"
]


def _csrf_client(user=None) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    client.get(reverse("login") if user is None else reverse("teams"))
    return client, client.cookies["csrftoken"].value


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "op"), DASHBOARD_POSTS)
def test_every_dashboard_form_needs_a_token_from_our_origin(route, op):
    w = helpers.make_world()

    def request(**extra):
        obj = route.make(w, w.member_b) if route.make else None
        body = op.body(w, obj, w.org_b) if op.body else {}
        url = reverse(route.name, kwargs=route.url_kwargs(obj))
        before = helpers.fingerprint(w.org_b)
        client, token = _csrf_client(w.owner_b)
        data = {**body, **({"csrfmiddlewaretoken": token} if extra.pop("with_token") else {})}
        response = client.post(url, data, **extra)
        return response, before

    for refused in ({"with_token": False}, {"with_token": True, "HTTP_ORIGIN": EVIL_ORIGIN},
                    {"with_token": True, "HTTP_ORIGIN": "null"},
                    {"with_token": True, "secure": True, "HTTP_REFERER": "https://evil.example/form"}):
        response, before = request(**refused)
        assert response.status_code == 403, (refused, response.status_code)
        assert b"CSRF" in response.content
        assert helpers.fingerprint(w.org_b) == before, f"{refused}: the refused request changed something"
    response, _ = request(with_token=True, HTTP_ORIGIN="http://testserver")
    assert response.status_code not in (403, 500), response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "op"), API_WRITES)
def test_every_api_write_by_session_needs_a_token_from_our_origin(route, op):
    """DRF's SessionAuthentication enforces CSRF; API tokens (no cookie) need none."""
    w = helpers.make_world()
    for refused in ({}, {"HTTP_ORIGIN": EVIL_ORIGIN, "token": True}):
        obj = route.make(w, w.member_b) if route.make else None
        body = op.body(w, obj, w.org_b) if op.body else {}
        url = reverse(route.name, kwargs=route.url_kwargs(obj))
        client, token = _csrf_client(w.owner_b)
        headers = {"HTTP_X_CSRFTOKEN": token} if refused.pop("token", False) else {}
        before = helpers.fingerprint(w.org_b)
        response = client.generic(op.method, url, json.dumps(body), content_type="application/json", **headers, **refused)
        assert response.status_code == 403, (refused, response.status_code, response.content[:300])
        assert "CSRF" in response.json()["error"]["message"]
        assert helpers.fingerprint(w.org_b) == before


@pytest.mark.django_db
def test_authentication_pages_and_language_switch_need_a_token():
    user = UserFactory(email="csrf@example.com")
    MembershipFactory(user=user, role=Role.OWNER)
    anonymous_forms = [
        (reverse("login"), {"username": "csrf@example.com", "password": "correct-horse-battery"}),
        (reverse("signup"), {"email": "new@example.com", "name": "", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9",
                             "organization_name": "New"}),
        (reverse("password_reset"), {"email": "csrf@example.com"}),
        (reverse("set_language"), {"language": "zh-hans", "next": "/"}),
    ]
    for url, data in anonymous_forms:
        client, token = _csrf_client()
        assert client.post(url, data).status_code == 403, url
        assert client.post(url, {**data, "csrfmiddlewaretoken": token}, HTTP_ORIGIN=EVIL_ORIGIN).status_code == 403, url
        assert client.post(url, {**data, "csrfmiddlewaretoken": token}, HTTP_ORIGIN="http://testserver").status_code in (200, 302), url
    signed_in_forms = [
        (reverse("password_change"), {"old_password": "correct-horse-battery", "new_password1": "another-long-pass-7",
                                      "new_password2": "another-long-pass-7"}),
        (reverse("logout"), {}),
    ]
    for url, data in signed_in_forms:
        client, token = _csrf_client(user)
        assert client.post(url, data).status_code == 403, url
        assert client.post(url, {**data, "csrfmiddlewaretoken": token}, HTTP_ORIGIN=EVIL_ORIGIN).status_code == 403, url
    user.refresh_from_db()
    assert user.check_password("correct-horse-battery")


# --- Security headers and CSP --------------------------------------------------------------------------------


class _InlineFinder(HTMLParser):
    """Finds what a CSP without 'unsafe-inline' would block: inline scripts, style blocks and attributes, handlers."""

    def __init__(self):
        super().__init__()
        self.problems = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = {name.lower() for name, _ in attrs}
        if tag == "script":
            if "src" not in names and dict(attrs).get("type") not in ("application/json",):
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> block")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{name} handler on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")


def _dashboard_pages(w, user) -> list[str]:
    urls = []
    for route in ROUTES:
        if route.api or not any(op.method == "GET" for op in route.ops) or route.by_query:
            continue
        if route.make is None:
            urls.append(reverse(route.name))
        else:
            obj = route.make(w, user)
            urls.append(reverse(route.name, kwargs=route.url_kwargs(obj)))
    return urls


def _check_headers(response, url) -> list[str]:
    problems = []
    csp = response.get("Content-Security-Policy", "")
    if not csp:
        problems.append(f"{url}: no Content-Security-Policy")
    for bad in ("'unsafe-inline'", "'unsafe-eval'", "*"):
        if bad in csp.split():
            problems.append(f"{url}: CSP allows {bad}")
    if "frame-ancestors 'none'" not in csp:
        problems.append(f"{url}: CSP does not forbid framing")
    if response.get("X-Frame-Options") != "DENY":
        problems.append(f"{url}: X-Frame-Options {response.get('X-Frame-Options')!r}")
    if response.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{url}: no nosniff")
    return problems


@pytest.mark.django_db
def test_every_page_has_a_strict_csp_and_nothing_inline_for_it_to_block():
    w = helpers.make_world()
    problems = []
    pages = [(None, url) for url in (reverse("login"), reverse("signup"), reverse("password_reset"), "/no/such/page/")]
    pages += [(w.owner_b, url) for url in _dashboard_pages(w, w.owner_b)]
    pages += [(w.member_b, url) for url in (reverse("home"), reverse("keys"), reverse("usage"), reverse("playground"))]
    for user, url in pages:
        client = Client()
        if user is not None:
            client.force_login(user)
        response = client.get(url)
        assert response.status_code in (200, 302, 404), (url, response.status_code)
        problems += _check_headers(response, url)
        if response["Content-Type"].startswith("text/html"):
            finder = _InlineFinder()
            finder.feed(response.content.decode())
            problems += [f"{url}: {p}" for p in sorted(set(finder.problems))]
    api = helpers.client_for(w, helpers.ACTORS[2]).get("/api/teams/")
    if api.get("X-Content-Type-Options") != "nosniff":
        problems.append("/api/teams/: no nosniff")
    assert not problems, "\n".join(problems)


# --- Hostile names rendered escaped ----------------------------------------------------------------------------


def _hostile_world(payload: str):
    """An organization where every name a person can choose is `payload` (plus a suffix where names must differ)."""
    org = OrganizationFactory(name=payload)
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(name=payload)).user
    member = MembershipFactory(organization=org, role=Role.MEMBER, user=UserFactory(name=payload + " m")).user
    team = TeamFactory(organization=org, name=payload)
    Membership.objects.get(organization=org, user=member).teams.add(team)
    credential = ProviderCredentialFactory(organization=org, name=payload)
    model = ModelFactory(organization=org, name=payload, description=payload)
    deployment = DeploymentFactory(organization=org, model=model, credential=credential, name=payload, upstream_model=payload)
    key = VirtualKeyFactory(organization=org, user=member, team=team, name=payload, allowed_models=[payload])
    owner_key = VirtualKeyFactory(organization=org, user=owner, team=team, name=payload + " o")
    budget = BudgetFactory(organization=org, name=payload, scope=Budget.Scope.KEY, key=key, downgrade_model=payload)
    channel = AlertChannelFactory(organization=org, name=payload)
    event = UsageEventFactory(organization=org, key_id=key.pk, team_id=team.pk, user_id=member.pk, model_name=payload,
                              upstream_model=payload, deployment_id=deployment.pk, error_type=payload, status_code=404,
                              attempt_trail=[{"deployment": deployment.pk, "status": 500, "error": payload, "ms": 3}])
    AuditLog.objects.create(organization=org, actor=owner, actor_label=payload, action="team.rename", target_type="team",
                            target_id=str(team.pk), target_label=payload, data={"from": payload})
    price = PriceFactory(organization=org, upstream_model=payload, source=payload)
    rate = ExchangeRateFactory(organization=org, currency="CNY")
    account_services.api_token_create(organization=org, name=payload, role=Role.VIEWER, actor=owner)
    batch = BatchFactory(key=owner_key, input_file__filename=payload, metadata={"note": payload})
    objects = {"batch": batch, "key": key, "owner_key": owner_key, "credential": credential, "model": model, "deployment": deployment, "budget": budget,
               "channel": channel, "event": event, "team": team, "price": price, "rate": rate}
    return org, owner, member, objects


OBJECT_PAGES = {  # route name -> the hostile world's object it shows
    "key_detail": "owner_key", "credential_edit": "credential", "model_edit": "model", "model_report": "model",
    "deployment_edit": "deployment", "usage_event": "event", "budget_edit": "budget", "channel_edit": "channel",
    "price_edit": "price", "exchange_rate_edit": "rate", "batch_detail": "batch", "batch_progress": "batch", "batch_file": "batch",
}
RAW = {HOSTILE_NAMES[0]: ["<script>alert(1)</script>"], HOSTILE_NAMES[1]: ["<img src=x", '"><img']}
ESCAPED = {HOSTILE_NAMES[0]: "&lt;script&gt;alert(1)&lt;/script&gt;", HOSTILE_NAMES[1]: "&lt;img src=x onerror=alert(1)&gt;"}


@pytest.mark.django_db
@pytest.mark.parametrize("payload", HOSTILE_NAMES)
def test_hostile_names_are_escaped_on_every_page(payload):
    org, owner, member, objects = _hostile_world(payload)
    pages = []
    for route in ROUTES:
        if route.api or route.by_query or not any(op.method == "GET" for op in route.ops):
            continue
        if route.name == "no_organization":
            continue  # a redirect for anyone with an organization
        if route.make is None:
            pages.append(reverse(route.name))
        elif route.name in OBJECT_PAGES:
            pages.append(reverse(route.name, kwargs=route.url_kwargs(objects[OBJECT_PAGES[route.name]])))
        else:
            raise AssertionError(f"{route.name}: add the hostile world's object it shows to OBJECT_PAGES")
    problems, escaped_on = [], []
    for user, urls in ((owner, pages), (member, [reverse("home"), reverse("keys"), reverse("usage"), reverse("playground"),
                                                 reverse("key_detail", args=[objects["key"].pk]),
                                                 reverse("usage_event", args=[objects["event"].pk])])):
        client = Client()
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            html = helpers.content_of(response).decode()
            if "text/html" in response["Content-Type"]:
                problems += [f"{url}: unescaped {raw!r}" for raw in RAW[payload] if raw in html]
                if ESCAPED[payload] in html:
                    escaped_on.append(url)
    # A batch file downloads under the name it was uploaded with, quoted: the payload cannot end the header's value.
    download = Client()
    download.force_login(owner)
    disposition = download.get(reverse("batch_file", kwargs=helpers.ROUTES_BY_NAME["batch_file"].url_kwargs(objects["batch"])))["Content-Disposition"]
    quoted = re.fullmatch(r'attachment; filename="((?:[^"\\]|\\.)*)"', disposition)  # an RFC 9110 quoted-string
    assert quoted and re.sub(r"\\(.)", r"\1", quoted[1]) == payload, disposition
    # The browsable API (HTML) escapes too.
    api = Client()
    api.force_login(owner)
    for url in ("/api/teams/", "/api/keys/", "/api/models/", "/api/usage/events/", "/api/budgets/", "/api/alert-channels/"):
        html = api.get(url, HTTP_ACCEPT="text/html").content.decode()
        problems += [f"{url} (browsable): unescaped {raw!r}" for raw in RAW[payload] if raw in html]
    assert not problems, "\n".join(problems)
    # The names were shown (escaped), not simply left out: on the pages of each kind of object.
    for must_show in ("/members/", "/teams/", "/keys/", "/providers/", "/models/", "/budgets/", "/usage/", "/audit/", "/prices/",
                      "/settings/api-tokens/"):
        assert must_show in escaped_on, f"{must_show} did not show the name"


# --- SQL fragments, odd ids, CR/LF ---------------------------------------------------------------------------------

PARAM_NAMES = [
    "q", "team", "user", "key", "model", "deployment", "status", "since", "until", "range", "page", "page_size", "scope",
    "channel", "revoked", "errors_only", "group_by", "action", "provider", "request_id", "deliveries", "size_unit", "format",
    "ordering", "search", "id", "pk",
]
# The parameters each page reads (its GET form's fields); every API endpoint's come from its FilterSerializer.
PAGE_PARAMS = {
    "keys": ["q", "team", "user", "status", "page"], "usage": ["range", "since", "until", "team", "key", "user", "model", "status", "page"],
    "usage_export": ["range", "since", "until", "team", "key", "user", "model", "status"], "model_report": ["range", "since", "until"],
    "budgets": ["deliveries"], "audit_log": ["page"], "usage_cost": ["request_id"],
}


def _params_read_by(route, url) -> list[str]:
    if not route.api:
        return PAGE_PARAMS.get(route.name, [])
    view = resolve(url).func.cls
    filters = getattr(view, "FilterSerializer", None)
    names = list(filters().fields) if filters else []
    return [*names, "page", "page_size", "format", *(["action"] if route.name == "api-audit-list" else [])]


def _table_counts() -> dict:
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    return {"tables": sorted(tables), "teams": Team.objects.count(), "keys": VirtualKey.objects.count(), "models": Model.objects.count()}


@pytest.mark.django_db
def test_sql_fragments_in_every_filter_get_a_clear_answer():
    """Every parameter at once (so the ones a view ignores are tried too), then each one it reads on its own."""
    w = helpers.make_world()
    problems = []
    admin, member = helpers.client_for(w, helpers.ACTORS[2]), helpers.client_for(w, helpers.ACTORS[4])
    pages = []
    for route in ROUTES:
        if any(op.method == "GET" for op in route.ops):
            obj = route.make(w, w.member_b) if route.make else None
            pages.append((route, reverse(route.name, kwargs=route.url_kwargs(obj))))
    before = _table_counts()
    for route, url in pages:
        requests = [{name: fragment for name in PARAM_NAMES} for fragment in SQL_FRAGMENTS]
        requests += [{name: fragment} for name in _params_read_by(route, url) for fragment in SQL_FRAGMENTS[:2]]
        clients = [admin, member] if (route.own_list or route.own) else [admin]
        for client in clients:
            for params in requests:
                response = client.get(url, params)
                if response.status_code not in (200, 302, 400, 403, 404):
                    problems.append(f"{url} {params if len(params) == 1 else 'all parameters'}: {response.status_code}")
                elif response.status_code == 400 and route.api and "error" not in response.json():
                    problems.append(f"{url}: a 400 without the error envelope")
    for fragment in SQL_FRAGMENTS:  # in ids: the URL patterns only take digits
        for path in (f"/api/keys/{fragment}/", f"/keys/{fragment}/", f"/usage/{fragment}/", f"/invitation/{fragment}/"):
            response = admin.get(path)
            if response.status_code != 404:
                problems.append(f"{path!r}: {response.status_code}")
    assert not problems, "\n".join(problems[:40])
    assert _table_counts() == before


@pytest.mark.django_db
def test_sql_fragments_as_tokens_logins_and_names(settings):
    w = helpers.make_world()
    before = _table_counts()
    for fragment in SQL_FRAGMENTS:
        for secret in (f"tgo_{fragment}", f"tg-{fragment}", fragment):
            response = Client().get("/api/teams/", HTTP_AUTHORIZATION=f"Bearer {secret}")
            assert response.status_code in (401, 403), (secret, response.status_code)
        response = Client().post(reverse("login"), {"username": fragment, "password": fragment})
        assert response.status_code == 200 and b"errorlist" in response.content
        response = Client().post(reverse("login"), {"username": f"a@b.c' OR 1=1 --", "password": fragment})
        assert response.status_code == 200
    admin = helpers.client_for(w, helpers.ACTORS[2])
    for fragment in SQL_FRAGMENTS:  # stored and shown as the text it is
        response = admin.post("/api/teams/", {"name": fragment}, format="json")
        assert response.status_code == 201 and response.json()["name"] == fragment.strip()
    after = _table_counts()
    assert after["tables"] == before["tables"] and after["keys"] == before["keys"]


@pytest.mark.django_db
def test_line_breaks_never_reach_a_header():
    w = helpers.make_world()
    admin = helpers.client_for(w, helpers.ACTORS[2])
    injected = "x\r\nSet-Cookie: injected=1"
    # Names that end up in response headers (x-tollgate-model, Content-Disposition) are refused with line breaks.
    assert admin.post("/api/models/", {"name": injected}, format="json").status_code == 400
    assert admin.post(reverse("model_create"), {"name": injected, "description": "", "routing": "weighted"}).status_code == 400
    model = ModelFactory(organization=w.org_b)
    credential = ProviderCredentialFactory(organization=w.org_b)
    response = admin.post(f"/api/models/{model.pk}/deployments/", {"credential": credential.pk, "upstream_model": injected}, format="json")
    assert response.status_code == 400
    # Header values given to a credential may not carry line breaks either (API and form).
    response = admin.post("/api/credentials/", {"name": "crlf", "provider": "openai", "api_key": "sk-test-0123456789abcdef",
                                                "extra_headers": {"X-Ok": injected}}, format="json")
    assert response.status_code == 400
    response = admin.post("/api/credentials/", {"name": "crlf", "provider": "openai", "api_key": "sk-test-0123\r\nX: 1"}, format="json")
    assert response.status_code == 400
    response = admin.post(reverse("credential_create"), {
        "provider": "openai", "name": "crlf", "base_url": "", "api_key": "sk-test-0123456789abcdef",
        "extra_headers": json.dumps({"X-Ok\r\nX-Bad": "1"}), "connect_timeout": "10", "read_timeout": "300"})
    assert response.status_code == 400
    # URLs (provider base URLs, webhooks) and Azure's api-version, which end up in request lines, refuse them too.
    for body in ({"base_url": "https://api.openai.com/v1\r\nX-Injected: 1"}, {"base_url": "https://api.openai.com/v1\nx"},
                 {"provider": "azure", "base_url": "https://api.openai.com", "api_version": "2024-10-21\r\nX-Injected: 1"}):
        response = admin.post("/api/credentials/", {"name": helpers.unique("crlf"), "provider": "openai",
                                                    "api_key": "sk-test-0123456789abcdef", **body}, format="json")
        assert response.status_code == 400, (body, response.content)
    response = admin.post(reverse("credential_create"), {
        "provider": "openai", "name": "crlf-form", "base_url": "https://api.openai.com/v1\r\nX-Injected: 1",
        "api_key": "sk-test-0123456789abcdef", "extra_headers": "", "connect_timeout": "10", "read_timeout": "300"})
    assert response.status_code == 400
    assert admin.post("/api/alert-channels/", {"name": "h", "kind": "webhook", "target": "https://hooks.example.com/a\r\nX: 1"},
                      format="json").status_code == 400
    # Email targets and invitations: no header injection into mail.
    assert admin.post("/api/alert-channels/", {"name": "m", "kind": "email", "target": "a@example.com\r\nBcc: x@evil.example"},
                      format="json").status_code == 400
    assert admin.post("/api/invitations/", {"email": "a@example.com\r\nBcc: x@evil.example"}, format="json").status_code == 400
    # Redirect targets with encoded line breaks are not followed into a header.
    client = Client()
    client.force_login(w.admin_b)
    for response in (
        Client().get("/keys/%0d%0aSet-Cookie:%20injected=1"),
        Client().get(reverse("usage") + "?x=%0d%0aSet-Cookie:%20injected=1"),
        Client().post(reverse("login") + "?next=/%0d%0aSet-Cookie:%20injected=1", {"username": "nobody@example.com", "password": "x"}),
        client.get(reverse("login") + "?next=/%0d%0aSet-Cookie:%20injected=1"),
        client.get(reverse("usage_export")),
    ):
        assert response.status_code < 500
        for name, value in response.items():
            assert "\r" not in value and "\n" not in value, (name, value)
        assert "injected" not in response.cookies


def test_relay_refuses_hostile_keys_and_keeps_line_breaks_out_of_headers(gateway):
    with httpx.Client(base_url=gateway.base_url, timeout=20) as relay:
        for fragment in SQL_FRAGMENTS:
            for secret in (f"tg-{fragment}", f"tg-{fragment}".replace(" ", "")):
                response = relay.get("/models", headers={"Authorization": f"Bearer {secret}"})
                assert response.status_code == 401, (secret, response.status_code)
                assert response.json()["error"]["code"] == "invalid_api_key"
        response = relay.post("/chat/completions", headers={"Authorization": f"Bearer {gateway.secret}"}, json={
            "model": "gpt-test\r\nX-Injected: yes", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code in (400, 404)
        assert "x-injected" not in response.headers
        response = relay.post("/chat/completions", headers={"Authorization": f"Bearer {gateway.secret}"}, json={
            "model": "' OR 1=1 --", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 404
    assert VirtualKey.objects.filter(pk=gateway.key.pk, revoked_at=None).exists()
