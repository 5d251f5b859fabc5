"""Idempotency-Key: a client retrying the same key gets the stored answer, with no second upstream
call and no second charge. Only requests that send the header pay for the lookup.

The first request claims the key (atomically); a duplicate arriving while it runs gets 409 with
Retry-After; once it has finished, duplicates replay its status, headers and body for 24 hours.
Answers that failed before reaching the upstream are not stored, so a retry can succeed.
While the shared store (Redis) is unavailable, requests with the header get 503 with Retry-After:
answering without the guarantee could charge a retry twice (README: fail-open table).
"""

import asyncio
import logging
import time

import orjson
from redis.exceptions import RedisError

from relay.errors import RelayError, Unavailable

log = logging.getLogger(__name__)
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

TTL_SECONDS = 24 * 3600
PENDING_SECONDS = 600
MAX_STORED_BYTES = 4 * 1024 * 1024


class IdempotencyConflict(RelayError):
    status, type, code = 409, "invalid_request_error", "idempotency_key_in_use"


class IdempotencyStore:
    """Redis-backed when shared state exists; a bounded in-process dict otherwise."""

    def __init__(self, redis=None):
        self._redis = redis
        self._local: dict[str, tuple[float, bytes]] = {}

    async def claim(self, name: str) -> dict | None:
        """None when claimed for this request; the stored answer (or a conflict) otherwise."""
        if self._redis is not None:
            try:
                if await self._redis.set(name, b"pending", nx=True, ex=PENDING_SECONDS):
                    return None
                stored = await self._redis.get(name)
            except STORE_ERRORS as exc:
                raise Unavailable("Idempotency-Key cannot be honoured right now; retry shortly.", headers={"retry-after": "5"}) from exc
        else:
            self._expire()
            entry = self._local.get(name)
            if entry is None:
                self._local[name] = (time.monotonic() + PENDING_SECONDS, b"pending")
                return None
            stored = entry[1]
        if stored in (None, b"pending"):
            raise IdempotencyConflict("A request with this Idempotency-Key is still in progress.", headers={"retry-after": "1"})
        return orjson.loads(stored)

    async def save(self, name: str, request_id: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if len(body) > MAX_STORED_BYTES:
            return await self.release(name)
        value = orjson.dumps({"request_id": request_id, "status": status, "headers": [[k.decode(), v.decode()] for k, v in headers], "body": body.decode("utf-8", "replace")})
        if self._redis is not None:
            try:
                await self._redis.set(name, value, ex=TTL_SECONDS)
            except STORE_ERRORS as exc:  # the answer is already out; a retry gets 409 until the claim expires
                log.warning("could not store an idempotent answer: %s", exc.__class__.__name__)
        else:
            self._local[name] = (time.monotonic() + TTL_SECONDS, value)

    async def release(self, name: str) -> None:
        if self._redis is not None:
            try:
                await self._redis.delete(name)
            except STORE_ERRORS as exc:
                log.warning("could not release an idempotency claim: %s", exc.__class__.__name__)
        else:
            self._local.pop(name, None)

    def _expire(self) -> None:
        if len(self._local) > 10_000:
            now = time.monotonic()
            self._local = {k: v for k, v in self._local.items() if v[0] > now}


def store_key(key_id: int, idempotency_key: str) -> str:
    return f"tg:idem:{key_id}:{idempotency_key[:200]}"
