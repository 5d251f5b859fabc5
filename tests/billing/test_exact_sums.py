"""Money adds up exactly on every database. SQLite keeps money as binary floats; its SUM and `+` drifted
(a month of demo usage summed to 31.1331138500001 in the ledger and 31.13311385 in the rollups)."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from billing import selectors
from billing.exact_sums import ExactSum
from billing.ledger import usage_ingest
from billing.models import Budget, UsageEvent, UsageRollup
from tests.accounts.factories import OrganizationFactory
from tests.billing.factories import usage_record

# Requests of one shape cost the same: repeated values are where binary sums drift furthest.
COSTS = [Decimal("0.0123456789")] * 1500 + [Decimal("0.0038213850")] * 1500


def test_ledger_rollups_and_budget_spend_add_money_exactly(db):
    org = OrganizationFactory()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    usage_ingest([usage_record(organization=org, at=start + timedelta(minutes=n), cost_display=str(cost)) for n, cost in enumerate(COSTS)])
    exact = sum(COSTS, Decimal(0))

    ledger = UsageEvent.objects.filter(organization=org).aggregate(total=ExactSum("cost_display"))["total"]
    hourly = UsageRollup.objects.filter(organization=org, grain=UsageRollup.Grain.HOUR).aggregate(total=ExactSum("cost"))["total"]
    daily = UsageRollup.objects.filter(organization=org, grain=UsageRollup.Grain.DAY).aggregate(total=ExactSum("cost"))["total"]
    assert ledger == hourly == daily == exact

    budget = Budget.objects.create(organization=org, name="all time", scope=Budget.Scope.ORGANIZATION, amount=Decimal(100), period="total")
    spent, _, _ = selectors.budget_spent(budget=budget, at=timezone.now())
    assert spent == exact


def test_rollup_buckets_add_each_batch_exactly(db):
    org = OrganizationFactory()
    at = timezone.now()
    usage_ingest([usage_record(organization=org, at=at, cost_display="9999.9")])
    for _ in range(200):  # one ledger batch after another into the same hour: each adds to the bucket in SQL
        usage_ingest([usage_record(organization=org, at=at, cost_display="0.0000000007")])
    bucket = UsageRollup.objects.get(organization=org, grain=UsageRollup.Grain.HOUR)
    assert (bucket.requests, bucket.cost) == (201, Decimal("9999.90000014"))  # binary addition made it 9999.9000001401


def test_a_filtered_exact_sum_counts_only_its_rows(db):
    org = OrganizationFactory()
    now = timezone.now()
    usage_ingest([usage_record(organization=org, at=now, model_name=name, cost_display=cost)
                  for name, cost in (("a", "0.1000000001"), ("a", "0.2000000002"), ("b", "7"), ("a", None))])
    totals = UsageEvent.objects.filter(organization=org).aggregate(
        a=ExactSum("cost_display", filter=Q(model_name="a")), none=ExactSum("cost_display", filter=Q(model_name="c")), tokens=ExactSum("prompt_tokens"))
    assert totals == {"a": Decimal("0.3000000003"), "none": None, "tokens": 400}
