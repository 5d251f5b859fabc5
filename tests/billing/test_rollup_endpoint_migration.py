"""billing 0014: rollups gain an endpoint. Rows the ledger still fully explains are split by endpoint; a row
whose ledger rows were partly pruned keeps endpoint "" with its totals; every total stays exact; it reverses."""

from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.accounts.factories import OrganizationFactory

BEFORE = [("billing", "0015_rerank_search_units")]
AFTER = [("billing", "0016_rollup_endpoint")]
HOUR = datetime(2026, 11, 2, 9, tzinfo=dt_timezone.utc)
DAY = HOUR.replace(hour=0)
OLD_HOUR = datetime(2026, 10, 1, 7, tzinfo=dt_timezone.utc)


def _migrate(targets):
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _sums(Rollup, org, **filters):
    rows = Rollup.objects.filter(organization_id=org.pk, **filters)
    return sorted((r.grain, r.endpoint if hasattr(r, "endpoint") else None, r.model_name, r.requests, r.prompt_tokens, r.cost) for r in rows)


@pytest.mark.django_db(transaction=True)
def test_rollups_are_split_by_endpoint_where_the_ledger_is_complete():
    org = OrganizationFactory()
    try:
        apps = _migrate(BEFORE)
        Event, Rollup = apps.get_model("billing", "UsageEvent"), apps.get_model("billing", "UsageRollup")
        for index, (endpoint, prompt, cost) in enumerate([("chat", 10, "0.5"), ("chat", 20, "0.25"), ("rerank", 7, "0.125")]):
            Event.objects.create(request_id=f"m-{index}", organization_id=org.pk, key_id=5, model_name="m", endpoint=endpoint,
                                 status_code=200, prompt_tokens=prompt, latency_ms=3, cost_display=Decimal(cost), created_at=HOUR)
        common = {"organization_id": org.pk, "key_id": 5, "model_name": "m"}
        sums = {"requests": 3, "prompt_tokens": 37, "cost": Decimal("0.875"), "latency_ms_sum": 9}
        for grain, bucket in (("hour", HOUR), ("day", DAY)):
            Rollup.objects.create(grain=grain, bucket=bucket, **common, **sums)
        Rollup.objects.create(grain="dm", bucket=DAY, organization_id=org.pk, model_name="m", **sums)
        # A month ago: 4 requests rolled up, only 1 still in the ledger (retention pruned the rest).
        Event.objects.create(request_id="old", organization_id=org.pk, key_id=5, model_name="m", endpoint="chat", status_code=200,
                             prompt_tokens=1, created_at=OLD_HOUR)
        for grain, bucket in (("hour", OLD_HOUR), ("day", OLD_HOUR.replace(hour=0)), ("dm", OLD_HOUR.replace(hour=0))):
            Rollup.objects.create(grain=grain, bucket=bucket, **{**common, "key_id": 0 if grain == "dm" else 5}, requests=4, prompt_tokens=9)

        apps = _migrate(AFTER)
        Rollup = apps.get_model("billing", "UsageRollup")
        for grain in ("hour", "day", "dm"):
            assert _sums(Rollup, org, grain=grain, bucket__gte=DAY) == [
                (grain, "chat", "m", 2, 30, Decimal("0.75")), (grain, "rerank", "m", 1, 7, Decimal("0.125"))]
            assert _sums(Rollup, org, grain=grain, bucket__lt=DAY) == [(grain, "", "m", 4, 9, Decimal(0))]  # kept whole

        _migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT grain, SUM(requests), SUM(prompt_tokens), COUNT(*) FROM billing_usagerollup WHERE organization_id = %s "
                           "GROUP BY grain ORDER BY grain", [org.pk])
            assert [tuple(row) for row in cursor.fetchall()] == [("day", 7, 46, 2), ("dm", 7, 46, 2), ("hour", 7, 46, 2)]
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
