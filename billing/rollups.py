"""Hourly and daily rollups, maintained incrementally as ledger batches commit.

Each new event adds to its (hour and day) × dimensions bucket with one upsert per bucket that
increments in SQL, so concurrent batches add up rather than overwrite. The ledger insert and the
rollup increment share a transaction, and only events that were actually new are added.
"""

from collections import defaultdict
from decimal import Decimal

from django.db.models import F

from billing.models import UsageEvent, UsageRollup

SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced", "latency_ms_sum")


def _dimensions(event: UsageEvent) -> tuple:
    return (event.organization_id, event.team_id or 0, event.key_id or 0, event.user_id or 0, event.model_name, event.deployment_id or 0)


def rollup_add(events: list[UsageEvent]) -> None:
    buckets: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for event in events:
        hour = event.created_at.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)  # UTC days; org-time-zone views aggregate hourly rows
        for grain, bucket in ((UsageRollup.Grain.HOUR, hour), (UsageRollup.Grain.DAY, day)):
            sums = buckets[(grain, bucket, *_dimensions(event))]
            sums["requests"] += 1
            sums["errors"] += 1 if event.status_code >= 400 else 0
            sums["prompt_tokens"] += event.prompt_tokens
            sums["cached_tokens"] += event.cached_tokens
            sums["completion_tokens"] += event.completion_tokens
            sums["cost"] += event.cost_display or Decimal(0)
            sums["unpriced"] += 1 if event.cost_display is None and event.status_code < 400 else 0
            sums["latency_ms_sum"] += event.latency_ms
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
