"""Usage emission off the response path: records are buffered and flushed in batches.

`RedisStreamSink` pipelines each batch into the Redis stream that the Celery drain job reads
(billing.ledger); if Redis fails, the batch is spooled to a local file and replayed later.
`LocalSink` (embedded default) writes batches straight into the ledger from a worker thread.
Either way `emit` never blocks or fails the response; a hard kill loses at most the records
buffered since the last flush (FLUSH_SECONDS).
"""

import asyncio
import logging
import os
import time
from pathlib import Path

import orjson

from relay import control
from relay.db import run_db
from wire.redis_keys import USAGE_STREAM
from wire.usage import encode_batch

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
REPLAY_SECONDS = 5
BATCH = 500


class _BufferedSink:
    def __init__(self):
        self._buffer: list[dict] = []
        self._wake = asyncio.Event()
        self._task = None
        self.flushed = 0

    def emit(self, record: dict) -> None:
        self._buffer.append(record)
        if len(self._buffer) >= BATCH:
            self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is buffered now, in batches; records arriving meanwhile wait for the next flush."""
        pending, self._buffer = self._buffer, []
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            try:
                await self._write(batch)
                self.flushed += len(batch)
            except asyncio.CancelledError:
                # Shutdown cancels the flush loop, maybe mid-write: keep the batch for the final flush
                # (uvicorn then re-raises SIGTERM, which kills the process without waiting for the
                # write's worker thread). Written twice at worst: the ledger ingest is idempotent.
                self._buffer[:0] = pending[start:]
                raise
            except Exception as exc:
                rest = pending[start:]
                log.warning("usage flush failed (%s); spooling %d records", exc.__class__.__name__, len(rest))
                await self._spool(rest)
                return

    async def _write(self, batch: list[dict]) -> None:
        raise NotImplementedError

    async def _spool(self, batch: list[dict]) -> None:
        raise NotImplementedError


class RedisStreamSink(_BufferedSink):
    def __init__(self, redis, spool_dir: Path):
        super().__init__()
        self._redis = redis
        self._spool_dir = spool_dir
        self._last_replay = 0.0

    async def _write(self, records: list[dict]) -> None:
        """One stream entry per batch (field "b": a JSON list): one command instead of one per record."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(records), BATCH):
                pipe.xadd(USAGE_STREAM, {"b": encode_batch(records[start : start + BATCH])})
            await asyncio.wait_for(pipe.execute(), timeout=5)

    async def flush(self) -> None:
        await super().flush()
        # Replay the spool every REPLAY_SECONDS, with or without new traffic (an idle process whose
        # Redis came back must still deliver what it spooled); a failed replay is retried later.
        if time.monotonic() - self._last_replay > REPLAY_SECONDS:
            self._last_replay = time.monotonic()
            try:
                await self._replay()
            except Exception as exc:
                log.warning("usage spool replay failed (%s); will retry", exc.__class__.__name__)

    async def _spool(self, batch: list[dict]) -> None:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        path = self._spool_dir / f"usage-{os.getpid()}-{time.time_ns()}.jsonl"
        # Written under another name, then renamed: a process replaying the folder (they may share it)
        # never reads, sends and deletes a half-written file.
        partial = path.with_suffix(".partial")
        partial.write_bytes(b"\n".join(orjson.dumps(r) for r in batch) + b"\n")
        os.replace(partial, path)

    async def _replay(self) -> None:
        """Send spooled batches once Redis answers again; a file is deleted only after its XADDs."""
        for path in sorted(self._spool_dir.glob("usage-*.jsonl")) if self._spool_dir.exists() else []:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # another process sharing the folder replayed it meanwhile
                continue
            records = [orjson.loads(line) for line in raw.splitlines() if line]
            await self._write(records)
            path.unlink(missing_ok=True)
            log.info("replayed %d spooled usage records", len(records))


class LocalSink(_BufferedSink):
    async def _write(self, batch: list[dict]) -> None:
        await run_db(control.ledger_ingest, batch)

    async def _spool(self, batch: list[dict]) -> None:
        # The database refused (locked, restarting): keep the records and try again next flush.
        self._buffer[:0] = batch
        await asyncio.sleep(1)
