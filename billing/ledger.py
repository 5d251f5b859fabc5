"""The exactly-once usage ledger: idempotent bulk inserts, and the drain of the Redis stream.

At-least-once delivery (stream entries are acknowledged only after the insert commits) plus an
insert keyed by request id (conflicts ignored) gives an exact ledger: a batch retried after a
crash inserts nothing twice.
"""

import logging
import os
import socket
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import orjson
from django.conf import settings
from django.db import connection, transaction

from accounts.models import Organization
from billing.models import UsageEvent
from billing.rollups import rollup_add

log = logging.getLogger(__name__)

STREAM = "tollgate:usage"
GROUP = "ledger"

# Every column but the primary key, with its default for records that do not carry it.
_COLUMNS = [field for field in UsageEvent._meta.concrete_fields if not field.primary_key]
_DECIMALS = ("cost", "exchange_rate", "cost_display")


def _row(record: dict) -> dict:
    """A stream record as ledger column values (attname -> Python value)."""
    row = {field.attname: record.get(field.attname, record.get(field.name, field.get_default())) for field in _COLUMNS}
    row["created_at"] = datetime.fromtimestamp(record["created_at"], tz=dt_timezone.utc)
    for name in _DECIMALS:
        if row[name] is not None:
            row[name] = Decimal(row[name])
    return row


def usage_ingest(records: list[dict]) -> int:
    """Insert records; returns how many were new. Safe to call again with the same records.

    Only the rows actually inserted are added to the rollups, in the same transaction.
    """
    if not records:
        return 0
    # An organization deleted meanwhile takes its usage with it (as its ledger rows cascade).
    live_orgs = set(Organization.objects.filter(pk__in={r["organization_id"] for r in records}).values_list("pk", flat=True))
    rows = list({r["request_id"]: _row(r) for r in records if r["organization_id"] in live_orgs}.values())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _insert_postgresql(rows)
            fresh = [row for row in rows if row["request_id"] in inserted]
        else:
            existing = set(UsageEvent.objects.filter(request_id__in=[r["request_id"] for r in rows]).values_list("request_id", flat=True))
            fresh = [row for row in rows if row["request_id"] not in existing]
            UsageEvent.objects.bulk_create([UsageEvent(**row) for row in fresh], ignore_conflicts=True, batch_size=1000)
        rollup_add(fresh)
    return len(fresh)


def _insert_postgresql(rows: list[dict]) -> set[str]:
    """One INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING: the database says
    which rows were new, so concurrent drains can never both count one (measured ~3x faster than
    bulk_create with model instances)."""
    if not rows:
        return set()
    columns = ", ".join(connection.ops.quote_name(field.column) for field in _COLUMNS)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in _COLUMNS)
    values = []
    for field in _COLUMNS:
        column = [row[field.attname] for row in rows]
        if field.get_internal_type() == "JSONField":
            column = [orjson.dumps(value).decode() for value in column]
        values.append(column)
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
            values,
        )
        return {request_id for (request_id,) in cursor.fetchall()}


def _records(fields: dict | None) -> list[dict]:
    """A stream entry holds a batch ("b": a JSON list) or, from older writers, one record ("r")."""
    if not fields:
        return []
    if b"b" in fields:
        return orjson.loads(fields[b"b"])
    return [orjson.loads(fields[b"r"])] if b"r" in fields else []


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client) -> None:
    import redis

    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def usage_drain(client, *, batch: int = 20, max_batches: int = 500) -> int:
    """Move stream entries into the ledger; acknowledge each batch only after it commits.

    `batch` counts stream entries (each up to 500 records); returns the number of records.
    """
    ensure_group(client)
    consumer = consumer_name()
    total = 0
    # First reclaim what crashed consumers left pending, then read new entries.
    # Entries a dead consumer read but never acknowledged are reclaimed once idle this long.
    idle_ms = settings.TOLLGATE_USAGE_CLAIM_IDLE_MS
    _, claimed, _ = client.xautoclaim(STREAM, GROUP, consumer, min_idle_time=idle_ms, start_id="0-0", count=batch)
    pending = [claimed] if claimed else []
    for _ in range(max_batches):
        if pending:
            entries = pending.pop()
        else:
            response = client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=batch)
            entries = response[0][1] if response else []
        if not entries:
            break
        records = [record for _, fields in entries for record in _records(fields)]
        usage_ingest(records)
        ids = [entry_id for entry_id, _ in entries]
        client.xack(STREAM, GROUP, *ids)
        client.xdel(STREAM, *ids)
        total += len(records)
    return total
