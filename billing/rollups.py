"""Hourly and daily rollups, maintained incrementally as ledger batches commit.

Each new event adds to its (hour and day) × dimensions bucket with one upsert per bucket that
increments in SQL, so concurrent batches add up rather than overwrite. The ledger insert and the
rollup increment share a transaction, and only events that were actually new are added.
"""

from collections import defaultdict
from decimal import Decimal

from django.db.models import F

from billing.models import UsageRollup

SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced", "latency_ms_sum")


def _dimensions(row: dict) -> tuple:
    return (row["organization_id"], row["team_id"] or 0, row["key_id"] or 0, row["user_id"] or 0, row["model_name"], row["deployment_id"] or 0)


def rollup_add(rows: list[dict]) -> None:
    """Add ledger rows (column values by attname) to their hour and day buckets."""
    buckets: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for row in rows:
        hour = row["created_at"].replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)  # UTC days; org-time-zone views aggregate hourly rows
        failed = row["status_code"] >= 400
        for grain, bucket in ((UsageRollup.Grain.HOUR, hour), (UsageRollup.Grain.DAY, day)):
            sums = buckets[(grain, bucket, *_dimensions(row))]
            sums["requests"] += 1
            sums["errors"] += 1 if failed else 0
            sums["prompt_tokens"] += row["prompt_tokens"]
            sums["cached_tokens"] += row["cached_tokens"]
            sums["completion_tokens"] += row["completion_tokens"]
            sums["cost"] += row["cost_display"] or Decimal(0)
            sums["unpriced"] += 1 if row["cost_display"] is None and not failed else 0
            sums["latency_ms_sum"] += row["latency_ms"]
    for (grain, bucket, org_id, team_id, key_id, user_id, model_name, deployment_id), sums in buckets.items():
        lookup = dict(
            organization_id=org_id, grain=grain, bucket=bucket, team_id=team_id, key_id=key_id, user_id=user_id,
            model_name=model_name, deployment_id=deployment_id,
        )
        updated = UsageRollup.objects.filter(**lookup).update(**{name: F(name) + value for name, value in sums.items()})
        if not updated:
            _, created = UsageRollup.objects.get_or_create(**lookup, defaults=sums)
            if not created:  # lost a race with another batch creating the same bucket
                UsageRollup.objects.filter(**lookup).update(**{name: F(name) + value for name, value in sums.items()})
