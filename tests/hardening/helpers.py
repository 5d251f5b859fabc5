"""Shared by the hardening tests: two organizations with every role, the route table, clients and probes.

The route table (`ROUTES`) is the authorization specification of every dashboard page and REST endpoint:
for each URL name, how to build the object its `pk` names (inside organization B), and for each HTTP
method the permission of the role matrix (accounts/permissions.py) it needs and a body that succeeds for
a role that holds it. tests/hardening/test_authz_routes.py walks `django.urls.get_resolver()` and fails
when a route, or a method of a route, is missing from this table, so a new endpoint cannot slip through.
"""

import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, OuterRef, Subquery
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.crypto import keyed_hash, new_secret
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Role, Team
from accounts.permissions import Perm, has_perm
from accounts.tenancy import OrgContext
from batches.models import Batch, BatchFile
from billing.models import AlertChannel, Budget, ExchangeRate, Price, UsageEvent
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.services import VIRTUAL_KEY_PREFIX
from tests.accounts.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.batches.factories import ONE_LINE, BatchFactory, BatchFileFactory
from tests.billing.factories import AlertChannelFactory, AlertDeliveryFactory, AlertFactory, BudgetFactory, PriceFactory, UsageEventFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory

HOSTILE_NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
SQL_FRAGMENTS = ["' OR 1=1 --", "1; DROP TABLE accounts_team", "1' UNION SELECT key_hash FROM keys_virtualkey --", "%' OR '1'='1"]
# Hosts that count as public in tests without DNS (the SSRF tests live in tests/keys and tests/billing).
EGRESS_TEST_HOSTS = ["api.openai.com", "hooks.example.com"]

_sequence = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_sequence)}"


# --- Two organizations, every role ---------------------------------------------------------------------


@dataclass
class World:
    """Organization A (an admin and an admin API token) and organization B (every role, some objects).

    Everything named in organization B carries `marker`, so a response for org A can be searched for it.
    """

    marker: str
    org_a: Organization
    admin_a: object
    token_a: str
    model_a: Model
    org_b: Organization
    owner_b: object
    admin_b: object
    member_b: object
    other_b: object  # another member: member_b must never reach their keys or usage
    viewer_b: object
    team_b: Team  # member_b is in it
    model_b: Model
    member_key: VirtualKey
    vkey_secret: str  # member_key's secret: a virtual key is for /v1 only
    other_key: VirtualKey
    other_event: UsageEvent
    team_budget: Budget  # the budget of a team member_b is not in
    channel_targets: tuple[str, ...]  # pieces of the alert channels' addresses (a bot URL token, an email address)

    def hidden_from(self, role: str) -> list[tuple[str, str]]:
        """(what, text) that a page or list answered to `role` of organization B must not contain (the role matrix)."""
        hidden = []
        if not has_perm(role, Perm.MANAGE_BUDGETS):
            hidden += [("an alert channel's address", target) for target in self.channel_targets]
        if not has_perm(role, Perm.MANAGE_KEYS) and not has_perm(role, Perm.VIEW_USAGE):
            hidden += [("another member's key", self.other_key.name), ("another member's key prefix", self.other_key.prefix),
                       ("another member's request", self.other_event.request_id),
                       ("another team's budget", self.team_budget.name)]
        if not has_perm(role, Perm.VIEW_MEMBERS):
            hidden += [("another member's email", self.other_b.email)]
        return hidden


def make_world() -> World:
    marker = "ORGB" + secrets.token_hex(4)
    org_a = OrganizationFactory(name=unique("Org A"))
    admin_a = MembershipFactory(organization=org_a, role=Role.ADMIN, user=UserFactory()).user
    _token, token_a = account_services.api_token_create(organization=org_a, name="automation", role=Role.ADMIN, actor=admin_a)
    model_a = ModelFactory(organization=org_a, name=unique("model-a"))

    org_b = OrganizationFactory(name=f"Org {marker}")

    def person(role):
        return MembershipFactory(organization=org_b, role=role, user=UserFactory()).user

    owner_b, admin_b, member_b, other_b, viewer_b = (person(r) for r in (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.MEMBER, Role.VIEWER))
    other_b.email = f"otheremail-{marker.lower()}@example.com"
    other_b.save(update_fields=["email"])
    team_b = TeamFactory(organization=org_b, name=f"team-{marker}")
    Membership.objects.get(organization=org_b, user=member_b).teams.add(team_b)
    model_b = ModelFactory(organization=org_b, name=f"model-{marker}")
    vkey_secret = new_secret(VIRTUAL_KEY_PREFIX)
    member_key = VirtualKeyFactory(organization=org_b, user=member_b, name=f"own-key-{marker}", secret=vkey_secret)
    other_key = VirtualKeyFactory(organization=org_b, user=other_b, name=f"OTHERKEY-{marker}")
    other_event = UsageEventFactory(
        organization=org_b, key_id=other_key.pk, user_id=other_b.pk, request_id=f"req-OTHER-{marker}", model_name=model_b.name,
    )
    BatchFactory(key=other_key)  # the batches page lists it by its key's name: never to member_b
    other_team = TeamFactory(organization=org_b, name=f"otherteam-{marker}")
    Membership.objects.get(organization=org_b, user=other_b).teams.add(other_team)
    team_budget = BudgetFactory(organization=org_b, name=f"TEAMBUDGET-{marker}", scope=Budget.Scope.TEAM, team=other_team)
    bot_token, mailbox = f"CHANNELTOKEN{marker}", f"alerts-{marker.lower()}@example.com"
    bot = AlertChannelFactory(organization=org_b, name=f"bot-{marker}", kind=AlertChannel.Kind.WECOM,
                              target=f"https://hooks.example.com/cgi-bin/webhook/send?key={bot_token}")
    AlertChannelFactory(organization=org_b, name=f"mail-{marker}", target=mailbox)
    alert = AlertFactory(organization=org_b, kind="budget.threshold", budget=team_budget,
                         payload={"budget": team_budget.name, "scope": "team", "threshold": 80})
    AlertDeliveryFactory(organization=org_b, alert=alert, channel=bot)
    return World(marker, org_a, admin_a, token_a, model_a, org_b, owner_b, admin_b, member_b, other_b, viewer_b, team_b,
                 model_b, member_key, vkey_secret, other_key, other_event, team_budget, (bot_token, mailbox))


COUNTED = [Membership, Team, Invitation, ApiToken, VirtualKey, ProviderCredential, Model, Deployment, Budget, AlertChannel, Batch, BatchFile,
           Price, ExchangeRate, UsageEvent, AuditLog]


def _count(queryset):
    return Subquery(queryset.order_by().values("organization").annotate(n=Count("pk")).values("n")[:1])


def fingerprint(org: Organization) -> dict:
    """What an organization holds, in one query: its row, how many of each kind of object, roles, revocations."""
    counts = {m.__name__: _count(m.objects.filter(organization=OuterRef("pk"))) for m in COUNTED}
    counts["revoked_keys"] = _count(VirtualKey.objects.filter(organization=OuterRef("pk"), revoked_at__isnull=False))
    for role in Role.values:
        counts[f"role_{role}"] = _count(Membership.objects.filter(organization=OuterRef("pk"), role=role))
    return Organization.objects.filter(pk=org.pk).annotate(**counts).values().first()


def row(obj) -> dict | None:
    return type(obj)._default_manager.filter(pk=obj.pk).values().first()


# --- Who calls ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    name: str
    kind: str  # session, token (an org API token), vkey (a virtual key), anon
    role: str | None = None
    org: str | None = None  # "a" or "b"

    def user(self, w: World):
        return {"admin_a": w.admin_a, "admin_b": w.admin_b, "viewer_b": w.viewer_b, "member_b": w.member_b,
                "owner_b": w.owner_b}.get(self.name)


ACTORS = [
    Actor("admin_a", "session", Role.ADMIN, "a"),  # another organization's admin, signed in
    Actor("token_a", "token", Role.ADMIN, "a"),  # another organization's admin API token
    Actor("admin_b", "session", Role.ADMIN, "b"),  # the control: allowed nearly everything
    Actor("viewer_b", "session", Role.VIEWER, "b"),
    Actor("member_b", "session", Role.MEMBER, "b"),
    Actor("vkey", "vkey"),  # Authorization: Bearer tg-… of organization B
    Actor("anon", "anon"),
]

ACTORS_BY_NAME = {actor.name: actor for actor in ACTORS}


def client_for(w: World, actor: Actor, **kwargs) -> APIClient:
    client = APIClient(**kwargs)
    if actor.kind == "session":
        client.force_login(actor.user(w))
    elif actor.kind == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {w.token_a}")
    elif actor.kind == "vkey":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {w.vkey_secret}")
    return client


def content_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def send(client, method: str, url: str, *, api: bool, body: dict | None = None, query: dict | None = None):
    if method == "GET":
        return client.get(url, query or {})
    if api:
        return client.generic(method, url, data=json.dumps(body or {}), content_type="application/json")
    return client.post(url, body or {})


# --- Object factories: each builds one object of organization B (`owner` for keys and usage) ------------------


def _membership(w, owner=None):
    return MembershipFactory(organization=w.org_b, role=Role.MEMBER, user=UserFactory(name=f"person-{w.marker}"))


def _invitation(w, owner=None):
    return Invitation.objects.create(
        organization=w.org_b, email=unique(f"invitee-{w.marker}").lower() + "@example.com", role=Role.MEMBER,
        token_hash=keyed_hash(new_secret(account_services.INVITATION_TOKEN_PREFIX)), expires_at=timezone.now() + timedelta(days=7),
    )


def _team(w, owner=None):
    return TeamFactory(organization=w.org_b, name=unique(f"team-{w.marker}"))


def _key(w, owner=None):
    return VirtualKeyFactory(organization=w.org_b, user=owner or w.other_b, name=unique(f"key-{w.marker}"))


def _credential(w, owner=None):
    return ProviderCredentialFactory(organization=w.org_b, name=unique(f"cred-{w.marker}"))


def _mock_credential(w, owner=None):
    """The demo provider answers in process: the "test" button needs no network."""
    return ProviderCredentialFactory(organization=w.org_b, name=unique(f"demo-{w.marker}"), provider="mock", base_url="mock://local", api_key="")


def _model(w, owner=None):
    return ModelFactory(organization=w.org_b, name=unique(f"model-{w.marker}"))


def _deployment(w, owner=None):
    """A deployment that may be deleted or deactivated: its model keeps another active one."""
    deployment = DeploymentFactory(organization=w.org_b, name=unique(f"dep-{w.marker}"))
    DeploymentFactory(organization=w.org_b, model=deployment.model, credential=deployment.credential)
    return deployment


def _mock_deployment(w, owner=None):
    """A deployment on the demo provider: probing it needs no network."""
    return DeploymentFactory(organization=w.org_b, name=unique(f"dep-{w.marker}"), credential=_mock_credential(w), upstream_model="demo")


def _usage_event(w, owner=None):
    key = _key(w, owner)
    return UsageEventFactory(organization=w.org_b, key_id=key.pk, user_id=key.user_id, request_id=unique(f"req-{w.marker}"),
                             model_name=w.model_b.name)


def _budget(w, owner=None):
    return BudgetFactory(organization=w.org_b, name=unique(f"budget-{w.marker}"))


def _channel(w, owner=None):
    return AlertChannelFactory(organization=w.org_b, name=unique(f"channel-{w.marker}"), target=w.channel_targets[1])


def _webhook(w, owner=None):
    return AlertChannelFactory(organization=w.org_b, name=unique(f"hook-{w.marker}"), webhook=True)


def _price(w, owner=None):
    return PriceFactory(organization=w.org_b, upstream_model=unique(f"priced-{w.marker}"))


def _exchange_rate(w, owner=None):
    return ExchangeRate.objects.create(organization=w.org_b, currency="JPY", rate="0.0067", effective_from=timezone.now())


def _credit_account(w, owner=None):
    from billing.credits import credit_account_get

    return credit_account_get(organization=w.org_b, user=owner or w.other_b)


def _batch(w, owner=None):
    """A batch in progress of a key of `owner` (another member by default): pause applies to it."""
    return BatchFactory(key=_key(w, owner))


def _batch_path(batch) -> dict:
    return {"public_id": batch.public_id}


def _own_key_in(w, org):
    """A key the caller may run a batch as: member_b's own in organization B (every role that may sees it), an
    admin's in organization A."""
    return w.member_key if org == w.org_b else VirtualKeyFactory(organization=org, user=w.admin_a, name=unique("key-a"))


def _batch_upload(w, org) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"key": _own_key_in(w, org).pk, "kind": "jsonl", "file": SimpleUploadedFile("input.jsonl", ONE_LINE), "cap": "1"}


def _batch_start(w, org) -> dict:
    uploaded = BatchFileFactory(key=_own_key_in(w, org))
    return {"key": uploaded.key_id, "file_id": uploaded.public_id, "endpoint": "/v1/chat/completions", "cap": "1"}


def _code_in(org) -> str:
    """A fresh redemption code of `org`, for a request that redeems it."""
    from billing.credit_codes import redemption_codes_generate

    admin = Membership.objects.filter(organization=org, role__in=[Role.OWNER, Role.ADMIN]).select_related("user").first()
    ctx = OrgContext(organization=org, role=Role.OWNER, user=admin.user if admin else None)
    return redemption_codes_generate(actor=ctx, count=1, amount="1", expires_at=timezone.now() + timedelta(days=1))[1][0][1]


def _member_of(org):
    return Membership.objects.filter(organization=org).order_by("id").values_list("user_id", flat=True).first()


def _api_token(w, owner=None):
    return account_services.api_token_create(organization=w.org_b, name=unique(f"token-{w.marker}"), role=Role.VIEWER)[0]


# --- Request bodies that succeed for a role allowed to send them (w, obj, org of the caller) -------------------


def _active_model_name(org) -> str:
    return Model.objects.filter(organization=org, is_active=True).order_by("id").values_list("name", flat=True).first()


def _credential_of(org) -> ProviderCredential:
    return ProviderCredentialFactory(organization=org, name=unique("cred"))


MODEL_EDIT_FORM = {
    "description": "changed", "is_active": "on", "routing": "weighted", "fallback_models": "", "retry_statuses": "",
    "max_attempts": "", "retries_per_deployment": "", "deadline_seconds": "", "cooldown_failures": "",
    "cooldown_window_seconds": "", "cooldown_seconds": "", "fallback_max_price_ratio": "", "context_fallback": "on",
}


# --- The route table --------------------------------------------------------------------------------------


def is_404(response) -> bool:
    return response.status_code == 404


def _not_found_json(response) -> bool:
    return response.status_code == 200 and response.json() == {"found": False}


@dataclass(frozen=True)
class Op:
    method: str
    perm: Perm | None  # None: any signed-in member of an organization
    body: Callable | None = None  # (world, obj, caller's org) -> dict


@dataclass(frozen=True)
class Route:
    name: str
    api: bool
    ops: tuple[Op, ...]
    make: Callable | None = None  # builds the object `pk` names; None: a page or collection of the caller's own org
    own: Perm | None = None  # the object belongs to a member: without this perm, a member reaches only their own (else 404)
    own_list: bool = False  # a member's list: another member's keys and requests never appear in it
    read_needs: Perm | None = None  # reading (GET) the object also needs this perm; without it: not found
    query: Callable | None = None  # (world, obj) -> GET parameters
    by_query: bool = False  # the object is named by a query parameter, not by `pk` in the path
    hidden: Callable = is_404  # what "not found" looks like
    foreign: str | None = None  # "hidden": another org's caller gets `hidden` although there is no pk (org_switch)
    ok_status: frozenset = frozenset()  # when allowed; default 200/302 (pages), 200/201/204 (API)
    path: Callable | None = None  # (obj) -> the URL's arguments, for a route that names its object otherwise than by `pk`

    @property
    def in_path(self) -> bool:
        return self.make is not None and not self.by_query

    @property
    def foreign_hidden(self) -> bool:
        return self.make is not None or self.foreign == "hidden"

    def url_kwargs(self, obj) -> dict | None:
        if not self.in_path:
            return None
        return self.path(obj) if self.path else {"pk": obj.pk}

    def ok(self, status: int) -> bool:
        allowed = self.ok_status or ({200, 201, 204} if self.api else {200, 302})
        return status in allowed


def _r(name, *ops, **kwargs) -> Route:
    return Route(name=name, api=name.startswith("api-"), ops=tuple(ops), **kwargs)


G, P = "GET", "POST"
_SSO_BODY = {"kind": "oidc", "client_id": "tollgate", "client_secret": "idp-secret", "issuer_url": "https://idp.example.com",
             "allowed_domains": ["example.com"], "default_role": "member"}
ANY = None

ROUTES: list[Route] = [
    # --- Dashboard: accounts ---
    _r("home", Op(G, ANY), own_list=True),
    _r("overview", Op(G, ANY), own_list=True),
    _r("no_organization", Op(G, ANY), Op(P, ANY, lambda w, o, org: {"name": unique("New org")})),
    _r("org_switch", Op(P, ANY, lambda w, o, org: {"organization": w.org_b.pk}), foreign="hidden"),
    _r("org_settings", Op(G, Perm.VIEW_ORG),
       Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"name": unique("Renamed org"), "time_zone": "UTC", "currency": "USD"})),
    _r("audit_log", Op(G, Perm.VIEW_AUDIT)),
    _r("api_tokens", Op(G, Perm.MANAGE_ORG)),
    _r("sso_settings", Op(G, Perm.MANAGE_ORG),
       Op(P, Perm.MANAGE_ORG, lambda w, o, org: {**_SSO_BODY, "allowed_domains": "example.com", "enabled": "on"})),
    _r("sso_delete", Op(P, Perm.MANAGE_ORG)),
    _r("api_token_create", Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"token-name": unique("token"), "token-role": Role.VIEWER})),
    _r("api_token_revoke", Op(P, Perm.MANAGE_ORG), make=_api_token),
    _r("members", Op(G, Perm.VIEW_ORG)),
    _r("member_invite", Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"email": unique("invitee") + "@example.com", "role": Role.MEMBER, "team": ""})),
    _r("member_role", Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"role": Role.VIEWER}), make=_membership),
    _r("member_teams", Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"teams": [TeamFactory(organization=o.organization).pk]}), make=_membership),
    _r("member_remove", Op(P, Perm.MANAGE_MEMBERS), make=_membership),
    _r("invitation_revoke", Op(P, Perm.MANAGE_MEMBERS), make=_invitation),
    _r("invitation_resend", Op(P, Perm.MANAGE_MEMBERS), make=_invitation),
    _r("teams", Op(G, Perm.VIEW_ORG)),
    _r("team_create", Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"name": unique("team")})),
    _r("team_rename", Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"name": unique("renamed")}), make=_team),
    _r("team_delete", Op(P, Perm.MANAGE_MEMBERS), make=_team),
    # --- Dashboard: keys, providers, models ---
    _r("keys", Op(G, Perm.MANAGE_OWN_KEYS), own_list=True),
    _r("key_create", Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"name": unique("key"), "team": "", "user": "", "expires_at": "",
                                                                     "rpm_limit": "", "tpm_limit": ""})),
    _r("key_detail", Op(G, Perm.MANAGE_OWN_KEYS), make=_key, own=Perm.MANAGE_KEYS),
    _r("key_update", Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"edit-name": unique("renamed"), "edit-rpm_limit": "7"}),
       make=_key, own=Perm.MANAGE_KEYS),
    _r("key_rotate", Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"rotate-grace_seconds": "0"}), make=_key, own=Perm.MANAGE_KEYS),
    _r("key_revoke", Op(P, Perm.MANAGE_OWN_KEYS), make=_key, own=Perm.MANAGE_KEYS),
    _r("providers", Op(G, Perm.VIEW_ORG)),
    _r("credential_create", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {
        "provider": "openai", "name": unique("cred"), "base_url": "", "api_key": "sk-test-0123456789abcdef", "api_version": "",
        "extra_headers": "", "connect_timeout": "10", "read_timeout": "300"})),
    _r("credential_edit", Op(G, Perm.MANAGE_PROVIDERS),
       Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"name": unique("renamed"), "base_url": "", "api_key": "", "extra_headers": "",
                                                       "connect_timeout": "10", "read_timeout": "300"}),
       make=_credential),
    _r("credential_delete", Op(P, Perm.MANAGE_PROVIDERS), make=_credential),
    _r("credential_test", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"upstream_model": "demo"}), make=_mock_credential),
    _r("credential_test_all", Op(P, Perm.MANAGE_PROVIDERS), make=_mock_credential),
    _r("credential_models_fetch", Op(P, Perm.MANAGE_PROVIDERS), make=_mock_credential),
    _r("credential_models_create", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"models": [unique("upstream")]}), make=_mock_credential),
    _r("credential_balance", Op(P, Perm.MANAGE_PROVIDERS), make=_mock_credential),
    _r("models", Op(G, Perm.VIEW_ORG)),
    _r("model_create", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"name": unique("model"), "description": "", "routing": "weighted"})),
    _r("model_edit", Op(G, Perm.MANAGE_PROVIDERS), Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: dict(MODEL_EDIT_FORM)), make=_model),
    _r("model_delete", Op(P, Perm.MANAGE_PROVIDERS), make=_model),
    _r("model_report", Op(G, Perm.VIEW_USAGE), make=_model),
    _r("deployment_create", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {
        f"model-{o.pk}-credential": _credential_of(o.organization).pk, f"model-{o.pk}-upstream_model": "gpt-4o-mini",
        f"model-{o.pk}-name": "", f"model-{o.pk}-weight": "1", f"model-{o.pk}-order": "0"}), make=_model),
    _r("deployment_edit", Op(G, Perm.MANAGE_PROVIDERS),
       Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"credential": o.credential_id, "upstream_model": "changed", "name": "",
                                                       "weight": "3", "order": "0", "is_active": "on"}),
       make=_deployment),
    _r("deployment_delete", Op(P, Perm.MANAGE_PROVIDERS), make=_deployment),
    _r("deployment_probe", Op(P, Perm.MANAGE_PROVIDERS), make=_mock_deployment),
    # --- Dashboard: billing ---
    _r("usage", Op(G, Perm.VIEW_OWN_USAGE), own_list=True),
    _r("usage_export", Op(G, Perm.VIEW_OWN_USAGE), own_list=True),
    _r("usage_cost", Op(G, Perm.VIEW_OWN_USAGE), make=_usage_event, own=Perm.VIEW_USAGE,
       query=lambda w, o: {"request_id": o.request_id}, by_query=True, hidden=_not_found_json),
    _r("usage_event", Op(G, Perm.VIEW_OWN_USAGE), make=_usage_event, own=Perm.VIEW_USAGE),
    _r("prices", Op(G, Perm.VIEW_ORG)),
    _r("price_create", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {
        "provider": "openai", "upstream_model": unique("priced"), "currency": "USD", "input_per_m": "1.5", "output_per_m": "2",
        "time_zone": "UTC"})),
    _r("price_edit", Op(G, Perm.MANAGE_PROVIDERS),
       Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"currency": "USD", "input_per_m": "1", "output_per_m": "3", "time_zone": "UTC"}),
       make=_price),
    _r("exchange_rates", Op(G, Perm.VIEW_ORG)),
    _r("exchange_rate_create", Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"currency": "EUR", "rate": "1.1"})),
    _r("exchange_rate_edit", Op(G, Perm.MANAGE_ORG), Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"rate": "0.007"}), make=_exchange_rate),
    _r("budgets", Op(G, Perm.VIEW_ORG)),
    _r("budget_create", Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {
        "name": unique("budget"), "scope": "org", "team": "", "key": "", "user": "", "amount": "10", "period": "month",
        "hard": "on", "thresholds": "50, 80, 100", "downgrade_model": ""})),
    _r("budget_edit", Op(G, Perm.MANAGE_BUDGETS),
       Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"name": unique("renamed"), "amount": "5", "period": "month", "hard": "on",
                                                     "thresholds": "50, 80, 100", "downgrade_model": ""}),
       make=_budget),
    _r("budget_delete", Op(P, Perm.MANAGE_BUDGETS), make=_budget),
    _r("channel_create", Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"name": unique("channel"), "kind": "email",
                                                                        "target": "ops@example.com", "secret": ""})),
    _r("channel_edit", Op(G, Perm.MANAGE_BUDGETS),
       Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"name": unique("renamed"), "target": "ops2@example.com", "enabled": "on"}),
       make=_channel),
    _r("channel_delete", Op(P, Perm.MANAGE_BUDGETS), make=_channel),
    _r("channel_rotate", Op(P, Perm.MANAGE_BUDGETS), make=_webhook),
    _r("channel_test", Op(P, Perm.MANAGE_BUDGETS), make=_channel),
    _r("estimator", Op(G, Perm.VIEW_ORG),
       Op(P, Perm.VIEW_ORG, lambda w, o, org: {"documents": "2", "average_size": "100", "size_unit": "tokens",
                                               "expected_output_tokens": "10", "models": [_active_model_name(org)]})),
    _r("playground", Op(G, Perm.MANAGE_OWN_KEYS), own_list=True),
    # --- Dashboard: batches, named by a batch's public id; a member reaches the batches of their own keys ---
    _r("batches", Op(G, Perm.MANAGE_OWN_KEYS), Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: _batch_upload(w, org)), own_list=True),
    _r("batch_start", Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: _batch_start(w, org))),
    _r("batch_detail", Op(G, Perm.MANAGE_OWN_KEYS), make=_batch, own=Perm.MANAGE_KEYS, path=_batch_path),
    _r("batch_progress", Op(G, Perm.MANAGE_OWN_KEYS), make=_batch, own=Perm.MANAGE_KEYS, path=_batch_path),
    _r("batch_control", Op(P, Perm.MANAGE_OWN_KEYS), make=_batch, own=Perm.MANAGE_KEYS,
       path=lambda batch: {"public_id": batch.public_id, "action": "pause"}),
    _r("batch_file", Op(G, Perm.MANAGE_OWN_KEYS), make=_batch, own=Perm.MANAGE_KEYS,
       path=lambda batch: {"public_id": batch.public_id, "file_id": batch.input_file.public_id}),
    # --- REST API: accounts ---
    _r("api-org", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_ORG, lambda w, o, org: {"name": unique("Renamed org")})),
    _r("api-member-list", Op(G, Perm.VIEW_ORG)),
    # DELETE needs only view_org to leave oneself; removing another member needs manage_members (the case here).
    _r("api-member-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_MEMBERS, lambda w, o, org: {"role": Role.VIEWER}),
       Op("DELETE", Perm.MANAGE_MEMBERS), make=_membership, read_needs=Perm.VIEW_MEMBERS),
    _r("api-team-list", Op(G, Perm.VIEW_ORG), Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"name": unique("team")})),
    _r("api-team-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_MEMBERS, lambda w, o, org: {"name": unique("renamed")}),
       Op("DELETE", Perm.MANAGE_MEMBERS), make=_team),
    _r("api-invitation-list", Op(G, Perm.MANAGE_MEMBERS),
       Op(P, Perm.MANAGE_MEMBERS, lambda w, o, org: {"email": unique("invitee") + "@example.com", "role": Role.MEMBER})),
    _r("api-invitation-detail", Op(G, Perm.MANAGE_MEMBERS), Op("DELETE", Perm.MANAGE_MEMBERS), make=_invitation),
    _r("api-invitation-resend", Op(P, Perm.MANAGE_MEMBERS), make=_invitation),
    _r("api-token-list", Op(G, Perm.MANAGE_ORG), Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"name": unique("token"), "role": Role.VIEWER})),
    _r("api-token-detail", Op(G, Perm.MANAGE_ORG), Op("DELETE", Perm.MANAGE_ORG), make=_api_token),
    _r("api-audit-list", Op(G, Perm.VIEW_AUDIT)),
    # --- Single sign-on (sso/): one connection per organization, no pk; GET answers 404 while there is none ---
    _r("api-sso", Op(G, Perm.MANAGE_ORG), Op("PUT", Perm.MANAGE_ORG, lambda w, o, org: _SSO_BODY), Op("DELETE", Perm.MANAGE_ORG),
       ok_status=frozenset({200, 204, 404})),
    # --- REST API: keys ---
    _r("api-key-list", Op(G, Perm.MANAGE_OWN_KEYS), Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"name": unique("key")}), own_list=True),
    _r("api-key-detail", Op(G, Perm.MANAGE_OWN_KEYS),
       Op("PATCH", Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"name": unique("renamed"), "rpm_limit": 5}),
       Op("DELETE", Perm.MANAGE_OWN_KEYS), make=_key, own=Perm.MANAGE_KEYS),
    _r("api-key-rotate", Op(P, Perm.MANAGE_OWN_KEYS, lambda w, o, org: {"grace_seconds": 60}), make=_key, own=Perm.MANAGE_KEYS),
    _r("api-provider-presets", Op(G, Perm.VIEW_ORG)),
    _r("api-credential-list", Op(G, Perm.VIEW_ORG),
       Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"name": unique("cred"), "provider": "openai", "api_key": "sk-test-0123456789abcdef"})),
    _r("api-credential-detail", Op(G, Perm.VIEW_ORG),
       Op("PATCH", Perm.MANAGE_PROVIDERS, lambda w, o, org: {"name": unique("renamed"), "read_timeout": 5}),
       Op("DELETE", Perm.MANAGE_PROVIDERS), make=_credential),
    _r("api-credential-models", Op(G, Perm.MANAGE_PROVIDERS),
       Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"models": [unique("upstream")]}), make=_mock_credential),
    _r("api-model-list", Op(G, Perm.VIEW_ORG), Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {"name": unique("model")})),
    _r("api-model-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_PROVIDERS, lambda w, o, org: {"description": "changed"}),
       Op("DELETE", Perm.MANAGE_PROVIDERS), make=_model),
    _r("api-model-deployments", Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {
        "credential": _credential_of(o.organization).pk, "upstream_model": "gpt-4o-mini"}), make=_model),
    _r("api-model-report", Op(G, Perm.VIEW_USAGE), make=_model),
    _r("api-deployment-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_PROVIDERS, lambda w, o, org: {"weight": 3}),
       Op("DELETE", Perm.MANAGE_PROVIDERS), make=_deployment),
    # --- REST API: billing ---
    _r("api-price-list", Op(G, Perm.VIEW_ORG), Op(P, Perm.MANAGE_PROVIDERS, lambda w, o, org: {
        "provider": "openai", "upstream_model": unique("priced"), "currency": "USD", "input_per_m": "1.5", "output_per_m": "2"})),
    _r("api-price-detail", Op(G, Perm.VIEW_ORG), make=_price),
    _r("api-exchange-rate-list", Op(G, Perm.VIEW_ORG), Op(P, Perm.MANAGE_ORG, lambda w, o, org: {"currency": "EUR", "rate": "1.1"})),
    _r("api-budget-list", Op(G, Perm.VIEW_ORG), Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"scope": "org", "amount": "10"})),
    _r("api-budget-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_BUDGETS, lambda w, o, org: {"amount": "5"}),
       Op("DELETE", Perm.MANAGE_BUDGETS), make=_budget),
    _r("api-usage-summary", Op(G, Perm.VIEW_OWN_USAGE), own_list=True),
    _r("api-usage-events", Op(G, Perm.VIEW_OWN_USAGE), own_list=True),
    _r("api-usage-backlog", Op(G, Perm.VIEW_USAGE)),
    _r("api-estimate", Op(P, Perm.VIEW_ORG, lambda w, o, org: {"documents": 2, "average_document_tokens": 100,
                                                               "expected_output_tokens": 10, "models": [_active_model_name(org)]})),
    _r("api-alert-channel-list", Op(G, Perm.VIEW_ORG),
       Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"name": unique("channel"), "kind": "email", "target": "ops@example.com"})),
    _r("api-alert-channel-detail", Op(G, Perm.VIEW_ORG), Op("PATCH", Perm.MANAGE_BUDGETS, lambda w, o, org: {"name": unique("renamed")}),
       Op("DELETE", Perm.MANAGE_BUDGETS), make=_channel),
    _r("api-alert-channel-rotate", Op(P, Perm.MANAGE_BUDGETS), make=_webhook),
    _r("api-alert-channel-test", Op(P, Perm.MANAGE_BUDGETS), make=_channel),
    _r("api-alert-delivery-list", Op(G, Perm.VIEW_ORG)),
    # --- Credits ---
    _r("wallet", Op(G, Perm.VIEW_OWN_USAGE)),
    _r("wallet_redeem", Op(P, Perm.VIEW_OWN_USAGE, lambda w, o, org: {"code": _code_in(org)})),
    _r("credits_admin", Op(G, Perm.MANAGE_BUDGETS)),
    _r("credit_policy_save", Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {"policy-signup_amount": "1"})),
    _r("credit_adjust", Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {
        "adjust-holder": f"user:{_member_of(org)}", "adjust-action": "topup", "adjust-amount": "1", "adjust-reason": unique("reason")})),
    _r("credit_codes_generate", Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {
        "codes-count": "1", "codes-amount": "1", "codes-expires_at": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")})),
    _r("credit_codes_export", Op(G, Perm.MANAGE_BUDGETS)),
    _r("api-credit-wallet", Op(G, Perm.VIEW_OWN_USAGE)),
    _r("api-credit-redeem", Op(P, Perm.VIEW_OWN_USAGE, lambda w, o, org: {"code": _code_in(org)})),
    _r("api-credit-policy", Op(G, Perm.MANAGE_BUDGETS), Op("PUT", Perm.MANAGE_BUDGETS, lambda w, o, org: {"signup_amount": "1"})),
    _r("api-credit-account-list", Op(G, Perm.MANAGE_BUDGETS), Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {
        "action": "topup", "user": _member_of(org), "amount": "1", "reason": unique("reason")})),
    _r("api-credit-entry-list", Op(G, Perm.MANAGE_BUDGETS), make=_credit_account),
    _r("api-credit-code-list", Op(G, Perm.MANAGE_BUDGETS), Op(P, Perm.MANAGE_BUDGETS, lambda w, o, org: {
        "count": 1, "amount": "1", "expires_at": (timezone.now() + timedelta(days=1)).isoformat()})),
]

ROUTES_BY_NAME = {route.name: route for route in ROUTES}

# Routes deliberately outside the table, each with the reason.
SKIPPED_PREFIXES = {
    "admin/": "Django admin: staff accounts only, its own permission system",
    "i18n/": "Django's set_language: no organization data (its CSRF is tested in test_web_security)",
    "v1/": "the Files and Batches API: virtual keys only, not dashboard sessions or API tokens; another organization's "
           "files and batches answer 404 (tests/batches/test_batches_sdk.py)",
}
SKIPPED_NAMES = {
    "api-schema": "the OpenAPI schema: public documentation, no organization data",
    "api-docs": "Swagger UI for the schema: public documentation",
    "login": "authentication page (throttling: test_login_throttle; CSRF: test_web_security)",
    "logout": "authentication page",
    "signup": "authentication page: creates a new user and organization",
    "signup_sent": "authentication page: says where the confirmation link went (tests/accounts/test_signup.py)",
    "verify_email": "capability link: the signed, expiring token is the authorization (tests/accounts/test_signup.py)",
    "password_reset": "authentication page", "password_reset_done": "authentication page",
    "password_reset_confirm": "authentication page", "password_reset_complete": "authentication page",
    "password_change": "the signed-in user's own password: no organization object",
    "password_change_done": "authentication page",
    "invitation_accept": "capability link: the emailed single-use token is the authorization (tests/accounts cover wrong user, "
                         "expired, used and revoked tokens)",
    "sso_login": "public login page with an organization's sign-in button (tests/sso/test_oidc_flow.py)",
    "sso_start": "starts a sign-in at the organization's identity provider (tests/sso)",
    **{f"{provider}_{step}": "allauth's sign-in endpoints: the state stashed in the session is the authorization (tests/sso)"
       for provider in ("openid_connect", "feishu", "dingtalk", "wecom") for step in ("login", "callback")},
    "api-invitation-accept": "capability: the token in the body is the authorization, for the signed-in invitee; "
                             "anonymous and virtual-key calls are checked in test_authz_routes",
}


def url_routes():
    """(route text, name, view callback) of every URL pattern, includes flattened."""

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name, pattern.callback

    return list(walk(get_resolver().url_patterns, ""))


def routes_to_check():
    """The routes the table must cover: every one but the skipped."""
    return [
        (text, name, callback) for text, name, callback in url_routes()
        if not any(text.startswith(prefix) for prefix in SKIPPED_PREFIXES) and name not in SKIPPED_NAMES
    ]


def declared_methods(route_text: str, callback) -> set[str]:
    """The methods a view answers: a DRF view's handlers, or a page's require_http_methods list (GET if none)."""
    view_class = getattr(callback, "cls", None)
    if view_class is not None:
        return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
    seen, func = set(), callback
    while func is not None and id(func) not in seen:
        seen.add(id(func))
        for cell in func.__closure__ or ():
            value = cell.cell_contents
            if isinstance(value, (list, tuple)) and value and all(isinstance(m, str) and m.isupper() for m in value):
                return set(value) - {"HEAD", "OPTIONS"}
        func = getattr(func, "__wrapped__", None)
    return {"GET"}


# --- An upstream that leaks: it echoes the credential it was sent in its error messages -----------------


class LeakyUpstream:
    """A loopback HTTP server (aiohttp, own thread) that repeats every request header and the body back in an
    error, as careless providers do ("Incorrect API key provided: sk-…"). The model name chooses the answer:

      leak-<status>   that HTTP status with an OpenAI error body quoting the request
      leak-stream     a 200 event stream whose second event is an error quoting the request
      anything else   a normal chat completion
    A path ending in /hook answers 500 quoting the request, its URL included (a webhook receiver that echoes).
    """

    def __init__(self):
        import threading

        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._thread = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _quote(self, request, body: bytes) -> str:
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return f"Incorrect request to {request.path_qs}. You sent {headers} with {body.decode(errors='replace')[:500]}"

    async def _handle(self, request):
        from aiohttp import web

        body = await request.read()
        with self._lock:
            self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        quoted = self._quote(request, body)
        if request.path.endswith("/hook"):
            return web.Response(status=500, text=quoted)
        try:
            model = str(json.loads(body or b"{}").get("model", ""))
        except ValueError:
            model = ""
        if model.startswith("leak-") and model[5:].isdigit():
            status = int(model[5:])
            return web.json_response({"error": {"message": quoted, "type": "invalid_request_error", "code": quoted[:200]}},
                                     status=status, headers={"X-Echo": quoted[:200].replace("\r", " ").replace("\n", " ")})
        if model == "leak-stream":
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: " + json.dumps({"error": {"message": quoted}}).encode() + b"\n\n")
            await response.write_eof()
            return response
        return web.json_response({
            "id": "chatcmpl-leaky", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        })

    def start(self) -> "LeakyUpstream":
        import asyncio
        import threading

        from aiohttp import web

        started = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            # No access log: this server's own log of the URLs it was sent is not Tollgate's to keep clean.
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="leaky-upstream", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
