"""OpenAI wire format for the mock upstream: /v1/chat/completions, /v1/completions, /v1/embeddings."""

import asyncio
import time

from aiohttp import web

from tests.upstream.server import REPLY_WORDS, LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "test-key"


def _error(status: int, message: str, kind: str = "api_error", code=None, headers=None):
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status, headers=headers)


def _texts(body: dict) -> list[str]:
    texts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            texts += [p.get("text", "") for p in content if isinstance(p, dict)]
        elif content:
            texts.append(str(content))
    prompt = body.get("prompt")
    if prompt:
        texts.append(str(prompt))
    return texts


def add_routes(app: web.Application, upstream) -> None:
    async def guard(request):
        if request.headers.get("Authorization") != f"Bearer {EXPECTED_KEY}":
            return None, _error(401, "Incorrect API key provided: sk-wrong****. You can find your API key at https://platform.openai.com.", "invalid_request_error", "invalid_api_key")
        try:
            body = await request.json()
        except Exception:
            return None, _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        model = str(body.get("model", "echo"))
        status = await upstream.behave(model)
        if model == "reset":
            request.transport.close()
            raise asyncio.CancelledError()
        if status:
            headers = {"Retry-After": "1"} if status == 429 else None
            code = "context_length_exceeded" if status == 400 and "context" in model else None
            return None, _error(status, f"Mock failure {status} for http://10.1.2.3/internal", "upstream_error", code, headers)
        return body, None

    async def chat(request, kind="chat"):
        body, error = await guard(request)
        if error is not None:
            return error
        model = body["model"]
        prompt_tokens = count_prompt_tokens(_texts(body))
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(REPLY_WORDS)
        words = REPLY_WORDS[: min(limit, len(REPLY_WORDS))]
        upstream_id = upstream.next_id("chatcmpl-mock")
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words), "total_tokens": prompt_tokens + len(words),
                 "prompt_tokens_details": {"cached_tokens": 2 if prompt_tokens > 10 else 0}}
        if upstream.usage_override is not None:
            usage = upstream.usage_override
        tools = body.get("tools")
        last = (body.get("messages") or [{}])[-1]
        wants_tool = bool(tools) and last.get("role") == "user" and "use tool" in str(last.get("content"))
        if not body.get("stream"):
            upstream.record(LedgerEntry(upstream_id, "openai", model, prompt_tokens, len(words), False, True))
            if kind == "completions":
                choice = {"index": 0, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
                obj = "text_completion"
            elif wants_tool:
                call = {"id": "call_1", "type": "function", "function": {"name": tools[0]["function"]["name"], "arguments": '{"city": "Paris"}'}}
                choice = {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}, "finish_reason": "tool_calls"}
                obj = "chat.completion"
            else:
                message = {"role": "assistant", "content": " ".join(words), "reasoning_content": "thinking..."}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                obj = "chat.completion"
            answer = {"id": upstream_id, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}
            if model != "nousage":
                answer["usage"] = usage
            return web.json_response(answer, headers={"x-upstream-id": upstream_id})
        entry = upstream.record(LedgerEntry(upstream_id, "openai", model, prompt_tokens, 0, True, False))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-upstream-id": upstream_id})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and model != "nousage"
        created = int(time.time())

        def chunk(delta, finish=None):
            if kind == "completions":
                choice = {"index": 0, "text": delta.get("content", ""), "finish_reason": finish}
            else:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"id": upstream_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice],
                    **({"usage": None} if include_usage else {})}

        async def emit(payload):
            await response.write(b"data: " + web.json_response(payload).body + b"\n\n")

        for index, word in enumerate(words):
            if model == "stall" and index == 2:
                await asyncio.sleep(3600)
            delta = {"role": "assistant", "content": word} if index == 0 else {"content": " " + word}
            await emit(chunk(delta))
            entry.completion_tokens = index + 1
            if upstream.chunk_delay:
                await asyncio.sleep(upstream.chunk_delay)
        await emit(chunk({}, "stop"))
        if include_usage:
            await emit({"id": upstream_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        entry.completed = True
        await response.write_eof()
        return response

    async def completions(request):
        return await chat(request, "completions")

    async def embeddings(request):
        body, error = await guard(request)
        if error is not None:
            return error
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        prompt_tokens = count_prompt_tokens([str(i) for i in inputs]) - 3
        upstream.record(LedgerEntry(upstream.next_id("emb-mock"), "openai", body["model"], prompt_tokens, 0, False, True))
        data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i, _ in enumerate(inputs)]
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
