"""What the response cache, sandbox keys and budget downgrades saved in a period (the overview's
"Savings" card), read from the ledger's rows that carry `would_have_cost`.

A partial index (UsageEvent.Meta: usage_org_savings_time) holds only those rows, so the query reads the
period's hits, sandbox runs and downgrades, never the rest of the ledger.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Q, Sum

from billing.models import UsageEvent

SAVING_ROWS = Q(cache_hit=True) | Q(sandbox=True) | ~Q(downgraded_from="")


@dataclass(frozen=True)
class Saving:
    requests: int
    amount: Decimal  # in the organization's currency


@dataclass(frozen=True)
class Savings:
    cache: Saving
    sandbox: Saving
    downgrades: Saving

    @property
    def total(self) -> Decimal:
        return self.cache.amount + self.sandbox.amount + self.downgrades.amount

    @property
    def any(self) -> bool:
        return bool(self.cache.requests or self.sandbox.requests or self.downgrades.requests)


def period_savings(*, organization, start: datetime, end: datetime, key_ids: list[int] | None = None) -> Savings:
    """Cache hits save what the original answer cost; sandbox runs what they would have cost; a downgrade
    the difference between the downgraded-from model's price and what was paid (unknown prices count 0)."""
    rows = UsageEvent.objects.filter(SAVING_ROWS, organization=organization, created_at__gte=start, created_at__lt=end)
    if key_ids is not None:
        rows = rows.filter(key_id__in=key_ids)
    totals = rows.aggregate(
        cache_n=Count("id", filter=Q(cache_hit=True)), cache_saved=Sum("would_have_cost", filter=Q(cache_hit=True)),
        sandbox_n=Count("id", filter=Q(sandbox=True)), sandbox_saved=Sum("would_have_cost", filter=Q(sandbox=True)),
        down_n=Count("id", filter=Q(cache_hit=False, sandbox=False) & ~Q(downgraded_from="")),
        down_saved=Sum(F("would_have_cost") - F("cost_display"), filter=Q(cache_hit=False, sandbox=False, would_have_cost__isnull=False, cost_display__isnull=False) & ~Q(downgraded_from="")),
    )
    return Savings(
        cache=Saving(totals["cache_n"], totals["cache_saved"] or Decimal(0)),
        sandbox=Saving(totals["sandbox_n"], totals["sandbox_saved"] or Decimal(0)),
        downgrades=Saving(totals["down_n"], max(totals["down_saved"] or Decimal(0), Decimal(0))),
    )
