"""Anthropic Messages API (POST /v1/messages) behind the OpenAI chat format. Wire facts: PROVIDERS.md §2.

Simple parameters are data (PARAMS); messages, tools, the response, stream events and errors are hooks.
"""

import time

import orjson

from wire.errors import (
    InvalidRequest, MalformedUsage, UpstreamCredentialRejected, UpstreamError, UpstreamRateLimited, UpstreamRejected,
    sanitize_upstream_message,
)
from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.sse import SSEEvent
from wire.adapters.openai import chat_chunk, retry_after_seconds
from wire.usage import usage_number

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often omit it

# OpenAI parameter -> (Anthropic dotted path, transform). Anything not listed is dropped.
# max_completion_tokens comes after max_tokens so it wins when both are sent.
PARAMS = {
    "max_tokens": ("max_tokens", int),
    "max_completion_tokens": ("max_tokens", int),
    # Anthropic rejects temperature > 1 (OpenAI allows 2): clamp rather than fail the request.
    "temperature": ("temperature", lambda v: min(max(float(v), 0.0), 1.0)),
    "top_p": ("top_p", None),
    "top_k": ("top_k", None),  # not OpenAI, but sent by some clients through extra_body
    "stop": ("stop_sequences", lambda v: [v] if isinstance(v, str) else list(v)),
    "user": ("metadata.user_id", str),
}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "model_context_window_exceeded": "length",
          "pause_turn": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# Error `type` -> HTTP status, for `error` events that arrive inside a 200 stream.
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
                "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                "timeout_error": 504, "overloaded_error": 529}


# -- Translation helpers, also used by gemini.py (candidates for a shared module) --
def apply_params(table: dict, src: dict, dst: dict) -> dict:
    """Copy each present, non-null parameter of `src` to its dotted path in `dst`."""
    for key, (path, transform) in table.items():
        if src.get(key) is not None:
            *parents, leaf = path.split(".")
            node = dst
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = transform(src[key]) if transform else src[key]
    return dst


def walk_messages(messages: list, *, part, call, result, model_role: str, key: str) -> tuple[str, list[dict]]:
    """OpenAI messages -> (system text, provider turns), the provider supplying hooks for the pieces:
    part(kind, value, param) for a content part (None = unsupported), call(tool_call, args) for an
    assistant tool call, result(message, param, names) for a tool message (sent in a user turn).
    Same-role turns merge, which puts parallel tool results into one turn as both APIs require."""
    system, turns, names = [], [], {}
    for i, message in enumerate(messages or []):
        role, param = message.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
            continue
        if role in ("user", "assistant"):
            items = _content(message.get("content"), part, f"{param}.content")
            for j, tool_call in enumerate(message.get("tool_calls") or [] if role == "assistant" else []):
                items.append(call(tool_call, call_arguments(tool_call, f"{param}.tool_calls[{j}]")))
                names[tool_call.get("id")] = (tool_call.get("function") or {}).get("name")
            role = model_role if role == "assistant" else role
        elif role == "tool":
            role, items = "user", [result(message, param, names)]
        else:
            raise InvalidRequest(f"Message role {role!r} is not supported for this model.", param=f"{param}.role")
        if turns and turns[-1]["role"] == role:
            turns[-1][key] += items
        else:
            turns.append({"role": role, key: items})
    return "\n\n".join(s for s in system if s), turns


def _content(content, part, param: str) -> list:
    items = []
    for j, piece in enumerate([{"type": "text", "text": content}] if isinstance(content, str) else content or []):
        kind = piece.get("type") if isinstance(piece, dict) else None
        if kind in ("text", "refusal"):
            items += [part("text", piece[kind], f"{param}[{j}]")] if piece.get(kind) else []
            continue
        item = part(kind, piece.get(kind) or {}, f"{param}[{j}]") if kind else None
        if item is None:
            raise InvalidRequest(f"Content part type {kind!r} is not supported for this model.", param=f"{param}[{j}]")
        items.append(item)
    return items


def text_of(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", "refusal"))
    return content or ""


def split_data_url(url: str, param: str) -> tuple[str, str] | None:
    """data:<type>;base64,<data> -> (type, data); None for an http(s) URL; anything else is refused."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return header[5:].split(";")[0], data
    if url.startswith(("http://", "https://")):
        return None
    raise InvalidRequest("Expected a data: URL or an http(s) URL.", param=param)


def call_arguments(call: dict, param: str) -> dict:
    try:
        arguments = orjson.loads((call.get("function") or {}).get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=f"{param}.function.arguments")
    return arguments


def functions(body: dict) -> list[dict]:
    """The `function` objects of the request's tools; other tool kinds are refused."""
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function":
            raise InvalidRequest("Only function tools are supported for this model.", param=f"tools[{i}].type")
    return [tool.get("function") or {} for tool in body.get("tools") or []]


def load_json(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedUsage("The upstream answered with a body that is not JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedUsage("The upstream answered with an unexpected body.")
    return data


def error_object(body: bytes) -> dict:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def choice(index: int, text: list[str], reasoning: list[str], calls: list[dict], finish_reason: str) -> dict:
    message = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def completion(response_id: str, model: str, choices: list[dict], usage: Usage | None) -> dict:
    answer = {"id": response_id, "object": "chat.completion", "created": int(time.time()), "model": model, "choices": choices}
    if usage:
        answer["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                           "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}
    return answer


def classify_error(status: int, message: str, headers, *, retry_after: float | None = None) -> UpstreamError:
    """Whose fault, and may another attempt help. Callers handle their provider's special cases first."""
    message = sanitize_upstream_message(message or "", limit=200) or f"Upstream answered HTTP {status}."
    if status == 429:
        return UpstreamRateLimited(message, upstream_status=status, retry_after=retry_after or retry_after_seconds(headers))
    if status in (401, 403):
        # A provider credential problem is the gateway's, not the client's.
        return UpstreamCredentialRejected(upstream_status=status)
    if status == 402:
        return UpstreamError("The upstream account has a billing problem.", upstream_status=status, code="upstream_billing")
    if status in (408, 409) or status >= 500:
        return UpstreamError(f"Upstream error (HTTP {status}).", upstream_status=status, retry_after=retry_after_seconds(headers))
    return UpstreamRejected(message, status=status if status in (400, 404, 413) else 400, upstream_status=status)


# -- Anthropic hooks --
def _part(kind: str, value, param: str) -> dict | None:
    if kind == "text":
        return {"type": "text", "text": value}
    if kind == "image_url":
        url = value.get("url", "")
        inline = split_data_url(url, f"{param}.image_url")
        return {"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]} if inline else {"type": "url", "url": url}}
    return None


def build_messages(messages: list) -> tuple[str, list[dict]]:
    return walk_messages(
        messages, model_role="assistant", key="content", part=_part,
        call=lambda c, args: {"type": "tool_use", "id": c.get("id"), "name": (c.get("function") or {}).get("name"), "input": args},
        result=lambda m, param, names: {"type": "tool_result", "tool_use_id": m.get("tool_call_id"), "content": text_of(m.get("content"))},
    )


def build_tools(body: dict, payload: dict) -> None:
    tools = [{"name": fn.get("name"), "description": fn.get("description") or "",
              "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}} for fn in functions(body)]
    if not tools:
        return  # tool_choice without tools means nothing to Anthropic
    payload["tools"] = tools
    wanted = body.get("tool_choice")
    if isinstance(wanted, dict):
        payload["tool_choice"] = {"type": "tool", "name": (wanted.get("function") or {}).get("name")}
    elif wanted is not None:
        if wanted not in TOOL_CHOICE:
            raise InvalidRequest("tool_choice must be auto, required, none or a named function.", param="tool_choice")
        payload["tool_choice"] = dict(TOOL_CHOICE[wanted])
    if body.get("parallel_tool_calls") is False and payload.get("tool_choice", {}).get("type") != "none":
        payload.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True


def usage_from(raw: dict | None) -> Usage | None:
    if not raw:
        return None
    # Every figure through usage_number (a non-number raises MalformedUsage); Record.usage bounds the sums.
    cache_read = usage_number(raw.get("cache_read_input_tokens"))
    cache_write = usage_number(raw.get("cache_creation_input_tokens"))  # priced apart: dearer than input
    # input_tokens excludes cache reads and writes; OpenAI's prompt_tokens counts everything.
    prompt = usage_number(raw.get("input_tokens")) + cache_write + cache_read
    return Usage(prompt_tokens=prompt, completion_tokens=usage_number(raw.get("output_tokens")), cached_tokens=cache_read,
                 cache_write_tokens=cache_write)


def map_anthropic_error(status: int, error: dict, headers) -> UpstreamError:
    """One classification for HTTP errors and in-stream `error` events."""
    if status == 429 and (error.get("details") or {}).get("error_code") == "enforced_spend_limit_reached":
        # The account's spend cap, not a burst: this credential will not recover soon, another may.
        return UpstreamError("The upstream account reached its spend limit.", upstream_status=status, code="upstream_billing")
    if status == 529 or error.get("type") == "overloaded_error":
        return UpstreamError("Upstream overloaded.", upstream_status=status, retry_after=retry_after_seconds(headers))
    return classify_error(status, error.get("message"), headers)


class AnthropicStream:
    """Messages stream events -> OpenAI chunks. Tool calls get OpenAI indexes in order of appearance."""

    def __init__(self, request_id: str, model: str):
        self.request_id, self.model, self.created = request_id, model, int(time.time())
        # The whole usage arrives with message_delta. message_start's figures only give the input (its
        # output_tokens is a placeholder): they serve to bill a stream cut short (relay.pipeline._estimate),
        # whose output is then counted from what was delivered.
        self.usage: Usage | None = None
        self.prompt_usage: Usage | None = None
        self._raw_usage: dict = {}
        self._tools: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool_calls index

    def _chunk(self, delta: dict, finish_reason=None) -> dict:
        return chat_chunk(self.request_id, self.model, delta, finish_reason, created=self.created)

    def _add_usage(self, raw: dict | None) -> None:
        self._raw_usage.update({k: v for k, v in (raw or {}).items() if v is not None})
        self.usage = usage_from(self._raw_usage)

    def feed(self, event: SSEEvent) -> list[dict]:
        data = orjson.loads(event.data) if event.data.strip() else {}
        kind = data.get("type") or event.event
        if kind == "message_start":
            raw = (data.get("message") or {}).get("usage")
            if isinstance(raw, dict):
                self._raw_usage.update({k: v for k, v in raw.items() if v is not None})
                self.prompt_usage = usage_from({**self._raw_usage, "output_tokens": 0})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools[data.get("index")] = len(self._tools)
                call = {"index": index, "id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            return [self._chunk({"content": block["text"]})] if block.get("type") == "text" and block.get("text") else []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                call = {"index": self._tools.get(data.get("index"), 0), "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # signature_delta, citations_delta
        if kind == "message_delta":
            self._add_usage(data.get("usage"))  # output_tokens is cumulative
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH.get(reason, "stop"))] if reason else []
        if kind == "error":
            error = data.get("error") or {}
            raise map_anthropic_error(ERROR_STATUS.get(error.get("type"), 500), error, {})
        return []  # ping, content_block_stop, message_stop, unknown future events

    def finish(self) -> list[dict]:
        return []


class AnthropicAdapter:
    name = "anthropic"
    local = False  # relay.upstream sends over HTTP (only the demo adapter answers in-process)
    endpoints = frozenset({"chat"})

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        if (body.get("n") or 1) > 1:
            raise InvalidRequest("n > 1 is not supported for this model.", param="n")
        system, messages = build_messages(body.get("messages"))
        payload = apply_params(PARAMS, body, {"model": target.upstream_model, "messages": messages, "max_tokens": DEFAULT_MAX_TOKENS})
        if system:
            payload["system"] = system
        build_tools(body, payload)
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            payload["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        # json_object has no Anthropic equivalent and is dropped: the prompt itself must ask for JSON.
        if stream:
            payload["stream"] = True
        headers = {**target.extra_headers, "x-api-key": target.api_key, "anthropic-version": VERSION, "content-type": "application/json"}
        return UpstreamRequest("POST", target.base_url.rstrip("/") + "/v1/messages", headers, orjson.dumps(payload))

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        data, text, reasoning, calls = load_json(body), [], [], []
        if data.get("type") == "error" or isinstance(data.get("error"), dict):  # an error inside a 200
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            raise map_anthropic_error(ERROR_STATUS.get(error.get("type"), 500), error, {})
        for block in data.get("content") or []:
            if block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "thinking":
                reasoning.append(block.get("thinking", ""))
            elif block.get("type") == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append({"id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": arguments}})
        usage = usage_from(data.get("usage"))
        choices = [choice(0, text, reasoning, calls, FINISH.get(data.get("stop_reason"), "stop"))]
        return completion(data.get("id"), model, choices, usage), usage

    # include_usage is accepted for parity with the OpenAI adapter; the app emits the usage chunk.
    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False) -> AnthropicStream:
        return AnthropicStream(request_id, model)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return map_anthropic_error(status, error_object(body), headers)


adapter = AnthropicAdapter()
