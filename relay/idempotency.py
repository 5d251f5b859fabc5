"""Idempotency-Key: a client retrying the same key gets the stored answer, with no second upstream
call and no second charge. Only requests that send the header pay for the lookup.

The first request claims the key (atomically) together with a fingerprint of its body (SHA-256 of the
canonical JSON); the same key with another body is refused with 422 `idempotency_key_reused`, and a
key longer than 255 characters with 400 (never truncated: two keys must not share a slot). A duplicate
arriving while the first runs gets 409 with Retry-After; once it has finished, duplicates replay its
status, headers and body for 24 hours. A stream the client dropped was charged for what it delivered:
that partial stream is stored, and a retry replays it, ending with an `idempotency_replay_incomplete`
error event, rather than running (and charging) the request again; a new key asks for a new answer.
Answers that failed otherwise are not stored, so a retry can succeed.
While the shared store (Redis) is unavailable, requests with the header get 503 with Retry-After:
answering without the guarantee could charge a retry twice (README: fail-open table).
The request flow reaches all of this through one call, `run_once` (relay.pipeline).
"""

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

import orjson
from redis.exceptions import RedisError

from relay import messages, responses
from relay.exchange import ClientGone
from wire import redis_keys
from wire.adapters.openai import chunk_id
from wire.errors import InvalidRequest, RelayError, Unavailable
from wire.sse import encode_error

log = logging.getLogger(__name__)
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

TTL_SECONDS = 24 * 3600
PENDING_SECONDS = 600
MAX_STORED_BYTES = 4 * 1024 * 1024
MAX_KEY_LENGTH = 255
PENDING = b"pending:"


class IdempotencyConflict(RelayError):
    status, type, code = 409, "invalid_request_error", "idempotency_key_in_use"


class IdempotencyKeyReused(RelayError):
    status, type, code = 422, "invalid_request_error", "idempotency_key_reused"


class ReplayIncomplete(RelayError):
    status, type, code = 499, "invalid_request_error", "idempotency_replay_incomplete"


def _reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("This Idempotency-Key was already used with a different request body; use a new key.")


class IdempotencyStore:
    """Redis-backed when shared state exists; a bounded in-process dict otherwise."""

    def __init__(self, redis=None):
        self._redis = redis
        self._local: dict[str, tuple[float, bytes]] = {}

    def clear(self) -> None:
        """Forget the answers kept in this process (the shared ones in Redis stay)."""
        self._local.clear()

    async def claim(self, name: str, fingerprint: str = "") -> dict | None:
        """None when claimed for this request; the stored answer (or a conflict) otherwise."""
        pending = PENDING + fingerprint.encode()
        if self._redis is not None:
            try:
                if await self._redis.set(name, pending, nx=True, ex=PENDING_SECONDS):
                    return None
                stored = await self._redis.get(name)
            except STORE_ERRORS as exc:
                raise Unavailable("Idempotency-Key cannot be honoured right now; retry shortly.", headers={"retry-after": "5"}) from exc
        else:
            self._expire()
            entry = self._local.get(name)
            if entry is None:
                self._local[name] = (time.monotonic() + PENDING_SECONDS, pending)
                return None
            stored = entry[1]
        if stored is None or stored.startswith(PENDING):
            if stored is not None and stored != pending:
                raise _reused()
            raise IdempotencyConflict("A request with this Idempotency-Key is still in progress.", headers={"retry-after": "1"})
        answer = orjson.loads(stored)
        if answer.get("fingerprint", fingerprint) != fingerprint:
            raise _reused()
        return answer

    async def save(self, name: str, request_id: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes, fingerprint: str = "") -> None:
        if len(body) > MAX_STORED_BYTES:
            return await self.release(name)
        value = orjson.dumps({"request_id": request_id, "status": status, "headers": [[k.decode(), v.decode()] for k, v in headers],
                              "body": body.decode("utf-8", "replace"), "fingerprint": fingerprint})
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


@dataclass
class Claim:
    name: str
    fingerprint: str
    stored: dict | None  # the earlier answer to replay, or None: this request runs


def fingerprint(body: dict) -> str:
    """SHA-256 of the body's canonical JSON (sorted keys): the same request however its keys are ordered."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def run_once(rt, exchange, serve) -> None:
    """The pipeline's one call for Idempotency-Key: without the header, `serve(rt, exchange)`; with it,
    claim the key, then replay the stored answer, or serve and store what was answered (or release the
    claim). A claim refused (reused key, one in progress, the store down) raises before serving."""
    conn = exchange.conn
    header = conn.header(b"idempotency-key")
    if not header:
        await serve(rt, exchange)
        return
    claim = await _claim(rt.idempotency, exchange.key.id, header, exchange.body)
    if claim.stored is not None:  # a retry: the stored answer, no upstream call, no charge
        await _replay(conn, claim.stored)
    else:
        await _serve_and_store(rt, exchange, serve, claim)


async def _claim(store: IdempotencyStore, key_id: int, header: str, body: dict) -> Claim:
    if len(header) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters.", param="Idempotency-Key", code="invalid_idempotency_key")
    name, digest = redis_keys.idempotency(key_id, header), fingerprint(body)
    return Claim(name, digest, await store.claim(name, digest))


async def _replay(conn, stored: dict) -> None:
    headers = [(k.encode(), v.encode()) for k, v in stored["headers"]] + [(b"idempotent-replayed", b"true")]
    conn.request_id = stored["request_id"]  # the answer is the original request's
    await conn.respond(stored["status"], stored["body"].encode(), headers)


async def _serve_and_store(rt, exchange, serve, claim: Claim) -> None:
    store, conn = rt.idempotency, exchange.conn
    conn.captured = []
    record = None
    try:
        record = await serve(rt, exchange)
    except (ClientGone, asyncio.CancelledError):
        if conn.started and len(conn.captured) > 2 and (b"content-type", b"text/event-stream") in conn.captured[1]:
            # The client left mid-stream: what was delivered was charged, so it is the answer a retry gets.
            status, headers, *chunks = conn.captured
            chunks.append(_interrupted(conn, chunks))
            await store.save(claim.name, conn.request_id, status, headers, b"".join(chunks), claim.fingerprint)
        else:
            await store.release(claim.name)
        raise
    except BaseException:
        await store.release(claim.name)
        raise
    if record is not None and record.status_code == 200 and conn.captured:
        status, headers, *chunks = conn.captured
        await store.save(claim.name, conn.request_id, status, headers, b"".join(chunks), claim.fingerprint)
    else:
        await store.release(claim.name)


def _interrupted(conn, chunks: list[bytes]) -> bytes:
    """The error event ending a stored partial stream, in the stream's own format and with its id."""
    first = next((c for c in chunks if c.startswith(b"data: {")), b"")
    encode = messages.encode_error if conn.scope["path"] in messages.PATHS else encode_error
    if conn.scope["path"] == responses.PATH:
        encode = responses.replay_error(chunks)
    return encode(ReplayIncomplete(
        "The original request's stream was interrupted by the client; this is what it delivered and "
        "was charged for. Send a new Idempotency-Key for a new answer."), chunk_id(first[6:].strip()) or conn.request_id)
