"""Hourly and daily rollups, maintained incrementally as ledger batches commit.

Each batch's new events are summed per (hour and day) × dimensions bucket (the endpoint among them) in Python, then written
with multi-row upserts that increment in SQL (INSERT … ON CONFLICT DO UPDATE SET n = n + new), so
concurrent batches add up rather than overwrite. The ledger insert and the rollup increment share a
transaction, and only events that were actually new are added.
"""

from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField

from billing.exact_sums import add_sql
from billing.models import UsageRollup

SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced", "latency_ms_sum",
        "cache_hits", "cache_saved", "sandbox_requests", "sandbox_saved", "downgrades", "downgrade_saved")
_TEN_PLACES = Decimal("1e-10")  # the rollups' decimal places
KEYS = ("organization_id", "grain", "bucket", "team_id", "key_id", "user_id", "model_name", "deployment_id", "endpoint")
_HOUR, _DAY = UsageRollup.Grain.HOUR.value, UsageRollup.Grain.DAY.value
_DAY_BY_MODEL, _DAY_BY_KEY = UsageRollup.Grain.DAY_BY_MODEL.value, UsageRollup.Grain.DAY_BY_KEY.value
CHUNK = 500  # buckets per statement: 8,000 parameters, within SQLite's limit of 32,766


def rollup_add(rows: list[dict]) -> None:
    """Add new ledger rows (column values by attname, created_at an aware UTC datetime, cost_display a
    Decimal rounded as the ledger stores it, or None) to their hour and day buckets (all four grains)."""
    if not rows:
        return
    # Sum per hour first (one dict lookup per row), then fold the hours into their days.
    hours: dict[tuple, list] = defaultdict(_zero)
    for row in rows:
        failed = row["status_code"] >= 400
        cost = row["cost_display"]
        sums = hours[(
            row["created_at"].replace(minute=0, second=0, microsecond=0), row["organization_id"], row["team_id"] or 0,
            row["key_id"] or 0, row["user_id"] or 0, row["model_name"], row["deployment_id"] or 0, row["endpoint"],
        )]
        sums[0] += 1
        sums[1] += failed
        sums[2] += row["prompt_tokens"]
        sums[3] += row["cached_tokens"]
        sums[4] += row["completion_tokens"]
        if cost is not None:
            sums[5] += cost
        elif not failed:
            sums[6] += 1  # unpriced success: counted, never as zero cost
        sums[7] += row["latency_ms"]
        if row["cache_hit"] or row["sandbox"] or row["downgraded_from"]:
            _add_saving(sums, row)
    days, by_model, by_key = defaultdict(_zero), defaultdict(_zero), defaultdict(_zero)
    for (hour, org_id, team_id, key_id, user_id, model_name, deployment_id, endpoint), sums in hours.items():
        day = hour.replace(hour=0)  # UTC days; org-time-zone views aggregate hourly rows
        for target in (
            days[(day, org_id, team_id, key_id, user_id, model_name, deployment_id, endpoint)],
            by_model[(day, org_id, 0, 0, 0, model_name, 0, endpoint)],  # a model serves one endpoint or two: hardly more rows
            by_key[(day, org_id, team_id, key_id, user_id, "", 0, "")],
        ):
            for index, value in enumerate(sums):
                target[index] += value
    grains = ((_HOUR, hours), (_DAY, days), (_DAY_BY_MODEL, by_model), (_DAY_BY_KEY, by_key))
    buckets = [(grain, key, sums) for grain, grouped in grains for key, sums in grouped.items()]
    # A fixed order, so two drains upserting the same buckets lock them in the same order (no deadlock).
    buckets.sort(key=lambda item: item[:2])
    _upsert(buckets)


def _add_saving(sums: list, row: dict) -> None:
    """README "Response cache", "Sandbox keys": what a hit, a sandbox run or a downgrade saved."""
    would = row["would_have_cost"]
    would = Decimal(would).quantize(_TEN_PLACES) if would is not None else None
    if row["cache_hit"]:
        sums[8] += 1
        sums[9] += would or 0
    elif row["sandbox"]:
        sums[10] += 1
        sums[11] += would or 0
    else:
        sums[12] += 1
        if would is not None and row["cost_display"] is not None:
            sums[13] += max(would - row["cost_display"], Decimal(0))


def _zero() -> list:
    return [0, 0, 0, 0, 0, Decimal(0), 0, 0, 0, Decimal(0), 0, Decimal(0), 0, Decimal(0)]  # SUMS; money stays Decimal


def _add(name: str, left: str, right: str) -> str:
    money = isinstance(UsageRollup._meta.get_field(name), DecimalField)
    return add_sql(connection, left, right) if money else f"{left} + {right}"


def _upsert(buckets: list[tuple]) -> None:
    """INSERT … VALUES (…), (…) ON CONFLICT DO UPDATE: one statement per CHUNK buckets (one per
    batch, usually). A statement per bucket cost ~90 µs each in PostgreSQL even when pipelined."""
    quote = connection.ops.quote_name
    table = quote(UsageRollup._meta.db_table)
    columns = ", ".join(quote(name) for name in (*KEYS, *SUMS))
    conflict = ", ".join(quote(name) for name in KEYS)
    increments = ", ".join(f"{quote(name)} = {_add(name, f'{table}.{quote(name)}', f'EXCLUDED.{quote(name)}')}" for name in SUMS)
    row = "(" + ", ".join(["%s"] * (len(KEYS) + len(SUMS))) + ")"
    # The bucket adapted as the ORM stores it, so the conflict target matches rows it wrote (SQLite: naive UTC text).
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(buckets), CHUNK):
            chunk = buckets[start : start + CHUNK]
            params = [
                value
                for grain, (bucket, org_id, team_id, key_id, user_id, model_name, deployment_id, endpoint), sums in chunk
                for value in (org_id, grain, adapt(bucket), team_id, key_id, user_id, model_name, deployment_id, endpoint, *sums)
            ]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))} "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {increments}",
                params,
            )
