"""Credit balances: the ledger's writes (credit in, credit out, usage draws, expiry) and its reads.

Every change of a balance is a CreditEntry written under a lock on its account. Credit coming in is a
lot; credit going out (usage, deductions, expiry) is taken from the lots soonest-expiring first, and
what no lot covers is the account's debt, which the next credit pays first. A change of what an account
was funded with (everything but usage) bumps the configuration version, so every relay process
reloads the account's limit within its poll interval (relay/credits.py).
"""

from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.permissions import Perm, has_perm
from accounts.services import audit_record
from billing.alerts import alert_fire
from billing.credit_models import CreditAccount, CreditEntry, CreditPolicy
from billing.credit_selectors import credit_balance, credit_balances, credit_spent_micros  # noqa: F401  (read through here too)
from billing.models import UsageEvent
from keys.invalidation import config_changed

MAX_AMOUNT = Decimal("1e9")
Kind = CreditEntry.Kind


def check_amount(value, field: str = "amount") -> Decimal:
    """A positive amount of money with at most 6 decimals, as a Decimal; field errors otherwise."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise ApplicationError(_("Enter a number."), field=field) from exc
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise ApplicationError(_("Enter a positive amount."), field=field)
    if amount.as_tuple().exponent < -6:
        raise ApplicationError(_("Use at most 6 decimal places."), field=field)
    return amount


def require(actor, perm: Perm) -> None:
    if not has_perm(actor.role, perm):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)


# --- Accounts -------------------------------------------------------------------------------------


def credit_account_get(*, organization, user=None, team=None, key=None, create: bool = True) -> CreditAccount | None:
    """The account of one member, team or key (exactly one given), created on first use when `create`."""
    if sum(x is not None for x in (user, team, key)) != 1:
        raise ValueError("one of user, team or key")
    scope = "user" if user is not None else "team" if team is not None else "key"
    lookup = {"organization": organization, "scope": scope, scope: user or team or key}
    account = CreditAccount.objects.filter(**lookup).first()
    if account is None and create:
        try:
            with transaction.atomic():
                account = CreditAccount.objects.create(**lookup)
        except IntegrityError:  # created meanwhile by a concurrent request
            account = CreditAccount.objects.get(**lookup)
        transaction.on_commit(config_changed)  # its keys now draw from it
    return account


def _locked(account: CreditAccount) -> CreditAccount:
    return CreditAccount.objects.select_for_update().get(pk=account.pk)


# --- Movements ------------------------------------------------------------------------------------


def credit_in(*, account, kind: str, amount: Decimal, source: str = "", reason: str = "", actor=None, expires_at=None) -> CreditEntry | None:
    """Add credit as a lot, paying the account's debt first. With a `source` already applied in this
    organization, nothing happens and None is returned (a retried grant or redemption)."""
    with transaction.atomic():
        locked = _locked(account)
        if source and CreditEntry.objects.filter(organization_id=locked.organization_id, source=source).exists():
            return None
        pays = min(locked.debt, amount)
        try:
            with transaction.atomic():
                entry = CreditEntry.objects.create(
                    organization_id=locked.organization_id, account=locked, kind=kind, amount=amount, remaining=amount - pays,
                    expires_at=expires_at, source=source, reason=reason[:300], actor=actor if getattr(actor, "pk", None) else None,
                )
        except IntegrityError:  # the same source, committed meanwhile by a concurrent transaction
            return None
        if pays:
            locked.debt -= pays
            locked.save(update_fields=["debt"])
        transaction.on_commit(config_changed)
    return entry


def _take_from_lots(account: CreditAccount, amount: Decimal) -> None:
    """Spend `amount` from the (locked) account's lots, soonest-expiring first; the rest becomes debt."""
    # Lots that expire go first (soonest first), then lots that never expire, oldest first.
    lots = account.entries.filter(remaining__gt=0).order_by(F("expires_at").asc(nulls_last=True), "id")
    left = amount
    for lot in lots.select_for_update():
        if left <= 0:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        lot.save(update_fields=["remaining"])
        left -= take
    if left > 0:
        account.debt += left
        account.save(update_fields=["debt"])


def credit_out(*, account, kind: str, amount: Decimal, reason: str = "", actor=None, source: str = "", requests: int = 0) -> CreditEntry:
    with transaction.atomic():
        locked = _locked(account)
        entry = CreditEntry.objects.create(
            organization_id=locked.organization_id, account=locked, kind=kind, amount=-amount, source=source,
            reason=reason[:300], actor=actor if getattr(actor, "pk", None) else None, requests=requests,
        )
        _take_from_lots(locked, amount)
        if kind != Kind.USAGE:
            transaction.on_commit(config_changed)
    return entry


def credit_topup(*, actor, account: CreditAccount, amount, reason: str, ip=None) -> CreditEntry:
    """An admin adds credit to a balance; the reason is kept in the ledger and the audit log."""
    require(actor, Perm.MANAGE_BUDGETS)
    amount, reason = check_amount(amount), _check_reason(reason)
    with transaction.atomic():
        entry = credit_in(account=account, kind=Kind.TOPUP, amount=amount, reason=reason, actor=actor.user)
        audit_record(organization=account.organization, actor=actor.user, action="credit.topup", target=account,
                     data={"amount": str(amount), "reason": reason}, ip=ip)
    return entry


def credit_deduct(*, actor, account: CreditAccount, amount, reason: str, ip=None) -> CreditEntry:
    """An admin takes credit off a balance, never more than the balance holds."""
    require(actor, Perm.MANAGE_BUDGETS)
    amount, reason = check_amount(amount), _check_reason(reason)
    with transaction.atomic():
        locked = _locked(account)
        balance = credit_balance(account=locked)
        if amount > balance:
            raise ApplicationError(
                _("The balance is %(balance)s: a deduction cannot take more.") % {"balance": _plain(balance)}, field="amount",
            )
        entry = credit_out(account=locked, kind=Kind.DEDUCTION, amount=amount, reason=reason, actor=actor.user)
        audit_record(organization=account.organization, actor=actor.user, action="credit.deduct", target=account,
                     data={"amount": str(amount), "reason": reason}, ip=ip)
    return entry


def _check_reason(reason) -> str:
    reason = str(reason or "").strip()
    if not reason:
        raise ApplicationError(_("Say why (it is kept in the ledger and the audit log)."), field="reason")
    if len(reason) > 300:
        raise ApplicationError(_("Keep the reason under 300 characters."), field="reason")
    return reason


def _plain(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')) if amount == amount.quantize(Decimal('0.01')) else amount.normalize():f}"


# --- Usage draws and expiry (Celery) ---------------------------------------------------------------


def credit_usage_draw(*, batch: int = 5000) -> int:
    """Move the ledger's priced usage held against credit accounts into the credit ledger: one usage
    entry per account and run. Rows are claimed with FOR UPDATE SKIP LOCKED and marked drawn in the
    same transaction, so concurrent runs never draw a request twice. Returns the requests drawn."""
    drawn = 0
    while True:
        with transaction.atomic():
            rows = list(
                UsageEvent.objects.select_for_update(skip_locked=True)
                .filter(credit_account_id__isnull=False, credit_drawn=False)
                .values_list("pk", "credit_account_id", "cost_display")[:batch]
            )
            if not rows:
                return drawn
            per_account: dict[int, list[Decimal]] = {}
            for _pk, account_id, cost in rows:
                per_account.setdefault(account_id, []).append(cost or Decimal(0))
            UsageEvent.objects.filter(pk__in=[pk for pk, _a, _c in rows]).update(credit_drawn=True)
            for account in CreditAccount.objects.filter(pk__in=per_account):
                costs = per_account[account.pk]
                total = sum(costs, Decimal(0)).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
                credit_out(account=account, kind=Kind.USAGE, amount=total, requests=len(costs))
            transaction.on_commit(lambda ids=list(per_account): _low_balance_check(ids))
        drawn += len(rows)


def credit_expire(*, now: datetime | None = None) -> int:
    """Expire what is left of granted credit past its expiry: one expiry entry per lot. Usage is drawn
    first, so credit spent before it expired is not expired too. Returns the lots expired."""
    now = now or timezone.now()
    credit_usage_draw()
    expired = 0
    for lot_id in CreditEntry.objects.filter(remaining__gt=0, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            lot = CreditEntry.objects.select_for_update().select_related("account").filter(pk=lot_id, remaining__gt=0).first()
            if lot is None:
                continue
            left = lot.remaining
            CreditEntry.objects.create(
                organization_id=lot.organization_id, account=lot.account, kind=Kind.EXPIRY, amount=-left,
                source=f"expiry:{lot.pk}", reason=lot.get_kind_display(),
            )
            lot.remaining = Decimal(0)
            lot.save(update_fields=["remaining"])
            transaction.on_commit(config_changed)
            expired += 1
    return expired


def _low_balance_check(account_ids) -> int:
    """Alert once per account and funding (a new top-up re-arms it) when a balance falls below the
    organization's low-balance line, through the organization's alert channels."""
    fired = 0
    accounts = CreditAccount.objects.filter(pk__in=account_ids).select_related("organization", "user", "team", "key")
    for account in accounts:
        policy = CreditPolicy.objects.filter(organization_id=account.organization_id).first()
        if policy is None or policy.low_balance is None:
            continue
        balance = credit_balance(account=account)
        if balance >= policy.low_balance:
            continue
        funded_by = account.entries.filter(amount__gt=0).order_by("-id").values_list("pk", flat=True).first() or 0
        alert = alert_fire(
            organization=account.organization, kind="credit.low", dedupe_key=f"credit-low:{account.pk}:{funded_by}",
            payload={"account": str(account), "balance": f"{balance.normalize():f}", "threshold": f"{policy.low_balance.normalize():f}",
                     "currency": account.organization.currency},
        )
        fired += 1 if alert else 0
    return fired
