"""The exactly-once usage ledger: idempotent bulk inserts, and the drain of the Redis stream.

At-least-once delivery (stream entries are acknowledged only after the insert commits) plus an
insert keyed by request id (conflicts ignored) gives an exact ledger: a batch retried after a
crash inserts nothing twice.
"""

import gc
import logging
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal

import orjson
from django.conf import settings
from django.db import connection, transaction

from accounts.models import Organization
from billing.models import UsageEvent
from billing.rollups import rollup_add

log = logging.getLogger(__name__)

STREAM = "tollgate:usage"
GROUP = "ledger"

# Every column but the primary key, and its default for records that do not carry it.
_COLUMNS = [field for field in UsageEvent._meta.concrete_fields if not field.primary_key]
_DEFAULTS = {field.attname: field.get_default() for field in _COLUMNS}  # shared, never mutated
_COST_PLACES = Decimal(1).scaleb(-UsageEvent._meta.get_field("cost_display").decimal_places)


def _row(record: dict) -> dict:
    """A stream record as ledger column values (attname -> value): a copy, since a caller may retry
    with the same records, with its time as a UTC datetime and its display cost as stored."""
    row = {**_DEFAULTS, **record}
    row["created_at"] = datetime.fromtimestamp(record["created_at"], dt_timezone.utc)  # positional: keyword parsing costs more
    if row["cost_display"] is not None:
        # Rounded here as the column would round it, so the rollups add exactly what the ledger keeps.
        row["cost_display"] = Decimal(row["cost_display"]).quantize(_COST_PLACES, rounding=ROUND_HALF_UP)
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
            events = [UsageEvent(**{field.attname: row[field.attname] for field in _COLUMNS}) for row in fresh]
            UsageEvent.objects.bulk_create(events, ignore_conflicts=True, batch_size=1000)
        rollup_add(fresh)
    return len(fresh)


def _insert_postgresql(rows: list[dict]) -> set[str]:
    """One INSERT … SELECT FROM json_to_recordset(batch) ON CONFLICT DO NOTHING RETURNING: the database
    says which rows were new, so concurrent drains can never both count one.

    The batch travels as one JSON text (orjson, in C) that PostgreSQL parses; binding it as one array
    per column cost ~6 µs of client CPU per record in psycopg's Python array dumper (JSON: ~0.2 µs).
    """
    if not rows:
        return set()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _COLUMNS)
    record_type = ", ".join(f"{quote(field.attname)} {field.db_type(connection)}" for field in _COLUMNS)
    fields = ", ".join(quote(field.attname) for field in _COLUMNS)
    table = quote(UsageEvent._meta.db_table)
    # Datetimes become RFC 3339 with microseconds, Decimals exact strings; keys not in the record type are ignored.
    batch = orjson.dumps(rows, default=str).decode()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {fields} FROM json_to_recordset(%s::json) AS r({record_type}) "
            f"ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
            [batch],
        )
        return {request_id for (request_id,) in cursor.fetchall()}


def _records(fields: dict | None) -> list[dict]:
    """A stream entry holds a batch ("b": a JSON list) or, from older writers, one record ("r")."""
    if not fields:
        return []
    if b"b" in fields:
        return orjson.loads(fields[b"b"])
    return [orjson.loads(fields[b"r"])] if b"r" in fields else []


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while a batch is decoded and ingested.

    A batch allocates ~40k containers (decoded records, row copies) that all live until it ends, which
    triggers dozens of collections, some of them full passes over the worker's whole heap: ~5 µs per
    record, a third of the drain's CPU (measured). The records hold no cycles, so reference counting
    frees them anyway; collection resumes after the batch.
    """
    if not gc.isenabled():  # someone else's choice: leave it as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
        with _gc_paused():
            records = [record for _, fields in entries for record in _records(fields)]
            usage_ingest(records)
        ids = [entry_id for entry_id, _ in entries]
        pipe = client.pipeline(transaction=False)  # one round trip for both
        pipe.xack(STREAM, GROUP, *ids)
        pipe.xdel(STREAM, *ids)
        pipe.execute()
        total += len(records)
    return total
