"""Writes for prices, exchange rates and budgets; budget evaluation; ledger retention."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.models import Organization, Team, User
from accounts.permissions import Perm, has_perm
from accounts.services import audit_record
from accounts.tenancy import OrgContext
from billing.models import Budget, ExchangeRate, Price, UsageEvent, default_thresholds
from billing.selectors import budget_spent
from keys.invalidation import config_changed
from keys.models import VirtualKey

log = logging.getLogger(__name__)

# A price or rate may start a little in the past (clock skew, a form filled in slowly), never earlier.
BACKDATE_SLACK = timedelta(minutes=5)


def _require(actor: OrgContext, perm: Perm) -> None:
    if not has_perm(actor.role, perm):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)


def _money(value, field: str, *, allow_none: bool = False, positive: bool = False) -> Decimal | None:
    if value in (None, "") and allow_none:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise ApplicationError(_("Enter a number."), field=field) from exc
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) or amount > Decimal("1e9"):
        raise ApplicationError(_("Enter a positive amount."), field=field)
    return amount


def _check_start(value: datetime | None, field: str = "effective_from") -> datetime:
    """When a new price or rate takes effect: now by default, later if scheduled, never back in the past
    (recorded usage keeps the price and rate it was charged at)."""
    now = timezone.now()
    if value is None:
        return now
    if value < now - BACKDATE_SLACK:
        raise ApplicationError(_("It cannot start in the past: recorded usage keeps the price and rate it was charged at."), field=field)
    return value


def _check_tiers(tiers) -> list:
    if not tiers:
        return []
    if not isinstance(tiers, list):
        raise ApplicationError(_("Tiers must be a list."), field="tiers")
    clean = []
    for tier in tiers:
        if not isinstance(tier, dict) or not isinstance(tier.get("above_prompt_tokens"), int) or tier["above_prompt_tokens"] < 0:
            raise ApplicationError(_("Each tier needs above_prompt_tokens, input and output."), field="tiers")
        clean.append({
            "above_prompt_tokens": tier["above_prompt_tokens"],
            "input": str(_money(tier.get("input"), "tiers")),
            "cached_input": str(_money(tier.get("cached_input"), "tiers", allow_none=True)) if tier.get("cached_input") not in (None, "") else None,
            "output": str(_money(tier.get("output"), "tiers")),
        })
        if tier.get("cache_write") not in (None, ""):  # only where a tier has its own (else: the input price)
            clean[-1]["cache_write"] = str(_money(tier["cache_write"], "tiers"))
    return sorted(clean, key=lambda t: t["above_prompt_tokens"])


def _check_windows(windows) -> list:
    if not windows:
        return []
    clean = []
    for window in windows if isinstance(windows, list) else [None]:
        try:
            days = sorted({int(d) for d in window["days"]})
            start, end = str(window["start"]), str(window["end"])
            for text in (start, end):
                hours, minutes = text.split(":")
                assert 0 <= int(hours) <= 24 and 0 <= int(minutes) < 60
            assert all(0 <= d <= 6 for d in days) and start < end
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise ApplicationError(_("Each window needs days (0=Monday..6), start and end as HH:MM, and a multiplier."), field="windows") from exc
        clean.append({"days": days, "start": start, "end": end, "multiplier": str(_money(window.get("multiplier"), "windows", positive=True))})
    return clean


@transaction.atomic
def price_create(
    *, actor: OrgContext | None, provider: str, upstream_model: str, currency: str, input_per_m, output_per_m,
    cached_input_per_m=None, tiers=None, windows=None, time_zone: str = "UTC", effective_from: datetime | None = None,
    source: str = "", ip=None, cache_write_per_m=None, history: bool = False, per_search_unit=None,
) -> Price:
    """A new price book entry for the org (or the global book when actor is None, for seeding).

    Prices are never rewritten: a change is a new entry, so past usage keeps its recorded cost. Only a
    seed that generates history along with its prices (the demo, `history=True`) may start one in the past.
    """
    if actor is not None:
        _require(actor, Perm.MANAGE_PROVIDERS)
        if not history:
            effective_from = _check_start(effective_from)
    currency = (currency or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ApplicationError(_("Use a three-letter currency code."), field="currency")
    if not upstream_model or not provider:
        raise ApplicationError(_("Name the provider and the model."), field="upstream_model")
    price = Price(
        organization=actor.organization if actor else None, provider=provider, upstream_model=upstream_model.strip(),
        currency=currency, input_per_m=_money(input_per_m, "input_per_m"), output_per_m=_money(output_per_m, "output_per_m"),
        cached_input_per_m=_money(cached_input_per_m, "cached_input_per_m", allow_none=True), tiers=_check_tiers(tiers),
        cache_write_per_m=_money(cache_write_per_m, "cache_write_per_m", allow_none=True),
        per_search_unit=_money(per_search_unit, "per_search_unit", allow_none=True),
        windows=_check_windows(windows), time_zone=time_zone, effective_from=effective_from or timezone.now(), source=source,
    )
    price.full_clean(exclude=["organization"])
    price.save()
    if actor is not None:
        audit_record(organization=actor.organization, actor=actor.user, action="price.create", target=price, ip=ip)
    transaction.on_commit(config_changed)
    return price


@transaction.atomic
def exchange_rate_set(*, actor: OrgContext, currency: str, rate, effective_from: datetime | None = None, ip=None) -> ExchangeRate:
    """A new rate for a currency, from now or a later moment. Like prices, rates are never rewritten: a change
    is a new row, and usage already recorded keeps the rate it was converted at."""
    _require(actor, Perm.MANAGE_ORG)
    currency = (currency or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ApplicationError(_("Use a three-letter currency code."), field="currency")
    if currency == actor.organization.currency:
        raise ApplicationError(_("This is the organization's own currency."), field="currency")
    value = _money(rate, "rate", positive=True)
    start = _check_start(effective_from)
    row = ExchangeRate.objects.create(organization=actor.organization, currency=currency, rate=value, effective_from=start)
    audit_record(organization=actor.organization, actor=actor.user, action="exchange_rate.set", target=row,
                 data={"currency": currency, "rate": str(value), "effective_from": start.isoformat()}, ip=ip)
    transaction.on_commit(config_changed)
    return row


def _scope_object(actor: OrgContext, scope: str, team, key, user):
    org = actor.organization
    if scope == Budget.Scope.TEAM:
        if not isinstance(team, Team) or team.organization_id != org.pk:
            raise ApplicationError(_("Choose a team of this organization."), field="team")
        return {"team": team}
    if scope == Budget.Scope.KEY:
        if not isinstance(key, VirtualKey) or key.organization_id != org.pk:
            raise ApplicationError(_("Choose a key of this organization."), field="key")
        return {"key": key}
    if scope == Budget.Scope.USER:
        if not isinstance(user, User) or not user.memberships.filter(organization=org).exists():
            raise ApplicationError(_("Choose a member of this organization."), field="user")
        return {"user": user}
    if scope != Budget.Scope.ORGANIZATION:
        raise ApplicationError(_("Unknown scope."), field="scope", code="invalid_choice")
    return {}


def _check_thresholds(thresholds) -> list[int]:
    if thresholds in (None, ""):
        return default_thresholds()
    if not isinstance(thresholds, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 1000 for t in thresholds):
        raise ApplicationError(_("Thresholds are whole percentages between 1 and 1000."), field="thresholds")
    return sorted(set(thresholds))


@transaction.atomic
def budget_create(
    *, actor: OrgContext, scope: str, amount, period: str = Budget.Period.MONTH, hard: bool = True, name: str = "",
    team=None, key=None, user=None, thresholds=None, downgrade_model: str = "", ip=None,
) -> Budget:
    _require(actor, Perm.MANAGE_BUDGETS)
    if period not in Budget.Period.values:
        raise ApplicationError(_("Unknown period."), field="period", code="invalid_choice")
    budget = Budget.objects.create(
        organization=actor.organization, name=(name or "").strip(), scope=scope, period=period,
        amount=_money(amount, "amount", positive=True), hard=bool(hard), thresholds=_check_thresholds(thresholds),
        downgrade_model=(downgrade_model or "").strip(), **_scope_object(actor, scope, team, key, user),
    )
    audit_record(organization=actor.organization, actor=actor.user, action="budget.create", target=budget,
                 data={"scope": scope, "amount": str(budget.amount), "period": period, "hard": budget.hard}, ip=ip)
    transaction.on_commit(config_changed)
    return budget


@transaction.atomic
def budget_update(*, actor: OrgContext, budget: Budget, ip=None, **changes) -> Budget:
    _require(actor, Perm.MANAGE_BUDGETS)
    if "amount" in changes:
        budget.amount = _money(changes["amount"], "amount", positive=True)
    if "thresholds" in changes:
        budget.thresholds = _check_thresholds(changes["thresholds"])
    if "period" in changes:
        if changes["period"] not in Budget.Period.values:
            raise ApplicationError(_("Unknown period."), field="period", code="invalid_choice")
        budget.period = changes["period"]
    for field in ("name", "hard", "downgrade_model"):
        if field in changes and changes[field] is not None:
            setattr(budget, field, changes[field])
    budget.save()
    audit_record(organization=budget.organization, actor=actor.user, action="budget.update", target=budget, data={"fields": sorted(changes)}, ip=ip)
    transaction.on_commit(config_changed)
    return budget


@transaction.atomic
def key_budget_set(*, actor: OrgContext, key: VirtualKey, amount, period: str = Budget.Period.MONTH, hard: bool = True, ip=None) -> Budget | None:
    """Give a key its own budget, change it, or (amount None) remove it: what the key form's budget fields do.

    A key's own budget is its first budget of scope key (the API may have made more; the others are left alone).
    """
    _require(actor, Perm.MANAGE_BUDGETS)
    if key.organization_id != actor.organization.pk:
        raise ApplicationError(_("Choose a key of this organization."), field="key")
    budget = Budget.objects.filter(organization=actor.organization, scope=Budget.Scope.KEY, key=key).order_by("id").first()
    if amount in (None, ""):
        if budget is not None:
            budget_delete(actor=actor, budget=budget, ip=ip)
        return None
    if budget is None:
        return budget_create(actor=actor, scope=Budget.Scope.KEY, key=key, amount=amount, period=period, hard=hard, ip=ip)
    if (budget.amount, budget.period, budget.hard) == (_money(amount, "amount", positive=True), period, bool(hard)):
        return budget  # nothing changed: no audit entry, no snapshot reload
    return budget_update(actor=actor, budget=budget, amount=amount, period=period, hard=bool(hard), ip=ip)


@transaction.atomic
def budget_delete(*, actor: OrgContext, budget: Budget, ip=None) -> None:
    _require(actor, Perm.MANAGE_BUDGETS)
    audit_record(organization=budget.organization, actor=actor.user, action="budget.delete", target=budget, ip=ip)
    budget.delete()
    transaction.on_commit(config_changed)


def budget_evaluate(*, budget_id: int, now: datetime | None = None) -> list:
    """Fire each crossed threshold once per period, and a forecast alert when the pace overruns."""
    from billing.alerts import alert_fire

    budget = Budget.objects.select_related("organization", "team", "key", "user").filter(pk=budget_id).first()
    if budget is None:
        return []
    now = now or timezone.now()
    spent, start, end = budget_spent(budget=budget, at=now)
    percent = spent * 100 / budget.amount if budget.amount else Decimal(0)
    fired = []
    base = {
        "budget_id": budget.pk, "budget": str(budget), "scope": budget.scope, "period": budget.period,
        "period_start": start.isoformat(), "amount": str(budget.amount), "spent": str(spent.quantize(Decimal("0.000001"))),
        "currency": budget.organization.currency, "percent": str(percent.quantize(Decimal("0.1"))), "hard": budget.hard,
    }
    for threshold in budget.thresholds:  # [] turns threshold alerts off
        if percent >= threshold:
            alert = alert_fire(
                organization=budget.organization, kind="budget.threshold", budget=budget,
                dedupe_key=f"budget:{budget.pk}:{start:%Y%m%dT%H%M}:{threshold}", payload={**base, "threshold": threshold},
            )
            fired += [alert] if alert else []
    if end is not None and Decimal(0) < spent < budget.amount:
        elapsed = Decimal((now - start).total_seconds())
        if elapsed > 3600:  # too early in the period, the pace means nothing yet
            rate = spent / elapsed  # per second
            runs_out = start + timedelta(seconds=float(budget.amount / rate))
            if runs_out < end:
                alert = alert_fire(
                    organization=budget.organization, kind="budget.forecast", budget=budget,
                    dedupe_key=f"forecast:{budget.pk}:{start:%Y%m%dT%H%M}", payload={**base, "runs_out_at": runs_out.isoformat()},
                )
                fired += [alert] if alert else []
    return fired


def budgets_evaluate_all() -> int:
    count = 0
    for budget_id in Budget.objects.values_list("pk", flat=True):
        budget_evaluate(budget_id=budget_id)
        count += 1
    return count


def unpriced_usage_alert(*, since: datetime | None = None) -> int:
    """Alert once a day per (org, provider, model) that served requests with no price, and per (org,
    currency) priced in a currency without an exchange rate to the org's; and per (org, provider, model)
    whose cache writes were charged at the input price for want of a cache write price."""
    from billing.alerts import alert_fire

    since = since or timezone.now() - timedelta(hours=1)
    rows = (
        UsageEvent.objects.filter(created_at__gte=since, cost__isnull=True, status_code__lt=400)
        .exclude(prompt_tokens=0, completion_tokens=0)
        .values_list("organization_id", "provider", "upstream_model")
        .distinct()
    )
    day = timezone.now().strftime("%Y%m%d")
    fired = 0
    for org_id, provider, model in rows:
        alert = alert_fire(
            organization=Organization.objects.get(pk=org_id), kind="price.missing",
            dedupe_key=f"price-missing:{org_id}:{provider}:{model}:{day}"[:200],
            payload={"provider": provider, "upstream_model": model, "message": "Requests were served without a price: their cost is unknown."},
        )
        fired += 1 if alert else 0
    # Priced, but in a currency the organization has no exchange rate for: its cost is missing from
    # every total and budget in the org's currency just the same.
    rows = (
        UsageEvent.objects.filter(created_at__gte=since, cost__isnull=False, cost_display__isnull=True, status_code__lt=400)
        .values_list("organization_id", "currency")
        .distinct()
    )
    for org_id, currency in rows:
        organization = Organization.objects.get(pk=org_id)
        alert = alert_fire(
            organization=organization, kind="rate.missing", dedupe_key=f"rate-missing:{org_id}:{currency}:{day}",
            payload={"currency": currency, "org_currency": organization.currency,
                     "message": f"Requests were priced in {currency} with no exchange rate to {organization.currency}: their cost is unknown."},
        )
        fired += 1 if alert else 0
    # Cache writes priced at the input price because the price has no cache write price: charged too little.
    rows = (
        UsageEvent.objects.filter(
            created_at__gte=since, cache_write_tokens__gt=0,
            price_id__in=Price.objects.filter(cache_write_per_m__isnull=True).values("pk"),
        )
        .values_list("organization_id", "provider", "upstream_model")
        .distinct()
    )
    for org_id, provider, model in rows:
        alert = alert_fire(
            organization=Organization.objects.get(pk=org_id), kind="price.cache_write_missing",
            dedupe_key=f"cache-write-missing:{org_id}:{provider}:{model}:{day}"[:200],
            payload={"provider": provider, "upstream_model": model,
                     "message": "Cache writes were charged at the input price: the price has no cache write price."},
        )
        fired += 1 if alert else 0
    return fired


def usage_retention(*, days: int, batch: int = 10_000) -> int:
    """Delete raw usage events older than `days`, in batches; rollups stay."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(UsageEvent.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += UsageEvent.objects.filter(pk__in=ids).delete()[0]

