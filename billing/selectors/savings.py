"""What the response cache, sandbox keys and budget downgrades saved in a period (the overview's
"Savings" card), from the rollups like the rest of the overview (billing.rollups adds each ledger row's
saving to its buckets): the overview never reads the ledger."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.exact_sums import ExactSum
from billing.models import UsageRollup
from billing.selectors.ranges import rollup_range_q, rollups

COLUMNS = ("cache_hits", "cache_saved", "sandbox_requests", "sandbox_saved", "downgrades", "downgrade_saved")


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
    the same usage at the downgraded-from model's price less what was paid (an unknown price counts 0).
    The organization's from the daily-by-model grain, a member's (`key_ids`) from their keys' rows."""
    if key_ids is None:
        rows = rollups(organization=organization).filter(rollup_range_q(start, end, day_grain=UsageRollup.Grain.DAY_BY_MODEL))
    else:
        rows = rollups(organization=organization, key_ids=key_ids).filter(rollup_range_q(start, end))
    totals = rows.aggregate(**{f"total_{name}": ExactSum(name) for name in COLUMNS})

    def value(name, zero=0):
        return totals[f"total_{name}"] or zero

    return Savings(
        cache=Saving(value("cache_hits"), value("cache_saved", Decimal(0))),
        sandbox=Saving(value("sandbox_requests"), value("sandbox_saved", Decimal(0))),
        downgrades=Saving(value("downgrades"), value("downgrade_saved", Decimal(0))),
    )
