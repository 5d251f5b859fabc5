"""Google Gemini API (generateContent, streamGenerateContent, batchEmbedContents) behind OpenAI's format.

Wire facts: ../shared/PROVIDERS.md §3. REST is camelCase. Simple parameters are data (PARAMS);
contents, tools, responses, stream events and errors are small hooks.
"""

import mimetypes
import re
import time
import uuid

import orjson

from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.adapters.openai import chat_chunk
from wire.adapters.reasoning import gemini_thinking
from wire.adapters.translation import (
    apply_params,
    choice,
    classify_error,
    completion,
    error_object,
    functions,
    load_json,
    split_data_url,
    text_of,
    walk_messages,
)
from wire.errors import InvalidRequest, UpstreamError, sanitize_upstream_message
from wire.sse import SSEEvent
from wire.usage import usage_number

_listify = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
# OpenAI parameter -> (Gemini dotted path, transform). Anything not listed is dropped.
PARAMS = {
    "temperature": ("generationConfig.temperature", None),
    "top_p": ("generationConfig.topP", None),
    "top_k": ("generationConfig.topK", None),
    "max_tokens": ("generationConfig.maxOutputTokens", int),
    "max_completion_tokens": ("generationConfig.maxOutputTokens", int),  # after max_tokens: wins
    "stop": ("generationConfig.stopSequences", _listify),
    "n": ("generationConfig.candidateCount", int),
    "presence_penalty": ("generationConfig.presencePenalty", None),
    "frequency_penalty": ("generationConfig.frequencyPenalty", None),
    "seed": ("generationConfig.seed", int),
}
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "MALFORMED_FUNCTION_CALL": "stop", "UNEXPECTED_TOOL_CALL": "stop",
          "TOO_MANY_TOOL_CALLS": "stop", "FINISH_REASON_UNSPECIFIED": "stop"}  # everything else: content_filter
TOOL_MODE = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# Gemini 3 rejects a replayed functionCall without its thoughtSignature, and OpenAI's format has no
# field for it, so it rides in the tool call id the client echoes back.
SIGNATURE_SEP = "__thought__"


def _model_path(target: Target) -> str:
    return f"{target.base_url.rstrip('/')}/models/{target.upstream_model.removeprefix('models/')}"


def _media(url: str, param: str) -> dict:
    inline = split_data_url(url, param)
    if inline:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    return {"fileData": {"mimeType": mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg", "fileUri": url}}


def _part(kind: str, value, param: str) -> dict | None:
    if kind == "text":
        return {"text": value}
    if kind == "image_url":
        return _media(value.get("url", ""), f"{param}.image_url")
    if kind == "input_audio":
        return {"inlineData": {"mimeType": f"audio/{value.get('format', 'wav')}", "data": value.get("data", "")}}
    if kind == "file" and value.get("file_data"):
        return _media(value["file_data"], f"{param}.file")
    return None


def _call(call: dict, args: dict) -> dict:
    part = {"functionCall": {"name": (call.get("function") or {}).get("name"), "args": args}}
    _, sep, signature = (call.get("id") or "").partition(SIGNATURE_SEP)
    if sep:
        part["thoughtSignature"] = signature
    return part


def _result(message: dict, param: str, names: dict) -> dict:
    name = names.get(message.get("tool_call_id")) or message.get("name")
    if not name:
        raise InvalidRequest("tool_call_id does not match an earlier assistant tool call.", param=f"{param}.tool_call_id")
    text = text_of(message.get("content"))
    try:
        response = orjson.loads(text)
    except orjson.JSONDecodeError:
        response = None
    # `response` must be an object; Google's convention puts plain output under "output".
    return {"functionResponse": {"name": name, "response": response if isinstance(response, dict) else {"output": text}}}


def build_contents(messages: list) -> tuple[str, list[dict]]:
    return walk_messages(messages, model_role="model", key="parts", part=_part, call=_call, result=_result)


def build_tools(body: dict, payload: dict) -> None:
    declarations = []
    for fn in functions(body):
        spec = {"name": fn.get("name"), "description": fn.get("description") or ""}
        if fn.get("parameters"):
            spec["parametersJsonSchema"] = fn["parameters"]  # full JSON Schema, unlike `parameters` (an OpenAPI subset)
        declarations.append(spec)
    if not declarations:
        return
    payload["tools"] = [{"functionDeclarations": declarations}]
    wanted = body.get("tool_choice")
    if isinstance(wanted, dict):
        payload["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [(wanted.get("function") or {}).get("name")]}}
    elif wanted in TOOL_MODE:
        payload["toolConfig"] = {"functionCallingConfig": {"mode": TOOL_MODE[wanted]}}
    elif wanted is not None:
        raise InvalidRequest("tool_choice must be auto, required, none or a named function.", param="tool_choice")


def usage_from(meta: dict | None) -> Usage | None:
    if not meta:
        return None
    # promptTokenCount already includes cached tokens; thoughts are billed as output. Tool-use prompt
    # tokens (e.g. grounding results) are billed input, so prompt + completion = totalTokenCount.
    # Every figure through usage_number (a non-number raises MalformedUsage); Record.usage bounds the sums.
    prompt = usage_number(meta.get("promptTokenCount")) + usage_number(meta.get("toolUsePromptTokenCount"))
    completion = usage_number(meta.get("candidatesTokenCount")) + usage_number(meta.get("thoughtsTokenCount"))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=usage_number(meta.get("cachedContentTokenCount")))


def _finish(reason: str | None, has_calls: bool) -> str | None:
    if reason is None:
        return None
    if reason == "STOP" and has_calls:
        return "tool_calls"
    return FINISH.get(reason, "content_filter")


def _read_parts(parts: list, first_call: int) -> tuple[list[str], list[str], list[dict]]:
    """Candidate parts -> (text, reasoning, OpenAI tool calls numbered from `first_call`)."""
    text, reasoning, calls = [], [], []
    for part in parts:
        if "functionCall" in part:
            fc = part["functionCall"]
            call_id = fc.get("id") or f"call_{first_call + len(calls)}"
            if part.get("thoughtSignature"):
                call_id += SIGNATURE_SEP + part["thoughtSignature"]
            arguments = orjson.dumps(fc.get("args") or {}).decode()
            calls.append({"id": call_id, "type": "function", "function": {"name": fc.get("name"), "arguments": arguments}})
        elif part.get("thought"):
            reasoning.append(part.get("text", ""))
        elif "text" in part:
            text.append(part["text"])
    return text, reasoning, calls


_DELAY = re.compile(r"^([\d.]+)s$")


def map_gemini_error(status: int, error: dict, headers) -> UpstreamError:
    """One classification for HTTP errors and `error` objects inside a stream."""
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    # An invalid key comes back as 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    if error.get("status") in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(d.get("reason") == "API_KEY_INVALID" for d in details):
        status = 401
    if error.get("status") == "FAILED_PRECONDITION":
        # e.g. free tier unavailable in the region, or billing not enabled: the account's problem.
        message = sanitize_upstream_message(error.get("message") or "", limit=200)
        return UpstreamError(message or "Upstream precondition failed.", upstream_status=status, code="upstream_billing")
    delays = [_DELAY.match(str(d.get("retryDelay", ""))) for d in details]  # google.rpc.RetryInfo
    retry_after = next((float(m.group(1)) for m in delays if m), None)
    return classify_error(429 if error.get("status") == "RESOURCE_EXHAUSTED" else status, error.get("message"), headers, retry_after=retry_after)


class GeminiStream:
    """Each SSE `data:` is a whole GenerateContentResponse; usage comes from the last usageMetadata."""

    def __init__(self, request_id: str, model: str):
        self.request_id, self.model, self.created = request_id, model, int(time.time())
        self.usage: Usage | None = None
        self._calls: dict[int, int] = {}  # candidate index -> tool calls emitted so far
        self._started: set[int] = set()

    def _chunk(self, index: int, delta: dict, finish_reason=None) -> dict:
        chunk = chat_chunk(self.request_id, self.model, delta, finish_reason, created=self.created)
        chunk["choices"][0]["index"] = index
        return chunk

    def feed(self, event: SSEEvent) -> list[dict]:
        data = orjson.loads(event.data) if event.data.strip() else {}
        if isinstance(data.get("error"), dict):
            raise map_gemini_error(int(data["error"].get("code") or 500), data["error"], {})
        self.usage = usage_from(data.get("usageMetadata")) or self.usage
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            candidates = [{"index": 0, "finishReason": "SAFETY"}]
        chunks = []
        for position, candidate in enumerate(candidates):
            index = candidate.get("index", position)
            if index not in self._started:
                self._started.add(index)
                chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
            seen = self._calls.get(index, 0)
            text, reasoning, calls = _read_parts((candidate.get("content") or {}).get("parts") or [], seen)
            if reasoning:
                chunks.append(self._chunk(index, {"reasoning_content": "".join(reasoning)}))
            if "".join(text):
                chunks.append(self._chunk(index, {"content": "".join(text)}))
            if calls:
                chunks.append(self._chunk(index, {"tool_calls": [{"index": seen + k, **c} for k, c in enumerate(calls)]}))
                self._calls[index] = seen + len(calls)
            finish = _finish(candidate.get("finishReason"), self._calls.get(index, 0) > 0)
            if finish:
                chunks.append(self._chunk(index, {}, finish))
        return chunks

    def finish(self) -> list[dict]:
        return []


class GeminiAdapter:
    name = "gemini"
    local = False  # relay.upstream sends over HTTP (only the demo adapter answers in-process)
    endpoints = frozenset({"chat", "embeddings"})

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        headers = {**target.extra_headers, "x-goog-api-key": target.api_key, "content-type": "application/json"}
        if endpoint == "embeddings":
            return UpstreamRequest("POST", _model_path(target) + ":batchEmbedContents", headers, orjson.dumps(self._embed_body(body, target)))
        system, contents = build_contents(body.get("messages"))
        payload = apply_params(PARAMS, body, {"contents": contents})
        if system:
            payload["systemInstruction"] = {"parts": [{"text": system}]}
        build_tools(body, payload)
        gemini_thinking(body, payload, target.upstream_model)
        response_format = body.get("response_format") or {}
        if response_format.get("type") in ("json_object", "json_schema"):
            payload.setdefault("generationConfig", {})["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema:
                payload["generationConfig"]["responseJsonSchema"] = schema
        url = _model_path(target) + (":streamGenerateContent?alt=sse" if stream else ":generateContent")
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def _embed_body(self, body: dict, target: Target) -> dict:
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("input must be a string or a list of strings for this model.", param="input")
        model = "models/" + target.upstream_model.removeprefix("models/")
        requests = [{"model": model, "content": {"parts": [{"text": t}]}} for t in texts]
        if body.get("dimensions"):
            for request in requests:
                request["outputDimensionality"] = int(body["dimensions"])
        return {"requests": requests}

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        data = load_json(body)
        if isinstance(data.get("error"), dict):  # an error inside a 200
            raise map_gemini_error(int(data["error"].get("code") or 500), data["error"], {})
        if endpoint == "embeddings":
            # Gemini reports no token count for embeddings: usage None lets the app estimate it.
            rows = [{"object": "embedding", "index": i, "embedding": e.get("values", [])} for i, e in enumerate(data.get("embeddings") or [])]
            return {"object": "list", "data": rows, "model": model}, None
        choices = []
        for position, candidate in enumerate(data.get("candidates") or []):
            text, reasoning, calls = _read_parts((candidate.get("content") or {}).get("parts") or [], 0)
            finish = _finish(candidate.get("finishReason") or "STOP", bool(calls))
            choices.append(choice(candidate.get("index", position), text, reasoning, calls, finish))
        # No candidate at all: the prompt itself was blocked (promptFeedback.blockReason).
        choices = choices or [choice(0, [], [], [], "content_filter")]
        usage = usage_from(data.get("usageMetadata"))
        return completion(data.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}", model, choices, usage), usage

    # include_usage is accepted for parity with the OpenAI adapter; the app emits the usage chunk.
    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False) -> GeminiStream:
        return GeminiStream(request_id, model)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return map_gemini_error(status, error_object(body), headers)


adapter = GeminiAdapter()
