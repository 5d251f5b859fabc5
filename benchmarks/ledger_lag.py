#!/usr/bin/env python3
"""Ledger lag: how long after a request ends its row is visible in the ledger, per drain, side by side.

    python benchmarks/ledger_lag.py                       # consumer vs beat-2s, 200 req/s, 30 s each
    python benchmarks/ledger_lag.py --rate 400 --seconds 60 --drains consumer

Tollgate in production configuration (run.py's machinery: PostgreSQL database `tollgate_bench_lag`,
Redis database 8, its own ports, the canned nginx upstream) serves non-streaming chat requests sent at a
steady rate (open loop: a request starts on schedule whether or not earlier ones have finished) with an
aiohttp client. For each request the client notes when its answer ended; a poller reads the ledger every
10 ms and notes when each request's row became visible. Lag = visible - ended, per request.

Drains compared (one after the other, against the same web process):
- `consumer`: `celery -A config worker --beat --concurrency 1` as in Procfile.dev: the worker's consumer
  thread reads the stream with XREADGROUP … BLOCK (billing.drain).
- `beat-2s`: the previous design: the drain (billing.ledger.usage_drain) every 2 s, as the beat schedule
  ran it; here a loop in its own process, the consumer thread off (TOLLGATE_USAGE_CONSUMER=0).
Writes results/latest-ledger-lag.md and .json.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

run.BENCH_DB, run.REDIS_DB = "tollgate_bench_lag", 8
run.WORK = run.RESULTS / "work-lag"
run.PORTS.update({name: port + 2000 for name, port in run.PORTS.items()})
POLL_SECONDS = 0.01


def old_drain_loop() -> None:
    """The beat-2s drain: billing.ledger.usage_drain every 2 s (run under Tollgate's settings)."""
    sys.path.insert(0, str(run.ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings

    from billing import ledger

    client = redis.Redis.from_url(settings.REDIS_URL)
    while True:
        started = time.monotonic()
        ledger.usage_drain(client)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))


def start_drain(name: str, env: dict):
    if name == "consumer":
        argv = [run.PY, "-m", "celery", "-A", "config", "worker", "--concurrency", "1", "--beat",
                "-s", str(run.WORK / "celerybeat-schedule"), "--loglevel", "WARNING", "-n", "lag@%h"]
        return run.PROCS.start("celery-consumer", argv, cpu=run.LOAD_CPU, env=env)
    return run.PROCS.start("drain-beat-2s", [run.PY, __file__, "old-drain"], cpu=run.LOAD_CPU,
                           env={**env, "TOLLGATE_USAGE_CONSUMER": "0"})


class Poller(threading.Thread):
    """Notes when each of the key's rows first shows up in the ledger."""

    def __init__(self, key_id: int):
        super().__init__(daemon=True)
        self.key_id, self.seen, self.stop = key_id, {}, threading.Event()

    def run(self) -> None:
        import psycopg

        last = 0
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{run.BENCH_DB}", autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT id, request_id FROM billing_usageevent WHERE key_id = %s AND id > %s",
                    (self.key_id, max(0, last - 2000)),  # a margin: concurrent inserts may commit out of id order
                ).fetchall()
                now = time.time()
                for row_id, request_id in rows:
                    self.seen.setdefault(request_id, now)
                    last = max(last, row_id)
                time.sleep(POLL_SECONDS)


async def steady_load(port: int, secret: str, rate: float, seconds: float) -> dict[str, float]:
    """Request id -> when its answer ended; requests start every 1/rate s."""
    import aiohttp

    import canned

    body, ended = canned.chat_request(canned.MODEL), {}
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    failures = 0

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def one() -> None:
            nonlocal failures
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    ended[response.headers["x-request-id"]] = time.time()
                else:
                    failures += 1

        tasks, start = [], time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks, return_exceptions=True)
    if failures:
        run.log(f"{failures} requests failed")
    return ended


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(drain: str, gateway, opts) -> dict:
    worker = start_drain(drain, gateway.env)
    time.sleep(opts.warmup)  # the worker boots (Django, the consumer's first read)
    poller = Poller(gateway.setup["key_id"])
    poller.start()
    ended = asyncio.run(steady_load(run.PORTS["tollgate"], gateway.setup["key"], opts.rate, opts.seconds))
    deadline = time.time() + 15
    while time.time() < deadline and not all(rid in poller.seen for rid in ended):
        time.sleep(0.1)
    poller.stop.set()
    poller.join(5)
    run.PROCS.stop(worker, timeout=20)
    lags = [poller.seen[rid] - t for rid, t in ended.items() if rid in poller.seen]
    missing = sum(1 for rid in ended if rid not in poller.seen)
    cell = {"drain": drain, "requests": len(ended), "missing": missing, "rate": opts.rate, "seconds": opts.seconds}
    if lags:
        cell.update({f"p{q}_ms": round(percentile(lags, q) * 1000, 1) for q in (50, 90, 99)})
        cell.update(max_ms=round(max(lags) * 1000, 1), mean_ms=round(statistics.fmean(lags) * 1000, 1))
    run.log(json.dumps(cell))
    return cell


def main() -> None:
    if sys.argv[1:2] == ["old-drain"]:
        old_drain_loop()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drains", default="consumer,beat-2s")
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--retry-wait", type=float, default=5)
    opts = parser.parse_args()
    run.NICE = -10 if os.geteuid() == 0 else 0
    run.WORK.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    tools = run.ensure_tools(notes)
    cells = []
    try:
        run.start_mocks(tools, notes)
        gateway = run.start_tollgate(notes, opts, celery=False)
        for drain in opts.drains.split(","):
            cells.append(measure(drain, gateway, opts))
        gateway.stop()
    finally:
        run.PROCS.stop_all()
    lines = [
        f"Ledger lag, request end → row visible ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{opts.rate:g} req/s for {opts.seconds:g} s, non-streaming chat, PostgreSQL + Redis, one uvicorn worker)", "",
        "| drain | requests | p50 ms | p90 ms | p99 ms | max ms | not visible |", "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(f"| {c['drain']} | {c['requests']} | {c.get('p50_ms')} | {c.get('p90_ms')} | {c.get('p99_ms')} | {c.get('max_ms')} | {c['missing']} |")
    lines += [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    (run.RESULTS / "latest-ledger-lag.md").write_text(text)
    (run.RESULTS / "latest-ledger-lag.json").write_text(json.dumps({"cells": cells, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
