"""Deployment cooldowns, shared across processes without a round trip per request.

A deployment that fails `cooldown_failures` times within `cooldown_window_seconds` (in all
processes together) is skipped for `cooldown_seconds`. When the period ends it is half-open: the
next attempt is a probe; success re-enables it, failure cools it again at once.

Shared state is one Redis hash {deployment id: cooled-until epoch} that every process reads in the
background every POLL_SECONDS; Redis is written only when something fails (or a probe succeeds).
"""

import asyncio
import logging
import time
from collections import deque

from config.logs import utc_time
from wire import redis_keys

log = logging.getLogger(__name__)

HASH = redis_keys.COOLDOWNS
POLL_SECONDS = 0.5


class Cooldowns:
    def __init__(self, redis=None):
        self._redis = redis
        self._until: dict[int, float] = {}
        self._failures: dict[int, deque] = {}

    def clear(self) -> None:
        """Forget this process's cooldowns and failure counts (the shared ones in Redis stay)."""
        self._until.clear()
        self._failures.clear()

    def cooling(self, deployment_id: int, now: float | None = None) -> bool:
        until = self._until.get(deployment_id)
        return until is not None and until > (now or time.time())

    def cooling_ids(self, now: float | None = None) -> list[int]:
        """The deployments cooling down now, as this process knows them (for the metrics)."""
        now = now or time.time()
        return [deployment_id for deployment_id, until in self._until.items() if until > now]

    async def failure(self, deployment_id: int, policy) -> None:
        now = time.time()
        probing = deployment_id in self._until and not self.cooling(deployment_id, now)
        failures = await self._count_failure(deployment_id, policy.cooldown_window_seconds, now)
        if probing or failures >= policy.cooldown_failures:
            await self._cool(deployment_id, now + policy.cooldown_seconds)

    async def reject(self, deployment_id: int, policy) -> None:
        """The provider refused the credential: cool at once, since every try would be refused alike."""
        await self._cool(deployment_id, time.time() + policy.cooldown_seconds)

    async def success(self, deployment_id: int) -> None:
        if deployment_id not in self._until:
            return
        self._until.pop(deployment_id, None)
        self._failures.pop(deployment_id, None)
        if self._redis is not None:
            await self._quietly(self._redis.hdel(HASH, deployment_id))

    async def _count_failure(self, deployment_id: int, window: int, now: float) -> int:
        if self._redis is not None:
            counter = redis_keys.failure_counter(deployment_id, int(now // window))
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, window * 2)
                result = await self._quietly(pipe.execute())
            if result:
                return int(result[0])
        recent = self._failures.setdefault(deployment_id, deque(maxlen=1000))
        recent.append(now)
        while recent and recent[0] < now - window:
            recent.popleft()
        return len(recent)

    async def _cool(self, deployment_id: int, until: float) -> None:
        self._until[deployment_id] = until
        log.warning("deployment %s cooling down for %.0f s (until %s)", deployment_id, until - time.time(), utc_time(until))
        if self._redis is not None:
            await self._quietly(self._redis.hset(HASH, deployment_id, until))

    async def watch(self) -> None:
        if self._redis is None:
            return
        while True:
            try:
                shared = await asyncio.wait_for(self._redis.hgetall(HASH), timeout=2)
                self._until = {int(k): float(v) for k, v in shared.items()}
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cooldown poll failed: %s", exc.__class__.__name__)
            await asyncio.sleep(POLL_SECONDS)

    @staticmethod
    async def _quietly(awaitable):
        try:
            return await asyncio.wait_for(awaitable, timeout=0.5)
        except Exception as exc:  # a cooldown is an optimisation: never fail a request over it
            log.warning("cooldown store unavailable: %s", exc.__class__.__name__)
            return None
