"""The exact response cache (README "Response cache"): opt-in per key or per model, for chat, completions,
embeddings, Anthropic Messages and stateless OpenAI Responses, each replayed in its own protocol (wire.replay).

For a request that opted in, the one added step is a lookup (a Redis GET, or the in-process store
without Redis); a hit is answered here, whole or replayed as a stream, at no cost, and never reaches
admission or an upstream. A miss goes on as usual and its answer is stored after the response has been
sent, off the response path, when it may be: a 200 with no error, a stream that ended normally, no tool
calls unless allowed, no larger than TOLLGATE_RESPONSE_CACHE_MAX_ENTRY_BYTES. Sandbox keys never use it.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from decimal import Decimal

import orjson
from django.conf import settings

from relay.record import Record
from wire import redis_keys
from wire.replay import answer_from_stream, cacheable, calls_tools, deterministic, fingerprint, stream_of
from wire.replay_responses import echo

log = logging.getLogger(__name__)

HEADER = b"x-tollgate-cache"


class Lookup:
    """One opted-in request's cache state; the pipeline fills `payload` when the upstream's answer was
    delivered whole, `chunks` when it was delivered as a complete stream."""

    __slots__ = ("allow_tools", "chunks", "name", "payload", "read")

    def __init__(self, name: str, read: bool, allow_tools: bool):
        self.name, self.read, self.allow_tools = name, read, allow_tools
        self.payload = self.chunks = None

    @property
    def headers(self) -> list:
        return [(HEADER, b"miss" if self.read else b"bypass")]


class ResponseCache:
    def __init__(self, store):
        self.store = store
        self.ttl = settings.TOLLGATE_RESPONSE_CACHE_SECONDS
        self.max_entry = settings.TOLLGATE_RESPONSE_CACHE_MAX_ENTRY_BYTES
        self._writes: set[asyncio.Task] = set()

    def plan(self, conn, key, model, endpoint: str, body: dict) -> Lookup | None:
        """None unless the key or the model opted in and this request may be cached."""
        if not (key.response_cache or model.response_cache) or key.sandbox or not cacheable(endpoint, body):
            return None
        if not deterministic(endpoint, body) and not (
            (key.response_cache and key.cache_any_temperature) or (model.response_cache and model.cache_any_temperature)
        ):
            return None
        control = (conn.header(b"cache-control") or "").lower()
        if "no-store" in control:
            return None
        allow_tools = (key.response_cache and key.cache_tool_calls) or (model.response_cache and model.cache_tool_calls)
        # Anthropic's beta header turns features on for the same body: another answer (relay.messages forwards it).
        variant = (conn.header(b"anthropic-beta") or "") if endpoint == "messages" else ""
        name = redis_keys.response_cache(key.organization_id, fingerprint(endpoint, body, variant))
        return Lookup(name, "no-cache" not in control, allow_tools)

    async def serve(self, conn, key, model, endpoint: str, body: dict, lookup: Lookup, sink) -> Record | None:
        """Answer from the cache, or None on a miss."""
        raw = await self.store.get(lookup.name) if lookup.read else None
        if raw is None:
            return None
        entry = orjson.loads(raw)
        stream = bool(body.get("stream")) and endpoint != "embeddings"
        record = Record(conn.request_id, key, model, endpoint, stream, body)
        record.cache_hit = True
        answer = echo(entry["answer"], body) if endpoint == "responses" else entry["answer"]
        tokens = entry.get("tokens")
        if tokens is None:  # an entry written before entries kept their tokens: chat's usage
            usage = answer.get("usage") or {}
            tokens = [usage.get("prompt_tokens"), usage.get("completion_tokens"), (usage.get("prompt_tokens_details") or {}).get("cached_tokens")]
        record.prompt_tokens, record.completion_tokens, record.cached_tokens = (int(number or 0) for number in tokens)
        record.usage_source = entry["source"]
        record.would_have_cost = Decimal(entry["cost"]) if entry["cost"] is not None else None
        record.status_code = 200
        headers = [(HEADER, b"hit"), (b"x-tollgate-model", model.name.encode())]
        try:
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                await conn.respond(200, stream_of(endpoint, answer, include_usage),
                                   [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), *headers])
            else:
                await conn.respond(200, orjson.dumps(answer), [(b"content-type", b"application/json"), *headers])
        finally:
            record.finish()
            sink.emit(record.as_usage())
        return record

    def keep(self, record: Record) -> None:
        """After the response: store the answer if it may be cached (a write in the background)."""
        lookup = record.cache
        if record.status_code != 200 or record.error_type or record.downgraded_from or (lookup.payload is None and lookup.chunks is None):
            return
        usage = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
                 "total_tokens": record.prompt_tokens + record.completion_tokens}
        try:
            if lookup.payload is not None:
                answer = orjson.loads(lookup.payload)
            else:
                answer = answer_from_stream(record.endpoint, lookup.chunks, usage)
        except (ValueError, TypeError, AttributeError, KeyError):
            return
        if not isinstance(answer, dict) or (not lookup.allow_tools and calls_tools(record.endpoint, answer)):
            return
        cost = record.cost_display if record.cost_display is not None else None
        # The tokens billed, whatever the protocol's usage shape (a hit's ledger row repeats them).
        tokens = [record.prompt_tokens, record.completion_tokens, record.cached_tokens]
        entry = orjson.dumps({"answer": answer, "tokens": tokens, "source": record.usage_source, "cost": str(cost) if cost is not None else None})
        if len(entry) > self.max_entry:
            return
        task = asyncio.ensure_future(self._put(lookup.name, entry))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, name: str, entry: bytes) -> None:
        try:
            await self.store.put(name, entry, self.ttl)
        except Exception as exc:  # the cache is an optimisation: a failed write only costs a later miss
            log.warning("response cache write failed: %s", exc.__class__.__name__)


class RedisAnswerStore:
    def __init__(self, redis):
        self._redis = redis

    async def get(self, name: str) -> bytes | None:
        try:
            return await self._redis.get(name)
        except Exception as exc:  # Redis away: a miss, never an error (README "What fails open")
            log.warning("response cache read failed: %s", exc.__class__.__name__)
            return None

    async def put(self, name: str, entry: bytes, ttl: int) -> None:
        await self._redis.set(name, entry, ex=ttl)


class LocalAnswerStore:
    """Without Redis: an in-process LRU bounded in bytes (each process keeps its own)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0

    async def get(self, name: str) -> bytes | None:
        held = self._entries.get(name)
        if held is None:
            return None
        if held[0] <= time.monotonic():
            self._drop(name)
            return None
        self._entries.move_to_end(name)
        return held[1]

    async def put(self, name: str, entry: bytes, ttl: int) -> None:
        if len(entry) > self.max_bytes:
            return
        self._drop(name)
        self._entries[name] = (time.monotonic() + ttl, entry)
        self.size += len(entry)
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, name: str) -> None:
        held = self._entries.pop(name, None)
        if held is not None:
            self.size -= len(held[1])
