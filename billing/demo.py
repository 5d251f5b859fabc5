"""The demo organization of `make run`, and a month of generated usage so every page has something to show.

Everything is labelled: the organization is "Demo", its models and keys say "demo", and every
generated ledger row's request id starts with "demo-". The objects are made through the services
(audited like any other), the usage goes into the ledger and its rollups through `usage_ingest`, the
same path as relayed requests, priced with the same price snapshots the relay uses. Re-running is
safe: objects are found by name, and each generated request has a fixed id (ingest skips known ids),
so a later run only adds the days (and hours of today) that have passed since.
"""

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Team, User
from accounts.services import organization_create, team_create
from accounts.tenancy import OrgContext
from billing import services as billing_services
from billing.ledger import usage_ingest
from billing.models import Budget, Price
from billing.selectors import exchange_rates_for, prices_for
from keys import services as key_services
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from wire.pricing import PriceSnapshot, price_at, rate_at

DEMO_EMAIL = "admin@tollgate.local"
DEMO_ORG = "Demo"
DEMO_CREDENTIAL = "Demo (local mock)"
DAYS = 30
REQUEST_PREFIX = "demo-"


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    variants: tuple[tuple[str, str, int], ...]  # (upstream model, variant name, weight)
    prices: dict  # upstream model -> (input, cached input, output) per 1M, USD
    fallback_models: tuple[str, ...] = ()


MODELS = (
    # The seeded global book prices tollgate-demo the same; the demo keeps its own row so it never depends on it.
    DemoModel("demo", "Demo: answers locally, not a real model.", (("tollgate-demo", "", 1),), {"tollgate-demo": ("1.00", "0.10", "2.00")}),
    DemoModel(
        "demo-large", "Demo: an A/B split between two variants of a larger model (generated usage).",
        (("demo-large-a", "A (current)", 80), ("demo-large-b", "B (candidate)", 20)),
        {"demo-large-a": ("2.50", "1.25", "10.00"), "demo-large-b": ("2.00", "0.50", "8.00")},
    ),
    DemoModel(
        "demo-fast", "Demo: a small fast model that falls back to demo when it fails (generated usage).",
        (("demo-fast", "", 1),), {"demo-fast": ("0.15", "0.075", "0.60")}, fallback_models=("demo",),
    ),
    DemoModel("demo-embed", "Demo: embeddings (generated usage).", (("demo-embed", "", 1),), {"demo-embed": ("0.02", None, "0")}),
    # /v1/rerank answered locally (deterministic scores: wire/adapters/mock.py), priced per token.
    DemoModel("demo-rerank", "Demo: rerank, answers locally (deterministic scores).", (("demo-rerank", "", 1),), {"demo-rerank": ("0.05", None, "0")}),
)
TEAMS = ("Platform", "Research", "Support")
# Key name -> (team, share of the traffic, the models it calls with their shares).
KEYS = {
    "Support bot (demo)": ("Support", 45, {"demo-fast": 70, "demo-large": 30}),
    "Research notebooks (demo)": ("Research", 20, {"demo-large": 60, "demo-embed": 25, "demo-rerank": 15}),
    "CI pipeline (demo)": ("Platform", 15, {"demo-fast": 60, "demo": 40}),
    "Demo key": (None, 20, {"demo": 60, "demo-large": 40}),
}
BUDGET_NAME = "Demo monthly budget"


@dataclass
class Demo:
    organization: Organization
    password: str | None = None  # set only on the run that created the owner
    secret: str | None = None  # the owner's key, only on the run that created it


def demo_create() -> Demo:
    """The demo owner, organization and key, once; later runs find them."""
    user = User.objects.filter(email=DEMO_EMAIL).first()
    if user is not None:
        org = Organization.objects.filter(name=DEMO_ORG, memberships__user=user).first()
        return Demo(organization=org or organization_create(name=DEMO_ORG, owner=user))
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_user(email=DEMO_EMAIL, password=password, name="Demo admin")
        org = organization_create(name=DEMO_ORG, owner=user)
        ctx = _owner_context(org)
        credential = key_services.credential_create(actor=ctx, name=DEMO_CREDENTIAL, provider="mock")
        model = key_services.model_create(actor=ctx, name="demo", description=MODELS[0].description)
        key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="tollgate-demo")
        _, secret = key_services.virtual_key_create(actor=ctx, name="Demo key", user=user)
    return Demo(organization=org, password=password, secret=secret)


def _owner_context(org: Organization) -> OrgContext:
    membership = Membership.objects.filter(organization=org).select_related("user").order_by("pk").first()
    return OrgContext(organization=org, role=membership.role, user=membership.user)


@transaction.atomic
def demo_furnish(org: Organization, *, now: datetime | None = None) -> None:
    """Teams, keys, models with an A/B split and a fallback, their prices and a budget; what exists is kept."""
    now = now or timezone.now()
    ctx = _owner_context(org)
    credential = ProviderCredential.objects.filter(organization=org, provider="mock").first() or key_services.credential_create(
        actor=ctx, name=DEMO_CREDENTIAL, provider="mock"
    )
    for name in TEAMS:
        if not Team.objects.filter(organization=org, name=name).exists():
            team_create(actor=ctx, name=name)
    for spec in MODELS:
        model = Model.objects.filter(organization=org, name=spec.name).first()
        if model is None:
            model = key_services.model_create(actor=ctx, name=spec.name, description=spec.description, fallback_models=list(spec.fallback_models))
        for upstream, variant, weight in spec.variants:
            if not Deployment.objects.filter(model=model, upstream_model=upstream).exists():
                key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model=upstream, name=variant, weight=weight)
        for upstream, (input_per_m, cached_per_m, output_per_m) in spec.prices.items():
            if not Price.objects.filter(organization=org, provider="mock", upstream_model=upstream).exists():
                billing_services.price_create(
                    actor=ctx, provider="mock", upstream_model=upstream, currency="USD", input_per_m=input_per_m,
                    cached_input_per_m=cached_per_m, output_per_m=output_per_m, effective_from=now - timedelta(days=DAYS + 5),
                    source="Demo price (not a real model)", history=True,
                )
    for name, (team_name, _share, _models) in KEYS.items():
        if not VirtualKey.objects.filter(organization=org, name=name).exists():
            team = Team.objects.get(organization=org, name=team_name) if team_name else None
            key_services.virtual_key_create(actor=ctx, name=name, team=team, user=None if team else ctx.user, metadata={"demo": True})
    if not Budget.objects.filter(organization=org, name=BUDGET_NAME).exists():
        billing_services.budget_create(actor=ctx, scope=Budget.Scope.ORGANIZATION, amount="100", hard=False, name=BUDGET_NAME)


def demo_usage_seed(org: Organization, *, now: datetime | None = None, days: int = DAYS) -> int:
    """A month of generated requests up to `now`, ingested into the ledger; returns how many were new."""
    now = now or timezone.now()
    keys = {key.name: key for key in VirtualKey.objects.filter(organization=org, name__in=list(KEYS))}
    snapshots = {spec.name: _demo_model(org, spec.name) for spec in MODELS}
    if len(keys) < len(KEYS) or None in snapshots.values():
        return 0  # not furnished (demo_furnish first)
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    inserted = 0
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        records = [r for r in _day(org, day, keys, snapshots, growth=1 + (days - back) / days) if r["created_at"] <= now.timestamp()]
        inserted += usage_ingest(records)
    return inserted


@dataclass(frozen=True)
class _Deployment:
    deployment_id: int
    provider: str
    upstream_model: str
    weight: int
    prices: tuple[PriceSnapshot, ...]  # newest first


@dataclass(frozen=True)
class _Model:
    name: str
    deployments: tuple[_Deployment, ...]
    fallback_models: tuple[str, ...]
    currency: str
    exchange_rates: tuple

    def exchange_rate(self, currency: str, at: float):
        return rate_at(self.exchange_rates, self.currency, currency, at)


def _demo_model(org: Organization, name: str) -> _Model | None:
    """A demo model with its deployments' price books: what the generator needs to price as the relay does."""
    model = Model.objects.filter(organization=org, name=name, is_active=True).first()
    if model is None:
        return None
    deployments = model.deployments.filter(is_active=True).select_related("credential").order_by("order", "id")
    return _Model(
        name=model.name,
        deployments=tuple(
            _Deployment(d.pk, d.credential.provider, d.upstream_model, d.weight,
                        prices_for(organization_id=org.pk, provider=d.credential.provider, upstream_model=d.upstream_model))
            for d in deployments
        ),
        fallback_models=tuple(model.fallback_models or ()), currency=org.currency,
        exchange_rates=exchange_rates_for(organization_id=org.pk),
    )


def _day(org, day: datetime, keys, snapshots, *, growth: float) -> list[dict]:
    """One day's requests, the same ones on every run (a generator seeded by the organization and the day)."""
    rng = random.Random(f"{org.pk}:{day:%Y-%m-%d}")
    weekend = day.weekday() >= 5
    count = int(rng.randint(60, 90) if weekend else rng.randint(180, 260) * growth)
    names, shares = list(KEYS), [share for _team, share, _models in KEYS.values()]
    records = []
    for index in range(count):
        # Office hours (UTC 07-19) carry most of the traffic; nights a trickle (CI, batch jobs).
        hour = rng.randint(7, 18) if rng.random() < 0.8 else rng.randint(0, 23)
        at = day + timedelta(hours=hour, seconds=rng.randint(0, 3599))
        key = keys[rng.choices(names, shares)[0]]
        model_shares = KEYS[key.name][2]
        model = snapshots[rng.choices(list(model_shares), list(model_shares.values()))[0]]
        records.append(_request(rng, f"{REQUEST_PREFIX}{org.pk}-{day:%Y%m%d}-{index:04d}", at, key, model, snapshots))
    return records


def _request(rng: random.Random, request_id: str, at: datetime, key: VirtualKey, model, snapshots) -> dict:
    endpoint = ENDPOINTS.get(model.name, "chat")  # as the relay records them (relay.pipeline.ENDPOINTS)
    record = {
        "request_id": request_id, "organization_id": key.organization_id, "team_id": key.team_id, "key_id": key.pk,
        "user_id": key.user_id, "model_name": model.name, "endpoint": endpoint, "created_at": at.timestamp(),
        "stream": endpoint == "chat" and rng.random() < 0.6, "status_code": 200, "error_type": "", "attempts": 1,
        "attempt_trail": [], "usage_source": "provider",
    }
    roll = rng.random()
    if roll < 0.015:  # refused before any upstream call: no deployment, no cost
        return {**record, "status_code": 429, "error_type": "rate_limit_exceeded", "latency_ms": rng.randint(1, 4), "stream": False}
    deployment = rng.choices(model.deployments, [d.weight for d in model.deployments])[0]
    failing = 0.02 if deployment.upstream_model == "demo-large-b" else 0.006
    if roll < 0.015 + failing:
        status, error, latency = rng.choice([(504, "upstream_timeout", 60_000), (502, "upstream_error", rng.randint(200, 900))])
        return {**record, **_served_by(deployment), "status_code": status, "error_type": error, "latency_ms": latency,
                "attempt_trail": [{"deployment": deployment.deployment_id, "status": status, "error": error, "ms": latency}]}
    failed = None
    if model.fallback_models and rng.random() < 0.04:  # the primary fails, the fallback model answers
        failed = {"deployment": deployment.deployment_id, "status": 503, "error": "upstream_error", "ms": rng.randint(150, 600)}
        deployment = snapshots[model.fallback_models[0]].deployments[0]
    record.update(_served_by(deployment))
    record.update(_usage(rng, deployment.upstream_model, record["stream"]))
    if failed:
        answered = {"deployment": deployment.deployment_id, "status": 200, "error": "", "ms": record["latency_ms"]}
        record.update(attempts=2, attempt_trail=[failed, answered], latency_ms=record["latency_ms"] + failed["ms"])
        if record["ttft_ms"] is not None:
            record["ttft_ms"] += failed["ms"]
    return _priced(record, deployment, model)


def _served_by(deployment) -> dict:
    return {"deployment_id": deployment.deployment_id, "provider": deployment.provider, "upstream_model": deployment.upstream_model}


# Per upstream model: (prompt tokens range, completion tokens range, first token ms range, ms per output token).
PROFILES = {
    "demo-large-a": ((800, 6000), (120, 900), (450, 1100), 22),
    "demo-large-b": ((800, 6000), (100, 800), (350, 900), 18),
    "demo-fast": ((150, 1500), (40, 400), (150, 400), 7),
    "tollgate-demo": ((20, 400), (10, 60), (200, 450), 30),
    "demo-embed": ((50, 600), (0, 0), (60, 160), 0),
    "demo-rerank": ((300, 4000), (0, 0), (40, 140), 0),
}
ENDPOINTS = {"demo-embed": "embeddings", "demo-rerank": "rerank"}  # model -> endpoint; the others are chat


def _usage(rng: random.Random, upstream: str, stream: bool) -> dict:
    (p_low, p_high), (c_low, c_high), (t_low, t_high), per_token = PROFILES[upstream]
    prompt = int(rng.triangular(p_low, p_high, p_low + (p_high - p_low) / 4))
    completion = rng.randint(c_low, c_high) if c_high else 0
    cached = int(prompt * rng.uniform(0.3, 0.8)) if upstream.startswith("demo-large") and rng.random() < 0.35 else 0
    first = rng.randint(t_low, t_high)
    latency = first + int(completion * per_token * rng.uniform(0.8, 1.25))
    return {"prompt_tokens": prompt, "cached_tokens": cached, "completion_tokens": completion, "latency_ms": latency,
            "ttft_ms": first if stream else None}


def _priced(record: dict, deployment, model) -> dict:
    """The cost as the relay computes it (relay/record.py): the price in force then, in the org's currency."""
    price = price_at(deployment.prices, record["created_at"])
    if price is None:
        return record
    cost = price.cost(prompt_tokens=record["prompt_tokens"], cached_tokens=record["cached_tokens"],
                      completion_tokens=record["completion_tokens"], at=record["created_at"])
    rate = model.exchange_rate(price.currency, record["created_at"])
    return {**record, "cost": str(cost), "currency": price.currency, "price_id": price.id,
            "exchange_rate": None if rate is None else str(rate), "cost_display": None if rate is None else str(cost * rate)}
