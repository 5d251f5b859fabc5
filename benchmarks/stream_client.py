"""Fixed-concurrency HTTP client (aiohttp on uvloop) that sees what wrk cannot: time to first byte of a stream.

    python benchmarks/stream_client.py --url URL --body-file F --auth 'Bearer k' -c 16 -d 5 [--warmup 1]

Each of `c` workers sends the POST, notes when the first body bytes arrive (TTFT) and when the
response ends (total), and loops until the deadline. Prints one JSON object on stdout:
requests, errors, rps, ttft/total percentiles (ms), SSE data events seen per response.
Also the fallback load generator for non-stream scenarios when wrk is not installed.
"""

import argparse
import asyncio
import json
import time


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


async def run(args) -> dict:
    import aiohttp

    body = open(args.body_file, "rb").read()
    headers = {"content-type": "application/json", "authorization": args.auth}
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    ttfts, totals, events = [], [], []
    errors = {"status": 0, "socket": 0, "timeout": 0}
    statuses: dict[int, int] = {}

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        warmups = [0]

        async def one(record: bool) -> None:
            started = time.perf_counter()
            first = None
            seen = 0
            try:
                async with session.post(args.url, data=body, headers=headers) as response:
                    async for chunk in response.content.iter_any():
                        if first is None and chunk:
                            first = time.perf_counter()
                        seen += chunk.count(b"data:")
                    status = response.status
            except asyncio.TimeoutError:
                if record:
                    errors["timeout"] += 1
                return
            except aiohttp.ClientError:
                if record:
                    errors["socket"] += 1
                await asyncio.sleep(0.01)
                return
            ended = time.perf_counter()
            if not record:
                warmups[0] += 1
                return
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 300:
                errors["status"] += 1
                return
            ttfts.append(((first or ended) - started) * 1000)
            totals.append((ended - started) * 1000)
            events.append(seen)

        async def worker(deadline: float, record: bool) -> None:
            while time.perf_counter() < deadline:
                await one(record)

        if args.warmup > 0:
            deadline = time.perf_counter() + args.warmup
            await asyncio.gather(*(worker(deadline, False) for _ in range(args.concurrency)))
        # The parent samples the gateway's CPU when it reads this line, and again at RESULT.
        print("START", flush=True)
        started = time.perf_counter()
        deadline = started + args.duration
        await asyncio.gather(*(worker(deadline, True) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started

    done = len(totals)
    return {
        "requests": done + errors["status"],
        "ok": done,
        "errors": errors["status"] + errors["socket"] + errors["timeout"],
        "error_detail": errors,
        "statuses": statuses,
        "elapsed_s": elapsed,
        "rps": done / elapsed if elapsed else 0,
        "ttft_ms": {f"p{q}": percentile(ttfts, q) for q in (50, 90, 99)},
        "total_ms": {f"p{q}": percentile(totals, q) for q in (50, 90, 99)},
        "events_per_response": (sum(events) / len(events)) if events else 0,
        "warmup_requests": warmups[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--auth", default="Bearer bench")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(args))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
