"""Credit reads the relay's key snapshot needs (keys.selectors): light on imports, one query each."""

from decimal import ROUND_FLOOR, Decimal

from django.db.models import Q

from billing.credit_models import CreditAccount, CreditEntry
from billing.exact_sums import ExactSum
from billing.models import UsageEvent
from wire.pricing import MICROS, to_micros


def credit_account_for_key(*, key) -> CreditAccount | None:
    """The account a key's requests draw from: the key's own, else its user's, else its team's."""
    scopes = Q(scope="key", key_id=key.pk)
    if key.user_id:
        scopes |= Q(scope="user", user_id=key.user_id)
    if key.team_id:
        scopes |= Q(scope="team", team_id=key.team_id)
    found = {a.scope: a for a in CreditAccount.objects.filter(scopes, organization_id=key.organization_id)}
    return found.get("key") or found.get("user") or found.get("team")


def credit_funded_micros(*, account_id: int) -> int:
    """What the relay may admit in total: everything the account was given or lost but usage, in
    micro-units, rounded down (a limit never exceeds the credit)."""
    funded = CreditEntry.objects.filter(account_id=account_id).exclude(kind=CreditEntry.Kind.USAGE).aggregate(total=ExactSum("amount"))["total"]
    return int(((funded or Decimal(0)) * MICROS).to_integral_value(rounding=ROUND_FLOOR))


def _undrawn(account_ids) -> dict[int, Decimal]:
    rows = (
        UsageEvent.objects.filter(credit_account_id__in=account_ids, credit_drawn=False, cost_display__isnull=False)
        .values("credit_account_id").annotate(total=ExactSum("cost_display"))
    )
    return {row["credit_account_id"]: row["total"] for row in rows}


def credit_balances(*, account_ids) -> dict[int, Decimal]:
    """Per account: the sum of its entries, less the usage recorded but not drawn yet. Two queries."""
    account_ids = list(account_ids)
    sums = dict(CreditEntry.objects.filter(account_id__in=account_ids).values("account_id").annotate(total=ExactSum("amount")).values_list("account_id", "total"))
    pending = _undrawn(account_ids)
    return {pk: (sums.get(pk) or Decimal(0)) - (pending.get(pk) or Decimal(0)) for pk in account_ids}


def credit_balance(*, account) -> Decimal:
    return credit_balances(account_ids=[account.pk])[account.pk]


def credit_spent_micros(*, account_id: int) -> int:
    """Everything the account's requests cost: drawn, and recorded but not drawn yet (rebuilding the
    relay's counter, and the reconciliation)."""
    drawn = CreditEntry.objects.filter(account_id=account_id, kind=CreditEntry.Kind.USAGE).aggregate(total=ExactSum("amount"))["total"] or Decimal(0)
    pending = _undrawn([account_id]).get(account_id) or Decimal(0)
    return to_micros(pending - drawn)
