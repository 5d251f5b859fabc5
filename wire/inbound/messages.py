"""Anthropic Messages <-> the canonical OpenAI chat form: the request, the whole answer, and a stream
translator from chat chunks to Anthropic's events. Wire facts: PROVIDERS.md §2 and Anthropic's API reference.

Used for deployments that do not speak Anthropic's format; Anthropic-format ones get the body untouched.
"""

import uuid

import orjson

from wire.adapters.base import Target, Usage
from wire.errors import InvalidRequest

# chat finish_reason -> Anthropic stop_reason ("stop" becomes stop_sequence when the sequence is known).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# thinking.budget_tokens -> reasoning_effort, below each bound (Claude Code's largest budget, 31999, is "high").
EFFORTS = ((4096, "low"), (16384, "medium"))
# Where `reasoning_effort` is understood: DeepSeek always, OpenAI/Azure on their reasoning models only (the
# others answer 400 to it). Elsewhere `thinking` is dropped; Gemini's adapter has no such parameter.
REASONING_PROVIDERS = {"deepseek"}
REASONING_MODEL_PREFIXES = {"openai": ("o1", "o3", "o4", "gpt-5"), "azure": ("o1", "o3", "o4", "gpt-5")}
# Providers whose reasoning models want their earlier reasoning back on replayed assistant turns (a tool loop
# without it is refused: PROVIDERS.md, DeepSeek and Moonshot); elsewhere thinking blocks are not replayed.
REASONING_REPLAY_PROVIDERS = {"deepseek", "moonshot-cn", "moonshot-ai"}
# OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens); compatible ones max_tokens.
COMPLETION_TOKENS_PROVIDERS = {"openai", "azure"}


def message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


# -- Request: Messages -> chat --
def to_chat(body: dict, target: Target, stream: bool) -> dict:
    """A Messages body (model already the upstream's) as a chat completions body for `target`'s adapter."""
    chat: dict = {"model": body.get("model")}
    messages = []
    system = _text(body.get("system"), "system")
    if system:
        messages.append({"role": "system", "content": system})
    replay = target.provider in REASONING_REPLAY_PROVIDERS
    for index, message in enumerate(body.get("messages") or []):
        messages += _turn(message, f"messages.{index}", replay)
    chat["messages"] = messages
    limit = body.get("max_tokens")
    if limit is not None:
        chat["max_completion_tokens" if target.provider in COMPLETION_TOKENS_PROVIDERS else "max_tokens"] = limit
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("top_k") is not None and target.wire == "gemini":  # OpenAI-format APIs refuse top_k
        chat["top_k"] = body["top_k"]
    if body.get("stop_sequences"):
        chat["stop"] = [str(s) for s in body["stop_sequences"]]
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = str(user)
    _tools(body, chat)
    effort = _effort(body.get("thinking"), target)
    if effort:
        chat["reasoning_effort"] = effort
    schema = _output_schema(body)
    if schema is not None:
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    if stream:
        chat["stream"] = True
    return chat


def _text(content, param: str) -> str:
    """A string or text blocks (system, tool results) as one string; cache_control and citations dropped."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}: a string or an array of text blocks.", param=param)
    parts = []
    for index, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{param}.{index}: only text blocks are accepted here for this model.", param=f"{param}.{index}")
        parts.append(block["text"])
    return "\n\n".join(parts)


def _image(source, param: str) -> dict:
    if not isinstance(source, dict):
        raise InvalidRequest(f"{param}.source: an object.", param=f"{param}.source")
    if source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise InvalidRequest(f"{param}.source: base64 and url image sources are supported for this model.", param=f"{param}.source")


def _document(block: dict, param: str) -> dict:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data") or "")}
    if source.get("type") == "base64":
        data_url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "file", "file": {"file_data": data_url, "filename": str(block.get("title") or "document.pdf")}}
    raise InvalidRequest(f"{param}.source: base64 and text document sources are supported for this model.", param=f"{param}.source")


def _turn(message: dict, param: str, replay: bool = False) -> list[dict]:
    """One Messages turn as chat messages: tool results become `tool` messages (first: they answer the
    previous assistant turn's calls), the rest one user or assistant message (with its thinking as
    `reasoning_content` when `replay`)."""
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts, calls, results, reasoning = [], [], [], []
    for index, block in enumerate(content):
        where = f"{param}.content.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append(_image(block.get("source"), where))
        elif kind == "document":
            parts.append(_document(block, where))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") if isinstance(block.get("input"), dict) else {}).decode()
            calls.append({"id": str(block.get("id")), "type": "function", "function": {"name": str(block.get("name")), "arguments": arguments}})
        elif kind == "tool_result" and role == "user":
            results += _tool_result(block, where)
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            if replay and isinstance(block.get("thinking"), str):
                reasoning.append(block["thinking"])
        else:
            raise InvalidRequest(f"{where}: content block type {kind!r} is not supported for this model.", param=where)
    turn = []
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if text or calls:
            turn.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
            if reasoning:
                turn[0]["reasoning_content"] = "".join(reasoning)
        return turn
    tool_messages = [r for r in results if r["role"] == "tool"]
    parts += [p for r in results if r["role"] == "user" for p in r["content"]]  # images a tool returned
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        turn.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text and len(parts) == 1 else parts})
    return tool_messages + turn


def _tool_result(block: dict, param: str) -> list[dict]:
    """A tool_result as a `tool` message; images in it travel in the user message that follows (chat's
    tool messages carry text only)."""
    content, texts, images = block.get("content"), [], []
    for index, item in enumerate([content] if isinstance(content, str) else content or []):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text") or ""))
        elif isinstance(item, dict) and item.get("type") == "image":
            images.append(_image(item.get("source"), f"{param}.content.{index}"))
        else:
            raise InvalidRequest(f"{param}.content.{index}: text and image tool results are supported for this model.",
                                 param=f"{param}.content.{index}")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = "Error: " + text
    result = [{"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text}]
    return result + ([{"role": "user", "content": images}] if images else [])


def _tools(body: dict, chat: dict) -> None:
    tools = []
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not tool.get("name"):
            raise InvalidRequest(f"tools.{index}: only custom tools (name, description, input_schema) are supported for this model.",
                                 param=f"tools.{index}")
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    if not tools:
        return  # tool_choice without tools means nothing to a chat API either
    chat["tools"] = tools
    wanted = body.get("tool_choice")
    if wanted is None:
        return
    kind = wanted.get("type") if isinstance(wanted, dict) else None
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": str(wanted.get("name"))}}
    elif kind in TOOL_CHOICE:
        chat["tool_choice"] = TOOL_CHOICE[kind]
    else:
        raise InvalidRequest("tool_choice: auto, any, tool or none.", param="tool_choice")
    if wanted.get("disable_parallel_tool_use") and kind != "none":
        chat["parallel_tool_calls"] = False


def _effort(thinking, target: Target) -> str | None:
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    prefixes = REASONING_MODEL_PREFIXES.get(target.provider)
    if target.provider not in REASONING_PROVIDERS and not (prefixes and target.upstream_model.startswith(prefixes)):
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return "medium"
    return next((effort for bound, effort in EFFORTS if budget < bound), "high")


def _output_schema(body: dict):
    """Structured output (output_config.format, or the older output_format) as a JSON schema, if any."""
    wanted = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), dict) else None
    wanted = wanted or body.get("output_format")
    if isinstance(wanted, dict) and wanted.get("type") == "json_schema" and isinstance(wanted.get("schema"), dict):
        return wanted["schema"]
    return None


# -- Answer: chat -> Messages --
def usage_object(usage: Usage | None) -> dict:
    """Anthropic's usage: input_tokens excludes cache reads and writes (OpenAI's prompt_tokens includes them)."""
    usage = usage or Usage()
    return {"input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens),
            "cache_creation_input_tokens": usage.cache_write_tokens, "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens}


def stop_reason(finish_reason, matched, stop_sequences) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). A chat API says only "stop"; some (vLLM) name the matched sequence."""
    if finish_reason == "stop" and isinstance(matched, str) and matched in (stop_sequences or ()):
        return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason, "end_turn"), None


def from_chat(answer: dict, usage: Usage | None, model: str, stop_sequences=None) -> dict:
    """A chat completion (the first choice) as a Messages answer."""
    choices = answer.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    content = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # a few providers answer in parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24], "name": function.get("name"),
                        "input": _arguments(function.get("arguments"))})
    reason, sequence = stop_reason(first.get("finish_reason"), first.get("stop_reason"), stop_sequences)
    return {"id": message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage_object(usage)}


def _arguments(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


# -- Stream: chat chunks -> Messages events --
def event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class MessagesStream:
    """Chat chunks (dicts) in, Anthropic's events (encoded) out, in Anthropic's order: message_start and a
    ping first, one content block at a time (thinking, text, tool_use), then message_delta with the stop
    reason and the usage, then message_stop. The message_delta waits for the end of the upstream's stream,
    because chat APIs send usage after the finish reason."""

    def __init__(self, model: str, stop_sequences=None):
        self.model, self.stop_sequences = model, stop_sequences or ()
        self.started = False
        self.block: str | None = None  # the open block's type
        self.index = -1  # its index
        self.tools: dict[int, int] = {}  # chat tool_calls index -> block index
        self.finish_reason = None
        self.matched = None
        self.usage: Usage | None = None

    def _open(self, block: dict) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.block = block["type"]
        return out + [event("content_block_start", {"index": self.index, "content_block": block})]

    def _close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [event("content_block_stop", {"index": self.index})]

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message = {"id": message_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage_object(None)}  # known at the end
        return [event("message_start", {"message": message}), event("ping", {})]

    def feed(self, chunk: dict) -> list[bytes]:
        out = self._start()
        choices = chunk.get("choices") or []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = first.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            if self.block != "thinking":
                out += self._open({"type": "thinking", "thinking": "", "signature": ""})
            out.append(event("content_block_delta", {"index": self.index, "delta": {"type": "thinking_delta", "thinking": reasoning}}))
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.block != "text":
                out += self._open({"type": "text", "text": ""})
            out.append(event("content_block_delta", {"index": self.index, "delta": {"type": "text_delta", "text": text}}))
        for call in delta.get("tool_calls") or []:
            out += self._tool_call(call)
        if first.get("finish_reason"):
            self.finish_reason, self.matched = first["finish_reason"], first.get("stop_reason")
            out += self._close()
        return out

    def _tool_call(self, call: dict) -> list[bytes]:
        out = []
        position = call.get("index", len(self.tools)) if isinstance(call.get("index"), int) else len(self.tools)
        function = call.get("function") or {}
        if position not in self.tools:
            out += self._open({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                               "name": function.get("name") or "", "input": {}})
            self.tools[position] = self.index
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a provider that sends the arguments parsed
            arguments = orjson.dumps(arguments).decode()
        if arguments:
            out.append(event("content_block_delta", {"index": self.tools[position],
                                                     "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def finish(self, usage: Usage | None) -> list[bytes]:
        """The end of the upstream's stream: the open block closed, the stop reason and the usage."""
        self.usage = usage
        out = self._start() + self._close()
        reason, sequence = stop_reason(self.finish_reason or "stop", self.matched, self.stop_sequences)
        out.append(event("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage_object(usage)}))
        return out + [event("message_stop", {})]

