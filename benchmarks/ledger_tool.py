"""Usage-ledger helpers run under Tollgate's Django settings (the production env run.py builds).

    python benchmarks/ledger_tool.py ingest --records 100000 --organization 1 [--key 5]
        push synthetic records (relay.record.Record.as_dict's shape, priced) into the Redis stream, then time
        billing.ledger.usage_drain until the stream is empty: events/s for one worker; the rows are
        deleted again afterwards.
    python benchmarks/ledger_tool.py drain        move whatever the stream holds into the ledger now
    python benchmarks/ledger_tool.py count --key 5    usage rows of one virtual key, by status
Each prints one JSON line prefixed with its command name.
"""

import argparse
import json
import os
import sys
import time
import uuid
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db.models import Count  # noqa: E402

from billing import ledger  # noqa: E402
from billing.models import UsageEvent  # noqa: E402


def _client():
    return redis.Redis.from_url(settings.REDIS_URL)


# A price as the relay applies it (per 1M tokens): costs travel as exact Decimal strings.
_INPUT_PER_M, _OUTPUT_PER_M = Decimal("0.15"), Decimal("0.60")


def _record(run: str, index: int, organization_id: int, key_id: int | None, now: float) -> dict:
    """One served request, every field of relay.record.Record.as_dict, priced like the relay prices it."""
    prompt_tokens, completion_tokens = 31 + index % 7, 11 + index % 13
    cost = (prompt_tokens * _INPUT_PER_M + completion_tokens * _OUTPUT_PER_M) / 1_000_000
    return {
        "request_id": f"ingest-{run}-{index}", "organization_id": organization_id, "team_id": None, "key_id": key_id,
        "user_id": None, "model_name": "bench", "deployment_id": 1, "provider": "custom", "upstream_model": "bench-upstream",
        "endpoint": "chat", "stream": False, "status_code": 200, "error_type": "", "prompt_tokens": prompt_tokens,
        "cached_tokens": 0, "completion_tokens": completion_tokens, "usage_source": "provider", "attempts": 1,
        "latency_ms": 3, "ttft_ms": None, "created_at": now - (index % 3600),
        "cost": str(cost), "currency": "USD", "exchange_rate": "1", "cost_display": str(cost * 1), "price_id": 1,
        "attempt_trail": [{"deployment": 1, "status": 200, "error": "", "ms": 3}], "downgraded_from": "",
    }


def _drain_all(client, deadline: float) -> tuple[int, float, float]:
    """Drain until the stream is empty: records moved, wall seconds, and this process's CPU seconds
    (the rest of the wall time is spent waiting, mostly for PostgreSQL)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    total = 0
    while time.monotonic() < deadline:
        moved = ledger.usage_drain(client)
        total += moved
        if moved == 0 and client.xlen(ledger.STREAM) == 0:
            break
    return total, time.perf_counter() - started, time.process_time() - cpu_started


def _vacuum() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) billing_usageevent")
            cursor.execute("VACUUM (ANALYZE) billing_usagerollup")


def ingest(args) -> dict:
    client = _client()
    backlog = client.xlen(ledger.STREAM) if client.exists(ledger.STREAM) else 0
    if backlog:  # leftovers of an earlier run would inflate the figure: move them first, untimed
        _drain_all(client, time.monotonic() + 120)
    _vacuum()  # dead rows of earlier runs (this machine's PostgreSQL runs no autovacuum) would slow this one
    run = uuid.uuid4().hex[:10]
    now = time.time()
    push_started = time.perf_counter()
    # As the relay writes them: one stream entry per flushed batch of up to 500 records.
    pipe = client.pipeline(transaction=False)
    for start in range(0, args.records, 500):
        batch = [_record(run, index, args.organization, args.key, now) for index in range(start, min(start + 500, args.records))]
        pipe.xadd(ledger.STREAM, {"b": orjson.dumps(batch)})
    pipe.execute()
    push_s = time.perf_counter() - push_started
    moved, drain_s, drain_cpu_s = _drain_all(client, time.monotonic() + args.timeout)
    rows = UsageEvent.objects.filter(request_id__startswith=f"ingest-{run}-").count()
    UsageEvent.objects.filter(request_id__startswith=f"ingest-{run}-").delete()
    _vacuum()
    client.close()
    return {
        "records": args.records, "moved": moved, "rows": rows, "push_s": round(push_s, 3), "drain_s": round(drain_s, 3),
        "drain_cpu_s": round(drain_cpu_s, 3),
        "events_per_s": round(rows / drain_s, 1) if drain_s else None, "backlog_drained_first": backlog,
    }


def drain(args) -> dict:
    client = _client()
    backlog = client.xlen(ledger.STREAM) if client.exists(ledger.STREAM) else 0
    moved, elapsed, _ = _drain_all(client, time.monotonic() + args.timeout)
    client.close()
    return {"backlog": backlog, "moved": moved, "seconds": round(elapsed, 3), "events_per_s": round(moved / elapsed, 1) if elapsed else None}


def count(args) -> dict:
    rows = UsageEvent.objects.filter(key_id=args.key)
    by_status = {str(r["status_code"]): r["n"] for r in rows.values("status_code").annotate(n=Count("id")).order_by("status_code")}
    client = _client()
    stream = client.xlen(ledger.STREAM) if client.exists(ledger.STREAM) else 0
    client.close()
    return {"rows": sum(by_status.values()), "by_status": by_status, "stream_backlog": stream}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--organization", type=int, required=True)
    p.add_argument("--key", type=int, default=None)
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("drain")
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("count")
    p.add_argument("--key", type=int, required=True)
    args = parser.parse_args()
    result = {"ingest": ingest, "drain": drain, "count": count}[args.command](args)
    print(args.command.upper() + " " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
