"""The demo provider: answers in-process, deterministically, in OpenAI format (streaming too).

It lets `make run` give a working chat call with no internet. Requests go through the same
pipeline as a real upstream (admission, usage, billing); only the transport is local. It takes about
as long as a small real model (TOLLGATE_DEMO_FIRST_BYTE_MS before the first byte, then
TOLLGATE_DEMO_CHUNK_MS per word, ±30 %), so latency and time-to-first-token charts show something;
both 0 answer at once (the tests' default).
"""

import asyncio
import hashlib
import random
import time

import orjson

from wire import tokens
from wire.adapters import rerank
from wire.adapters.base import LocalResponse, UpstreamRequest
from wire.adapters.openai import OpenAIAdapter

REPLY = "This is Tollgate's demo model answering locally. You said: "
EMBEDDING_DIMENSIONS = 16


def _last_user_text(messages) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _no_pace() -> tuple[int, int]:
    return 0, 0


# (first byte, per word) in milliseconds: the relay replaces this with its settings' (relay.apps), so
# the wire stays free of Django; answering at once is the default.
pace_ms = _no_pace


def _pace() -> tuple[float, float]:
    """(first byte, per word) in seconds, jittered like a real upstream's."""
    first_ms, per_word_ms = pace_ms()
    first, per_word = first_ms / 1000, per_word_ms / 1000
    if first <= 0 and per_word <= 0:
        return 0.0, 0.0
    return first * random.uniform(0.7, 1.3), per_word * random.uniform(0.7, 1.3)


async def _wait(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((byte - 128) / 128, 6) for byte in digest[:EMBEDDING_DIMENSIONS]]


def rerank_score(query: str, text: str) -> float:
    """Deterministic: the share of the query's words the document has, with a hash-based tie-break below 0.1."""
    wanted = set(query.lower().split())
    shared = len(wanted & set(text.lower().split())) / max(1, len(wanted))
    jitter = int.from_bytes(hashlib.sha256(f"{query}\n{text}".encode()).digest()[:2], "big") / 65536
    return round(0.9 * shared + 0.1 * jitter, 6)


def _rerank_answer(body: dict) -> dict:
    query, texts = str(body.get("query") or ""), rerank.document_texts(body.get("documents") or [])
    ranked = sorted(((rerank_score(query, text), index) for index, text in enumerate(texts)), key=lambda pair: (-pair[0], pair[1]))
    top_n = body.get("top_n") or len(ranked)
    results = [{"index": index, "relevance_score": score} for score, index in ranked[:top_n]]
    prompt = tokens.estimate_prompt("rerank", body)
    return {"id": f"mock-rerank-{hashlib.sha256(orjson.dumps(body)).hexdigest()[:16]}", "results": results,
            "usage": {"total_tokens": prompt}}


class MockAdapter(OpenAIAdapter):
    name = "mock"
    local = True
    endpoints = OpenAIAdapter.endpoints | {"rerank"}

    def parse_response(self, *, endpoint: str, body: bytes, target, model: str):
        if endpoint == "rerank":  # answered in Jina's shape, read as any rerank provider's
            return rerank.adapter.parse_response(endpoint=endpoint, body=body, target=target, model=model)
        return super().parse_response(endpoint=endpoint, body=body, target=target, model=model)

    def url(self, target, endpoint):
        return f"mock://local/{endpoint}"

    def auth_headers(self, target):
        return {}

    async def local_call(self, request: UpstreamRequest, endpoint: str) -> LocalResponse:
        body = orjson.loads(request.body)
        model = body.get("model", "demo")
        created = int(time.time())
        first_byte, per_word = _pace()
        await _wait(first_byte)
        if endpoint == "embeddings":
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
            data = [{"object": "embedding", "index": i, "embedding": _embedding(str(text))} for i, text in enumerate(inputs)]
            prompt = sum(tokens.count_text(str(text)) for text in inputs)
            answer = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
            return LocalResponse(200, _once(orjson.dumps(answer)))
        if endpoint == "rerank":
            return LocalResponse(200, _once(orjson.dumps(_rerank_answer(body))))
        said = body.get("prompt") if endpoint == "completions" else _last_user_text(body.get("messages"))
        text = REPLY + str(said or "")[:200]
        prompt_tokens = tokens.estimate_prompt(endpoint, body)
        words = text.split(" ")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0:
            words = words[:limit]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words), "total_tokens": prompt_tokens + len(words)}
        request_id = f"mock-{hashlib.sha256(request.body).hexdigest()[:16]}"
        if not body.get("stream"):
            await _wait(per_word * len(words))  # a whole answer comes when it is all written
            if endpoint == "completions":
                choice = {"index": 0, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
                answer = {"id": request_id, "object": "text_completion", "created": created, "model": model, "choices": [choice], "usage": usage}
            else:
                message = {"role": "assistant", "content": " ".join(words)}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                answer = {"id": request_id, "object": "chat.completion", "created": created, "model": model, "choices": [choice], "usage": usage}
            return LocalResponse(200, _once(orjson.dumps(answer)))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return LocalResponse(200, _stream(request_id, model, created, words, usage if include_usage else None, endpoint, per_word))


async def _once(payload: bytes):
    yield payload


async def _stream(request_id, model, created, words, usage, endpoint, per_word=0.0):
    kind = "text_completion" if endpoint == "completions" else "chat.completion.chunk"
    for index, word in enumerate(words):
        piece = word if index == 0 else " " + word
        if endpoint == "completions":
            choice = {"index": 0, "text": piece, "finish_reason": None}
        else:
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
        yield b"data: " + orjson.dumps({"id": request_id, "object": kind, "created": created, "model": model, "choices": [choice]}) + b"\n\n"
        await asyncio.sleep(per_word)
    last = {"index": 0, "text": "", "finish_reason": "stop"} if endpoint == "completions" else {"index": 0, "delta": {}, "finish_reason": "stop"}
    yield b"data: " + orjson.dumps({"id": request_id, "object": kind, "created": created, "model": model, "choices": [last]}) + b"\n\n"
    if usage:
        yield b"data: " + orjson.dumps({"id": request_id, "object": kind, "created": created, "model": model, "choices": [], "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


adapter = MockAdapter()


# -- Anthropic's Messages format (/v1/messages), for clients such as Claude Code --
def _user_text(messages) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
            return str(content or "")
    return ""


def _event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


async def messages_call(body: dict, endpoint: str) -> LocalResponse:
    """The demo model's answer in Anthropic's format: whole, streamed, or a token count."""
    prompt_tokens = tokens.estimate_prompt("messages", body)
    if endpoint == "count_tokens":
        return LocalResponse(200, _once(orjson.dumps({"input_tokens": prompt_tokens})))
    first_byte, per_word = _pace()
    await _wait(first_byte)
    words = (REPLY + _user_text(body.get("messages"))[:200]).split(" ")
    limit = body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        words = words[:limit]
    stop_reason = "max_tokens" if isinstance(limit, int) and limit == len(words) else "end_turn"
    message_id = f"msg_demo_{hashlib.sha256(orjson.dumps(body)).hexdigest()[:16]}"
    model = body.get("model", "demo")
    usage = {"input_tokens": prompt_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": len(words)}
    if not body.get("stream"):
        await _wait(per_word * len(words))
        answer = {"id": message_id, "type": "message", "role": "assistant", "model": model,
                  "content": [{"type": "text", "text": " ".join(words)}], "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
        return LocalResponse(200, _once(orjson.dumps(answer)))
    return LocalResponse(200, _message_events(message_id, model, words, usage, stop_reason, per_word))


async def _message_events(message_id, model, words, usage, stop_reason, per_word):
    start = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
             "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    yield _event("message_start", {"message": start})
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield _event("ping", {})
    for index, word in enumerate(words):
        yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word if index == 0 else " " + word}})
        await asyncio.sleep(per_word)
    yield _event("content_block_stop", {"index": 0})
    yield _event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": len(words)}})
    yield _event("message_stop", {})
