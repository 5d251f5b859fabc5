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
LEDGER_LOCK = 0x7011_6A7E

_FIELDS = {f.name for f in UsageEvent._meta.concrete_fields} | {"organization_id"}


def _event(record: dict) -> UsageEvent:
    data = {k: v for k, v in record.items() if k in _FIELDS}
    data["created_at"] = datetime.fromtimestamp(record["created_at"], tz=dt_timezone.utc)
    for field in ("cost", "exchange_rate", "cost_display"):
        if data.get(field) is not None:
            data[field] = Decimal(data[field])
    return UsageEvent(**data)


def usage_ingest(records: list[dict]) -> int:
    """Insert records; returns how many were new. Safe to call again with the same records."""
    if not records:
        return 0
    # An organization deleted meanwhile takes its usage with it (as its ledger rows cascade).
    live_orgs = set(Organization.objects.filter(pk__in={r["organization_id"] for r in records}).values_list("pk", flat=True))
    events = [_event(r) for r in records if r["organization_id"] in live_orgs]
    ids = [e.request_id for e in events]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Serialise ingests so "which events are new" is exact even with several drains at once.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK])
        existing = set(UsageEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True))
        fresh = list({e.request_id: e for e in events if e.request_id not in existing}.values())
        UsageEvent.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=1000)
        rollup_add(fresh)
    return len(fresh)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client) -> None:
    import redis

    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def usage_drain(client, *, batch: int = 2000, max_batches: int = 50) -> int:
    """Move stream entries into the ledger; acknowledge each batch only after it commits."""
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
        records = [orjson.loads(fields[b"r"]) for _, fields in entries if fields and b"r" in fields]
        usage_ingest(records)
        ids = [entry_id for entry_id, _ in entries]
        client.xack(STREAM, GROUP, *ids)
        client.xdel(STREAM, *ids)
        total += len(entries)
    return total
