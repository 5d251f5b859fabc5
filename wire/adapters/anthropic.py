"""Anthropic Messages API (POST /v1/messages) behind the OpenAI chat format. Wire facts: PROVIDERS.md §2.

Simple parameters are data (PARAMS); messages, tools, the response, stream events and errors are hooks.
"""

import time

import orjson

from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.adapters.openai import chat_chunk, retry_after_seconds
from wire.adapters.reasoning import anthropic_thinking
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
from wire.errors import InvalidRequest, UpstreamError
from wire.sse import SSEEvent
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
        anthropic_thinking(body, payload, target.upstream_model)
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
