"""The relay's read model: immutable snapshots of keys, budgets, models, their deployments and prices.

Built here in a few queries each (relay.cache runs them off the event loop and keeps the results),
plain frozen dataclasses the hot path reads without the ORM.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, Q
from django.utils import timezone

from billing.credit_selectors import credit_account_for_key, credit_funded_micros
from billing.models import Budget
from billing.selectors import exchange_rates_for, prices_for
from keys.models import Deployment, Model, VirtualKey
from keys.selectors import active_key_by_hash, target_for
from wire.adapters.base import Target
from wire.pricing import PriceSnapshot, rate_at, to_micros


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
class CreditSnapshot:
    """The credit balance a key's requests draw from (billing.credit_models.CreditAccount)."""

    id: int
    scope: str  # "key", "user" or "team"
    funded_micros: int  # everything credited minus deducted and expired: the counter's limit


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
    credit: CreditSnapshot | None = None  # None: no balance applies, only budgets
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
        return rate_at(self.exchange_rates, self.currency, currency, at)


def key_snapshot_by_hash(key_hash: str) -> KeySnapshot | None:
    """The active key with this hash (current secret, or a rotated one still in its grace period)."""
    now = timezone.now()
    key = active_key_by_hash(key_hash, now=now)
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
        credit=credit_in_force(key),
        sandbox=key.sandbox,
        response_cache=key.response_cache,
        cache_any_temperature=key.cache_any_temperature,
        cache_tool_calls=key.cache_tool_calls,
    )


def credit_in_force(key: VirtualKey) -> CreditSnapshot | None:
    account = credit_account_for_key(key=key)
    if account is None:
        return None
    return CreditSnapshot(id=account.pk, scope=account.scope, funded_micros=credit_funded_micros(account_id=account.pk))


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
