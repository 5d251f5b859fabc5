"""Azure OpenAI wire format for the mock upstream (PROVIDERS.md §4): OpenAI bodies, Azure URLs and auth.

  POST /openai/deployments/{deployment}/chat/completions|completions|embeddings?api-version=…
  POST /openai/v1/chat/completions|completions|embeddings   (v1 API: deployment in `model`, no api-version)

Auth is the `api-key` header. Streams start with Azure's prompt-filter chunk (empty `choices`).
"""

import asyncio
import functools
import json
import time

from aiohttp import web

from tests.upstream.server import REPLY_WORDS, LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "test-key"
FILTER_OK = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}


def _error(status: int, message: str, headers=None):
    return web.json_response({"error": {"code": str(status), "message": message}}, status=status, headers=headers)


def _texts(body: dict) -> list[str]:
    texts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            texts += [p.get("text", "") for p in content if isinstance(p, dict)]
        elif content:
            texts.append(str(content))
    return texts + ([str(body["prompt"])] if body.get("prompt") else [])


def add_routes(app: web.Application, upstream) -> None:
    async def handle(request, operation: str):
        deployment = request.match_info.get("deployment")
        if deployment and not request.query.get("api-version"):
            return _error(404, "Resource not found")
        if request.headers.get("api-key") != EXPECTED_KEY:
            return _error(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                               "key for an active subscription and use a correct regional API endpoint for your resource.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON body.")
        model = deployment or str(body.get("model", "echo"))
        status = await upstream.behave(model)
        if model == "reset":
            request.transport.close()
            raise asyncio.CancelledError()
        if status == 429:
            return _error(429, "Requests to the ChatCompletions_Create Operation have exceeded the rate limit. Please retry after 1 second.",
                          {"Retry-After": "1", "retry-after-ms": "1000"})
        if status:
            return _error(status, f"Mock failure {status} at https://mock.openai.azure.com/internal")
        if operation == "embeddings":
            return embeddings(model, body)
        return await chat(request, model, body, operation == "completions")

    def embeddings(model: str, body: dict):
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        prompt_tokens = count_prompt_tokens([str(i) for i in inputs]) - 3
        upstream.record(LedgerEntry(upstream.next_id("azemb-mock"), "azure", model, prompt_tokens, 0, False, True))
        data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i, _ in enumerate(inputs)]
        return web.json_response({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})

    async def chat(request, model: str, body: dict, legacy: bool):
        prompt_tokens = count_prompt_tokens(_texts(body))
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(REPLY_WORDS)
        words = REPLY_WORDS[: min(limit, len(REPLY_WORDS))]
        finish = "stop" if len(words) == len(REPLY_WORDS) else "length"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words), "total_tokens": prompt_tokens + len(words),
                 "prompt_tokens_details": {"cached_tokens": 2 if prompt_tokens > 10 else 0}}
        upstream_id, created = upstream.next_id("chatcmpl-azmock"), int(time.time())
        kind = "text_completion" if legacy else "chat.completion"
        if not body.get("stream"):
            upstream.record(LedgerEntry(upstream_id, "azure", model, prompt_tokens, len(words), False, True))
            if legacy:
                choice = {"index": 0, "text": " ".join(words), "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": finish,
                          "content_filter_results": FILTER_OK}
            answer = {"id": upstream_id, "object": kind, "created": created, "model": model, "choices": [choice],
                      "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER_OK}]}
            if model != "nousage":
                answer["usage"] = usage
            return web.json_response(answer)

        entry = upstream.record(LedgerEntry(upstream_id, "azure", model, prompt_tokens, 0, True, False))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and model != "nousage"

        async def emit(choices, **extra):
            payload = {"id": upstream_id, "object": "chat.completion.chunk" if not legacy else kind, "created": created,
                       "model": model, "choices": choices, **extra}
            await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

        await emit([], prompt_filter_results=[{"prompt_index": 0, "content_filter_results": FILTER_OK}])
        for index, word in enumerate(words):
            if model == "stall" and index == 2:
                await asyncio.sleep(3600)
            piece = word if index == 0 else " " + word
            if legacy:
                await emit([{"index": 0, "text": piece, "finish_reason": None}])
            else:
                delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
                await emit([{"index": 0, "delta": delta, "finish_reason": None, "content_filter_results": FILTER_OK}])
            entry.completion_tokens = index + 1
            if upstream.chunk_delay:
                await asyncio.sleep(upstream.chunk_delay)
        last = {"index": 0, "text": "", "finish_reason": finish} if legacy else {"index": 0, "delta": {}, "finish_reason": finish}
        await emit([last])
        if include_usage:
            await emit([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        entry.completed = True
        await response.write_eof()
        return response

    for operation, path in (("chat", "chat/completions"), ("completions", "completions"), ("embeddings", "embeddings")):
        handler = functools.partial(handle, operation=operation)
        app.router.add_post(f"/openai/deployments/{{deployment}}/{path}", handler)
        app.router.add_post(f"/openai/v1/{path}", handler)
