"""Anthropic Messages wire format for the mock upstream: POST /v1/messages (whole and SSE stream).

Follows PROVIDERS.md §2: x-api-key + anthropic-version headers, max_tokens required, usage split into
input / cache read / cache creation, and the full stream sequence message_start → content_block_start
→ ping → content_block_delta* → content_block_stop → message_delta → message_stop.
"""

import asyncio
import json

from aiohttp import web

from tests.upstream.server import REPLY_WORDS, LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "test-key"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
               404: "not_found_error", 409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}
TOOL_INPUT = {"city": "Paris"}


def _error(status: int, message: str, headers=None):
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}, "request_id": "req_mock"}
    return web.json_response(body, status=status, headers=headers)


def _texts(body: dict) -> list[str]:
    """Every text the prompt carries (system, text blocks, tool results), for the word-count tokenizer."""
    system = body.get("system") or []
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system]
    for message in body.get("messages") or []:
        content = message.get("content")
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                texts.append(inner if isinstance(inner, str) else " ".join(b.get("text", "") for b in inner or []))
    return texts


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _sse(kind: str, payload: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def add_routes(app: web.Application, upstream) -> None:
    async def messages(request):
        if request.headers.get("x-api-key") != EXPECTED_KEY:
            return _error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "There was an error parsing the body of your request.")
        model = str(body.get("model", "echo"))
        if not isinstance(body.get("max_tokens"), int):
            return _error(400, "max_tokens: Field required")
        status = await upstream.behave(model)
        if model == "reset":
            request.transport.close()
            raise asyncio.CancelledError()
        if status:
            headers = {"retry-after": "1"} if status == 429 else None
            return _error(status, f"Mock failure {status}; key sk-ant-api03-secretsecret at http://10.1.2.3/internal", headers)

        prompt_tokens = count_prompt_tokens(_texts(body))
        cached = 2 if prompt_tokens > 10 else 0
        # "cache-write": the rest of the prompt but one token is written to the cache (priced apart).
        written = prompt_tokens - cached - 1 if model == "cache-write" and prompt_tokens > cached + 1 else 0
        words = REPLY_WORDS[: min(body["max_tokens"], len(REPLY_WORDS))]
        tools = body.get("tools") or []
        tool = tools[0] if tools and "use tool" in _last_user_text(body) else None
        stop_reason = "tool_use" if tool else "max_tokens" if len(words) < len(REPLY_WORDS) else "end_turn"
        upstream_id = upstream.next_id("msg_mock")
        usage = {"input_tokens": prompt_tokens - cached - written, "cache_creation_input_tokens": written, "cache_read_input_tokens": cached,
                 "output_tokens": len(words)}
        tool_block = {"type": "tool_use", "id": upstream.next_id("toolu_mock"), "name": tool["name"], "input": TOOL_INPUT} if tool else None

        if not body.get("stream"):
            upstream.record(LedgerEntry(upstream_id, "anthropic", model, prompt_tokens, len(words), False, True))
            content = [{"type": "text", "text": " ".join(words)}] + ([tool_block] if tool_block else [])
            answer = {"id": upstream_id, "type": "message", "role": "assistant", "model": model, "content": content,
                      "stop_reason": stop_reason, "stop_sequence": None}
            if model != "nousage":
                answer["usage"] = usage
            return web.json_response(answer, headers={"request-id": "req_mock"})

        entry = upstream.record(LedgerEntry(upstream_id, "anthropic", model, prompt_tokens, 0, True, False))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        with_usage = model != "nousage"
        start_usage = {**usage, "output_tokens": 1} if with_usage else None
        message = {"id": upstream_id, "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None, **({"usage": start_usage} if with_usage else {})}
        await response.write(_sse("message_start", {"message": message}))
        await response.write(_sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        await response.write(_sse("ping", {}))
        for index, word in enumerate(words):
            if model == "stall" and index == 2:
                await asyncio.sleep(3600)
            text = word if index == 0 else " " + word
            await response.write(_sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}))
            entry.completion_tokens = index + 1
            if upstream.chunk_delay:
                await asyncio.sleep(upstream.chunk_delay)
        await response.write(_sse("content_block_stop", {"index": 0}))
        if tool_block:
            await response.write(_sse("content_block_start", {"index": 1, "content_block": {**tool_block, "input": {}}}))
            for piece in ("", '{"city": ', '"Paris"}'):
                await response.write(_sse("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}}))
            await response.write(_sse("content_block_stop", {"index": 1}))
        delta = {"delta": {"stop_reason": stop_reason, "stop_sequence": None}}
        await response.write(_sse("message_delta", {**delta, **({"usage": {"output_tokens": len(words)}} if with_usage else {})}))
        await response.write(_sse("message_stop", {}))
        entry.completed = True
        await response.write_eof()
        return response

    async def count_tokens(request):
        if request.headers.get("x-api-key") != EXPECTED_KEY:
            return _error(401, "invalid x-api-key")
        body = await request.json()
        status = await upstream.behave(str(body.get("model", "echo")))
        if status:
            return _error(status, f"Mock failure {status}")
        return web.json_response({"input_tokens": count_prompt_tokens(_texts(body))})

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
