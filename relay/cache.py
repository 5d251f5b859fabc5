"""In-process snapshots of keys and models, so the steady-state hot path makes no SQL query.

A background task polls the configuration version (keys.invalidation) every POLL_SECONDS and
drops everything when it moves; entries also expire after TTL_SECONDS as a safety net. Misses
load through the ORM in a worker thread; concurrent misses for one entry share a single load.
"""

import asyncio
import logging
import time
from collections import OrderedDict

from django.db import DatabaseError

from relay import control, snapshots
from relay.db import run_db
from relay.metrics import SNAPSHOT_LOADS
from wire import redis_keys
from wire.errors import Unavailable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
TTL_SECONDS = 60.0
MAX_ENTRIES = 50_000  # bounds memory under a flood of random keys (negative entries count too)


class SnapshotCache:
    def __init__(self, redis=None):
        self._redis = redis
        self._entries: OrderedDict = OrderedDict()
        self._loading: dict = {}
        self._version = None
        self.loads = 0  # how many misses went to the database (tests count them)

    async def key(self, key_hash: str):
        return await self._get(("key", key_hash), snapshots.key_snapshot_by_hash, key_hash)

    def cached_key(self, key_hash: str) -> tuple[bool, object]:
        """(True, snapshot) when a fresh entry is held (None for a known-bad key); never loads."""
        entry = self._entries.get(("key", key_hash))
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    async def model(self, organization_id: int, name: str):
        return await self._get(("model", organization_id, name), _model_snapshot, organization_id, name)

    async def model_names(self, organization_id: int):
        return await self._get(("models", organization_id), _model_names, organization_id)

    def holds_snapshots(self) -> bool:
        """Whether any key is cached, i.e. whether this process can serve while PostgreSQL is away."""
        return any(cache_key[0] == "key" and entry[1] is not None for cache_key, entry in self._entries.items())

    async def _get(self, cache_key, loader, *args):
        entry = self._entries.get(cache_key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._loading.get(cache_key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(cache_key, loader, *args))
            self._loading[cache_key] = pending
        return await asyncio.shield(pending)

    async def _load(self, cache_key, loader, *args):
        try:
            version = self._version
            try:
                value = await run_db(loader, *args)
            except DatabaseError as exc:
                # Stale beats wrong: a known key keeps working while the database is away.
                stale = self._entries.get(cache_key)
                if stale is not None:
                    log.warning("serving a stale snapshot: database unavailable (%s)", exc.__class__.__name__)
                    return stale[1]
                raise Unavailable("The gateway's database is unavailable; retry shortly.", headers={"retry-after": "5"}) from exc
            self.loads += 1
            SNAPSHOT_LOADS.inc()
            if version == self._version:  # not invalidated while loading
                self._entries[cache_key] = (time.monotonic() + TTL_SECONDS, value)
                self._entries.move_to_end(cache_key)
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
            return value
        finally:
            self._loading.pop(cache_key, None)

    def clear(self) -> None:
        """Expire everything now; the entries stay as a fallback while the database is unreachable."""
        self._entries = OrderedDict((key, (0.0, value)) for key, (_, value) in self._entries.items())

    async def read_version(self):
        if self._redis is not None:
            return await self._redis.get(redis_keys.CONFIG_VERSION)
        path = control.local_version_path()
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    async def watch(self) -> None:
        """Runs for the life of the process."""
        while True:
            try:
                version = await asyncio.wait_for(self.read_version(), timeout=2)
                if version != self._version:
                    self._version = version
                    self.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: keep serving from the cache (README: fail-open table)
                log.warning("config version poll failed: %s", exc.__class__.__name__)
            await asyncio.sleep(POLL_SECONDS)


def _model_snapshot(organization_id, name):
    return snapshots.model_snapshot(organization_id=organization_id, name=name)


def _model_names(organization_id):
    return snapshots.model_names(organization_id=organization_id)
