"""Gemini API wire format for the mock upstream (PROVIDERS.md §3), under /v1beta:

  POST /models/{model}:generateContent
  POST /models/{model}:streamGenerateContent?alt=sse   (without alt=sse: one JSON array, as Google does)
  POST /models/{model}:batchEmbedContents
"""

import asyncio
import json

from aiohttp import web

from tests.upstream.server import REPLY_WORDS, LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "test-key"
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
              429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _error(status: int, message: str, details=None, headers=None):
    error = {"code": status, "message": message, "status": RPC_STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status, headers=headers)


def _texts(body: dict) -> list[str]:
    texts = [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts") or []]
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            if "text" in part:
                texts.append(part["text"])
            elif "functionResponse" in part:
                texts.append(json.dumps(part["functionResponse"].get("response")))
    return texts


def _last_user_text(body: dict) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            return " ".join(p.get("text", "") for p in content.get("parts") or [])
    return ""


def add_routes(app: web.Application, upstream) -> None:
    async def dispatch(request):
        model, _, method = request.match_info["target"].partition(":")
        # Real Gemini answers a bad key with 400 API_KEY_INVALID; the harness wants 401 for every format,
        # so the mock keeps Google's body (and reason) with a 401.
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key != EXPECTED_KEY:
            reason = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
            return _error(401, "API key not valid. Please pass a valid API key.", reason)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON payload received.")
        status = await upstream.behave(model)
        if model == "reset":
            request.transport.close()
            raise asyncio.CancelledError()
        if status:
            details, headers = None, None
            if status == 429:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
                headers = {"Retry-After": "1"}
            return _error(status, f"Mock failure {status} (key AIzaSyMockMockMockMockMockMock at http://10.1.2.3/x)", details, headers)
        if method == "batchEmbedContents":
            return embed(model, body)
        if method == "generateContent":
            return generate(model, body)
        if method == "streamGenerateContent":
            return await stream(request, model, body)
        return _error(404, f"Method {method} not found.")

    def reply(model: str, body: dict):
        config = body.get("generationConfig") or {}
        limit = config.get("maxOutputTokens") or len(REPLY_WORDS)
        words = REPLY_WORDS[: min(limit, len(REPLY_WORDS))]
        declarations = [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
        call = None
        if declarations and "use tool" in _last_user_text(body):
            call = {"functionCall": {"name": declarations[0]["name"], "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLW1vY2s="}
        finish = "STOP" if call or len(words) == len(REPLY_WORDS) else "MAX_TOKENS"
        return words, call, finish

    def usage(prompt_tokens: int, completion: int) -> dict:
        cached = 2 if prompt_tokens > 10 else 0
        meta = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": completion, "totalTokenCount": prompt_tokens + completion}
        return {**meta, "cachedContentTokenCount": cached} if cached else meta

    def generate(model: str, body: dict):
        prompt_tokens = count_prompt_tokens(_texts(body))
        words, call, finish = reply(model, body)
        upstream_id = upstream.next_id("gem-mock")
        upstream.record(LedgerEntry(upstream_id, "gemini", model, prompt_tokens, len(words), False, True))
        parts = [{"text": " ".join(words)}] + ([call] if call else [])
        answer = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
                  "modelVersion": model, "responseId": upstream_id}
        if model != "nousage":
            answer["usageMetadata"] = usage(prompt_tokens, len(words))
        return web.json_response(answer)

    async def stream(request, model: str, body: dict):
        prompt_tokens = count_prompt_tokens(_texts(body))
        words, call, finish = reply(model, body)
        upstream_id = upstream.next_id("gem-mock")
        entry = upstream.record(LedgerEntry(upstream_id, "gemini", model, prompt_tokens, 0, True, False))
        sse = request.query.get("alt") == "sse"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if sse else "application/json"})
        await response.prepare(request)
        pieces = [[{"text": w if i == 0 else " " + w}] for i, w in enumerate(words)] + ([[call]] if call else [])
        for index, parts in enumerate(pieces):
            if model == "stall" and index == 2:
                await asyncio.sleep(3600)
            last = index == len(pieces) - 1
            candidate = {"content": {"role": "model", "parts": parts}, "index": 0, **({"finishReason": finish} if last else {})}
            produced = min(index + 1, len(words))
            chunk = {"candidates": [candidate], "modelVersion": model, "responseId": upstream_id}
            if model != "nousage":
                chunk["usageMetadata"] = usage(prompt_tokens, produced)
            # Google separates SSE events with CRLF pairs; a non-SSE stream is a JSON array written piecewise.
            if sse:
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
            else:
                await response.write((b"[" if index == 0 else b",\r\n") + json.dumps(chunk).encode() + (b"]" if last else b""))
            entry.completion_tokens = produced
            if upstream.chunk_delay:
                await asyncio.sleep(upstream.chunk_delay)
        entry.completed = True
        await response.write_eof()
        return response

    def embed(model: str, body: dict):
        requests = body.get("requests") or []
        if not requests or any(r.get("model") != f"models/{model}" for r in requests):
            return _error(400, "Each request's model must match the URL's model.")
        texts = [" ".join(p.get("text", "") for p in (r.get("content") or {}).get("parts") or []) for r in requests]
        upstream.record(LedgerEntry(upstream.next_id("gem-emb"), "gemini", model, count_prompt_tokens(texts) - 3, 0, False, True))
        size = requests[0].get("outputDimensionality") or 4
        embeddings = [{"values": [round(0.1 * (i + 1), 3)] + [0.25] * (size - 1)} for i, _ in enumerate(texts)]
        return web.json_response({"embeddings": embeddings})

    app.router.add_post("/v1beta/models/{target}", dispatch)
