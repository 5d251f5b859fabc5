"""Reads for batch runs: batches with their files (names and ids, never the content: a file may hold
100 MB), and what a sandbox batch would have cost according to the ledger."""

from decimal import Decimal

from django.db.models import QuerySet

from batches.models import Batch, BatchFile
from billing.exact_sums import ExactSum
from billing.models import UsageEvent
from billing.selectors import budget_spent_micros
from wire.pricing import MICROS

FILES = ("input_file", "output_file", "error_file")


def batches_with_files(queryset: QuerySet[Batch]) -> QuerySet[Batch]:
    return queryset.select_related(*FILES).defer(*(f"{name}__content" for name in FILES))


def files_listed(queryset: QuerySet[BatchFile]) -> QuerySet[BatchFile]:
    return queryset.filter(deleted_at=None).defer("content")


def batch_would_have_cost(*, batch: Batch) -> Decimal | None:
    """What the batch's sandbox lines would have cost (their ledger rows' `would_have_cost`, in the
    organization's currency); None when no line ran in the sandbox."""
    rows = UsageEvent.objects.filter(organization_id=batch.organization_id, batch_id=batch.public_id, sandbox=True)
    if not rows.exists():
        return None
    return rows.aggregate(total=ExactSum("would_have_cost"))["total"] or Decimal(0)


def budget_left(budget, at: float) -> Decimal:
    """What a budget in force (a relay.snapshots budget) leaves of its period holding `at`, never below 0."""
    return Decimal(max(budget.limit_micros - budget_spent_micros(budget_id=budget.id, at=at), 0)) / MICROS
