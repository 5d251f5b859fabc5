"""Reads for keys, credentials and models, including the immutable snapshots the relay caches.

The relay imports only this module from `keys` (STYLE.md): snapshots are plain frozen
dataclasses, built here in one query each and never touched by the ORM afterwards.
"""

from dataclasses import dataclass
from decimal import Decimal

import orjson
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.permissions import Perm
from billing.models import Budget, ExchangeRate, Price
from billing.pricing import PriceSnapshot, snapshot_from_row, to_micros
from keys import encryption
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from wire.presets import PRESETS
from wire.adapters.base import Target

@dataclass(frozen=True)
class BudgetSnapshot:
    id: int
    scope: str
    label: str
    period: str
    limit_micros: int  # amount in micro-units of the org currency
    hard: bool
    thresholds: tuple[int, ...]
    downgrade_model: str


@dataclass(frozen=True)
class KeySnapshot:
    id: int
    organization_id: int
    team_id: int | None
    user_id: int | None
    name: str
    allowed_models: frozenset[str]  # empty: every model
    expires_at: float | None  # epoch seconds
    rpm_limit: int | None
    tpm_limit: int | None
    currency: str
    time_zone: str
    budgets: tuple[BudgetSnapshot, ...] = ()
    sandbox: bool = False  # README "Sandbox keys"
    response_cache: bool = False  # README "Response cache", with the two below
    cache_any_temperature: bool = False
    cache_tool_calls: bool = False


@dataclass(frozen=True)
class DeploymentSnapshot:
    target: Target
    weight: int
    order: int
    name: str
    prices: tuple[PriceSnapshot, ...] = ()  # newest first
    context_window: int | None = None


@dataclass(frozen=True)
class RoutingPolicy:
    fallback_models: tuple[str, ...] = ()
    retry_statuses: frozenset[int] = frozenset()  # empty: the adapter's own judgement
    max_attempts: int = 3
    retries_per_deployment: int = 0
    deadline_seconds: int = 300
    stream_deadline_seconds: int = 600
    cooldown_failures: int = 3
    cooldown_window_seconds: int = 60
    cooldown_seconds: int = 30
    fallback_max_price_ratio: Decimal | None = None
    context_fallback: bool = True


@dataclass(frozen=True)
class ModelSnapshot:
    id: int
    organization_id: int
    name: str
    routing: str
    deployments: tuple[DeploymentSnapshot, ...]
    created: int
    currency: str = "USD"  # the org's display currency
    # (currency, value in the display currency, effective from as epoch seconds), newest first per currency:
    # the rate in force now and any scheduled after it, so a scheduled rate applies without a reload.
    exchange_rates: tuple[tuple[str, Decimal, float], ...] = ()
    policy: RoutingPolicy = RoutingPolicy()
    response_cache: bool = False  # README "Response cache", with the two below
    cache_any_temperature: bool = False
    cache_tool_calls: bool = False

    def exchange_rate(self, currency: str, at: float) -> Decimal | None:
        if currency == self.currency:
            return Decimal(1)
        for name, rate, effective_from in self.exchange_rates:
            if name == currency and effective_from <= at:
                return rate
        return None


def key_snapshot_by_hash(key_hash: str) -> KeySnapshot | None:
    """The active key with this hash (current secret, or a rotated one still in its grace period)."""
    now = timezone.now()
    key = (
        VirtualKey.objects.select_related("organization")
        .filter(Q(key_hash=key_hash) | Q(previous_key_hash=key_hash, previous_valid_until__gt=now), revoked_at=None)
        .first()
    )
    if key is None:
        return None
    expires = key.expires_at
    if key.key_hash != key_hash and key.previous_valid_until and (expires is None or key.previous_valid_until < expires):
        expires = key.previous_valid_until
    return KeySnapshot(
        id=key.pk,
        organization_id=key.organization_id,
        team_id=key.team_id,
        user_id=key.user_id,
        name=key.name,
        allowed_models=frozenset(key.allowed_models or ()),
        expires_at=expires.timestamp() if expires else None,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        currency=key.organization.currency,
        time_zone=key.organization.time_zone,
        budgets=budgets_in_force(key),
        sandbox=key.sandbox,
        response_cache=key.response_cache,
        cache_any_temperature=key.cache_any_temperature,
        cache_tool_calls=key.cache_tool_calls,
    )


def budgets_in_force(key: VirtualKey) -> tuple[BudgetSnapshot, ...]:
    """Every budget that a request with this key counts against: org, its team, itself, its user."""
    scopes = Q(scope=Budget.Scope.ORGANIZATION) | Q(scope=Budget.Scope.KEY, key_id=key.pk)
    if key.team_id:
        scopes |= Q(scope=Budget.Scope.TEAM, team_id=key.team_id)
    if key.user_id:
        scopes |= Q(scope=Budget.Scope.USER, user_id=key.user_id)
    budgets = Budget.objects.filter(scopes, organization_id=key.organization_id).order_by("id")
    return tuple(
        BudgetSnapshot(
            id=b.pk, scope=b.scope, label=str(b), period=b.period, limit_micros=to_micros(b.amount), hard=b.hard,
            thresholds=tuple(sorted(int(t) for t in b.thresholds)), downgrade_model=b.downgrade_model,
        )
        for b in budgets
    )


def target_for(deployment: Deployment) -> Target:
    credential = deployment.credential
    preset = PRESETS[credential.provider]
    return Target(
        deployment_id=deployment.pk,
        provider=credential.provider,
        wire=preset.wire,
        base_url=credential.base_url or preset.base_url,
        api_key=encryption.decrypt(credential.api_key_encrypted),
        upstream_model=deployment.upstream_model,
        api_version=credential.api_version,
        extra_headers=credential_extra_headers(credential),
        connect_timeout=credential.connect_timeout,
        read_timeout=credential.read_timeout,
        stream_usage=preset.stream_usage,
    )


def credential_extra_headers(credential: ProviderCredential) -> dict[str, str]:
    raw = encryption.decrypt(credential.extra_headers_encrypted)
    return orjson.loads(raw) if raw else {}


def prices_for(*, organization_id: int, provider: str, upstream_model: str) -> tuple[PriceSnapshot, ...]:
    """The org's own entries (newest first), then the global book's: `price_at` takes the first in
    force, so the org's book wins from its first effective date and the global one covers before."""
    rows = Price.objects.filter(provider=provider, upstream_model=upstream_model)
    own = rows.filter(organization_id=organization_id).order_by("-effective_from")
    seeded = rows.filter(organization=None).order_by("-effective_from")
    return tuple(snapshot_from_row(row) for row in [*own, *seeded])


def exchange_rates_for(*, organization_id: int) -> tuple[tuple[str, Decimal, float], ...]:
    """Per currency, the rates scheduled after now and the one in force now (older ones can no longer apply)."""
    rates: list[tuple[str, Decimal, float]] = []
    settled: set[str] = set()
    now = timezone.now()
    for row in ExchangeRate.objects.filter(organization_id=organization_id).order_by("currency", "-effective_from", "-id"):
        if row.currency in settled:
            continue
        rates.append((row.currency, row.rate, row.effective_from.timestamp()))
        if row.effective_from <= now:
            settled.add(row.currency)
    return tuple(rates)


def model_snapshot(*, organization_id: int, name: str) -> ModelSnapshot | None:
    deployments = Deployment.objects.filter(is_active=True).select_related("credential").order_by("order", "id")
    model = (
        Model.objects.filter(organization_id=organization_id, name=name, is_active=True)
        .select_related("organization")
        .prefetch_related(Prefetch("deployments", queryset=deployments))
        .first()
    )
    if model is None:
        return None
    snapshots = []
    for d in model.deployments.all():
        prices = prices_for(organization_id=organization_id, provider=d.credential.provider, upstream_model=d.upstream_model)
        snapshots.append(DeploymentSnapshot(target_for(d), d.weight, d.order, str(d), prices, d.context_window))
    return ModelSnapshot(
        id=model.pk,
        organization_id=organization_id,
        name=model.name,
        routing=model.routing,
        deployments=tuple(snapshots),
        created=int(model.created_at.timestamp()),
        currency=model.organization.currency,
        exchange_rates=exchange_rates_for(organization_id=organization_id),
        policy=RoutingPolicy(
            fallback_models=tuple(model.fallback_models or ()), retry_statuses=frozenset(model.retry_statuses or ()),
            max_attempts=model.max_attempts, retries_per_deployment=model.retries_per_deployment,
            deadline_seconds=model.deadline_seconds, stream_deadline_seconds=model.stream_deadline_seconds,
            cooldown_failures=model.cooldown_failures,
            cooldown_window_seconds=model.cooldown_window_seconds, cooldown_seconds=model.cooldown_seconds,
            fallback_max_price_ratio=model.fallback_max_price_ratio, context_fallback=model.context_fallback,
        ),
        response_cache=model.response_cache,
        cache_any_temperature=model.cache_any_temperature,
        cache_tool_calls=model.cache_tool_calls,
    )


def model_names(*, organization_id: int) -> list[tuple[str, int]]:
    """(name, created) of the organization's active models, for GET /v1/models."""
    rows = Model.objects.filter(organization_id=organization_id, is_active=True).values_list("name", "created_at")
    return [(name, int(created.timestamp())) for name, created in rows]


def virtual_key_list(*, organization, user=None, only_own: bool = False) -> QuerySet[VirtualKey]:
    keys = VirtualKey.objects.filter(organization=organization).select_related("team", "user")
    return keys.filter(user=user) if only_own else keys


def virtual_key_visible_list(
    *, actor, team_id: int | None = None, user_id: int | None = None, revoked: bool | None = None
) -> QuerySet[VirtualKey]:
    """The keys `actor` (an OrgContext) may see: all of the organization's with manage_keys, else only their own."""
    if actor.can(Perm.MANAGE_KEYS):
        keys = virtual_key_list(organization=actor.organization)
    elif actor.user is not None and actor.can(Perm.MANAGE_OWN_KEYS):
        keys = virtual_key_list(organization=actor.organization, user=actor.user, only_own=True)
    else:
        # No person behind the caller (a token whose creator left): "own" would match the unowned keys.
        return VirtualKey.objects.none()
    if team_id is not None:
        keys = keys.filter(team_id=team_id)
    if user_id is not None:
        keys = keys.filter(user_id=user_id)
    if revoked is not None:
        keys = keys.filter(revoked_at__isnull=not revoked)
    return keys


def credential_list(*, organization) -> QuerySet[ProviderCredential]:
    return ProviderCredential.objects.filter(organization=organization)


def model_list(*, organization) -> QuerySet[Model]:
    deployments = Deployment.objects.select_related("credential").order_by("order", "id")
    return Model.objects.filter(organization=organization).prefetch_related(Prefetch("deployments", queryset=deployments))
