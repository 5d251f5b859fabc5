"""OpenAI's Responses API mapped to and from chat completions, the canonical form every adapter speaks.

Three translations, all pure: a Responses request to a chat request (`to_chat`), a whole chat answer to
a Response object (`from_chat`), and a stream of chat chunks to the typed Responses events
(`EventStream`), in the order and shapes of the official openai SDK (openai.types.responses).
Stored responses (`store`, `previous_response_id`) are the relay's business: here a previous turn is
only a list of items put before the new input (`history`).
"""

import secrets
import time

import orjson

from wire.errors import InvalidRequest

# Request fields understood (openai 3.57's ResponseCreateParams, less those a gateway cannot honour).
FIELDS = {
    "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p", "reasoning",
    "text", "metadata", "parallel_tool_calls", "user", "stream", "stream_options", "store", "previous_response_id",
    "include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier", "background", "top_logprobs",
}
# Passed to chat under the same name when given.
SAME_NAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "prompt_cache_key", "safety_identifier")
ROLES = {"user", "assistant", "system", "developer"}
PART_TYPES = {"input_text", "output_text", "input_image", "refusal", "text"}
ITEM_TYPES = {"message", "function_call", "function_call_output", "reasoning"}
# Where the relay puts the items of the turns before this one (previous_response_id), once it has read them.
HISTORY = "_history"
TOOL_CHOICES = {"auto", "none", "required"}
FINISH_STATUS = {"length": ("incomplete", "max_output_tokens"), "content_filter": ("incomplete", "content_filter")}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


# -- checks -----------------------------------------------------------------------------------------
def check_body(body) -> None:
    """Clear 400s (OpenAI's error JSON) for what could not be translated, before anything is forwarded."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0], code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or "\x00" in model or len(model) > 200:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if body.get("background"):
        raise InvalidRequest("Background responses are not supported by this gateway.", param="background", code="unsupported_parameter")
    _check_input(body.get("input"))
    for name, kinds in (("instructions", (str,)), ("metadata", (dict,)), ("user", (str,)), ("stream", (bool,)),
                        ("store", (bool,)), ("parallel_tool_calls", (bool,)), ("previous_response_id", (str,)),
                        ("reasoning", (dict,)), ("text", (dict,)), ("tools", (list,)), ("include", (list,)),
                        ("stream_options", (dict,)), ("temperature", (int, float)), ("top_p", (int, float))):
        value = body.get(name)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
            raise InvalidRequest(f"Invalid type for '{name}'.", param=name, code="invalid_type")
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000_000):
        raise InvalidRequest("'max_output_tokens' must be an integer of at least 1.", param="max_output_tokens", code="invalid_value")
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools[{index}]: only function tools (type 'function' with a 'name') are supported.",
                                 param=f"tools[{index}]", code="unsupported_tool")
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise InvalidRequest(f"Invalid type for 'tools[{index}].parameters'.", param=f"tools[{index}].parameters", code="invalid_type")
    choice = body.get("tool_choice")
    if choice is not None and not _one_of(choice, TOOL_CHOICES) and not (
            isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str)):
        raise InvalidRequest("'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'name': …}.", param="tool_choice")
    text_format = (body.get("text") or {}).get("format")
    if text_format is not None and (not isinstance(text_format, dict) or text_format.get("type") not in ("text", "json_object", "json_schema")
                                    or text_format.get("type") == "json_schema" and not isinstance(text_format.get("schema"), dict)):
        raise InvalidRequest("'text.format' must be of type 'text', 'json_object' or 'json_schema' (with a 'schema').", param="text.format")
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequest("Invalid type for 'reasoning.effort'.", param="reasoning.effort", code="invalid_type")


def _one_of(value, options) -> bool:
    return isinstance(value, str) and value in options


def _check_input(items) -> None:
    if isinstance(items, str):
        if not items:
            raise InvalidRequest("'input' must not be empty.", param="input", code="empty_input")
        return
    if not isinstance(items, list) or not items:
        raise InvalidRequest("Missing required parameter: 'input' (a string or a non-empty array of items).", param="input",
                             code="missing_required_parameter")
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for '{where}': an object.", param=where, code="invalid_type")
        kind = item.get("type", "message")
        if not _one_of(kind, ITEM_TYPES):
            raise InvalidRequest(f"'{where}.type' {kind!r} is not supported here (message, function_call, function_call_output).",
                                 param=f"{where}.type", code="unsupported_item")
        if kind == "message":
            if not _one_of(item.get("role"), ROLES):
                raise InvalidRequest(f"'{where}.role' must be one of user, assistant, system, developer.", param=f"{where}.role")
            content = item.get("content")
            if not isinstance(content, (str, list)):
                raise InvalidRequest(f"Invalid type for '{where}.content': a string or an array of parts.", param=f"{where}.content",
                                     code="invalid_type")
            for number, part in enumerate(content if isinstance(content, list) else []):
                if not isinstance(part, dict) or not _one_of(part.get("type"), PART_TYPES):
                    raise InvalidRequest(f"'{where}.content[{number}]': parts of type input_text, input_image or output_text only.",
                                         param=f"{where}.content[{number}]", code="unsupported_content")
                if part["type"] == "input_image" and (not isinstance(part.get("image_url"), str) or not part["image_url"]):
                    raise InvalidRequest(f"'{where}.content[{number}]': an input_image needs an image_url (file_id is not supported here).",
                                         param=f"{where}.content[{number}]", code="unsupported_content")
        elif kind == "function_call":
            if not all(isinstance(item.get(name), str) for name in ("call_id", "name", "arguments")):
                raise InvalidRequest(f"'{where}': a function_call needs call_id, name and arguments (strings).", param=where)
        elif kind == "function_call_output" and (not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), (str, list))):
            raise InvalidRequest(f"'{where}': a function_call_output needs call_id and output.", param=where)


# -- request ----------------------------------------------------------------------------------------
def input_items(body: dict) -> list:
    """The request's input as a list of items (a string is one user message)."""
    items = body.get("input")
    return [{"type": "message", "role": "user", "content": items}] if isinstance(items, str) else list(items or [])


def to_chat(body: dict, *, tokens_field: str = "max_completion_tokens") -> dict:
    """The chat-completions request for a Responses request, the items of the turns before it (HISTORY) first."""
    messages: list[dict] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in [*(body.get(HISTORY) or ()), *input_items(body)]:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item))
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not last.get("_closed"):
                last.setdefault("tool_calls", []).append(call)  # one assistant turn, as chat has it
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": output if isinstance(output, str) else _parts_text(output)})
        # reasoning items are the provider's own memory: chat has no place for them
    for message in messages:
        message.pop("_closed", None)
    chat: dict = {"model": body["model"], "messages": messages}
    for name in SAME_NAME:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat[tokens_field] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [_tool(tool) for tool in body["tools"]]
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice["name"]}}
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    text = body.get("text") or {}
    text_format = text.get("format") or {}
    if text_format.get("type") == "json_schema":
        schema = {"name": text_format.get("name") or "response", "schema": text_format["schema"]}
        for name in ("strict", "description"):
            if text_format.get(name) is not None:
                schema[name] = text_format[name]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if text.get("verbosity"):
        chat["verbosity"] = text["verbosity"]
    if body.get("stream"):
        chat["stream"] = True
    return chat


def _message(item: dict) -> dict:
    role, content = item["role"], item["content"]
    role = "system" if role == "developer" else role  # every adapter knows system; OpenAI reads it as developer
    if isinstance(content, list):
        if role == "user" and any(part.get("type") == "input_image" for part in content):
            content = [_image(part) if part.get("type") == "input_image" else {"type": "text", "text": str(part.get("text") or "")}
                       for part in content]
        else:
            content = _parts_text(content)
    message = {"role": role, "content": content}
    if role != "assistant":
        message["_closed"] = True
    return message


def _image(part: dict) -> dict:
    image = {"url": part["image_url"]}
    if part.get("detail"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _parts_text(parts) -> str:
    if isinstance(parts, str):
        return parts
    return "".join(str(part.get("text") or part.get("refusal") or "") for part in parts if isinstance(part, dict))


def _tool(tool: dict) -> dict:
    function = {"name": tool["name"]}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


# -- response ---------------------------------------------------------------------------------------
class Envelope:
    """What every Response object of one request repeats from the request (id, model, settings echoed)."""

    def __init__(self, body: dict, model: str, response_id: str | None = None):
        self.id = response_id or new_id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.body = body

    def response(self, status: str, output: list, usage: dict | None = None, *, error: dict | None = None,
                 incomplete: str | None = None) -> dict:
        body = self.body
        reasoning = body.get("reasoning") or {}
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status, "background": False,
            "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
            "model": self.model, "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": body.get("service_tier"), "store": bool(body.get("store")),
            "temperature": body.get("temperature"), "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": body.get("top_p"),
            "truncation": body.get("truncation") or "disabled", "usage": usage, "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }


def usage_of(raw: dict | None) -> dict | None:
    """A chat `usage` object in the Responses shape."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = _number(raw.get("prompt_tokens")), _number(raw.get("completion_tokens"))
    prompt_details = raw.get("prompt_tokens_details") if isinstance(raw.get("prompt_tokens_details"), dict) else {}
    completion_details = raw.get("completion_tokens_details") if isinstance(raw.get("completion_tokens_details"), dict) else {}
    return usage_dict(prompt, completion, _number(prompt_details.get("cached_tokens")), _number(prompt_details.get("cache_write_tokens")),
                      _number(completion_details.get("reasoning_tokens")))


def usage_dict(prompt: int, completion: int, cached: int = 0, cache_write: int = 0, reasoning: int = 0) -> dict:
    return {
        "input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _number(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def from_chat(chat: dict, envelope: Envelope, usage: dict | None = None) -> dict:
    """A whole chat answer as a Response object; `usage` (Responses shape) overrides the answer's own."""
    choices = chat.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(new_id("rs"), reasoning))
    parts = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(text_part(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append({"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed", "content": parts})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(function_call_item(new_id("fc"), str(call.get("id") or new_id("call")), str(function.get("name") or ""),
                                         str(function.get("arguments") or ""), "completed"))
    status, reason = FINISH_STATUS.get(choice.get("finish_reason"), ("completed", None))
    return envelope.response(status, output, usage if usage is not None else usage_of(chat.get("usage")), incomplete=reason)


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}], "status": status}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, "status": status}


def output_text(response: dict) -> str:
    """Everything a Response generated, as text (for estimates): output text, reasoning, call arguments."""
    parts = []
    for item in response.get("output") or []:
        if item.get("type") == "function_call":
            parts.append(str(item.get("arguments") or ""))
        for part in item.get("content") or []:
            parts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(parts)


# -- stream -----------------------------------------------------------------------------------------
def encode_event(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class EventStream:
    """Chat chunks in, the typed Responses events out (encoded), numbered by `sequence_number`.

    Items open as their first delta arrives: reasoning text, then the message's text, then each tool call
    (a change of kind closes the item before it); tool calls stay open to the end, where they close in
    order. `finish` closes everything and ends with response.completed (or .incomplete) and its usage.
    """

    def __init__(self, envelope: Envelope):
        self.envelope = envelope
        self.sequence = 0
        self.output: list[dict | None] = []  # finished items by output index (None while open)
        self.started = False
        self.finish_reason = None
        self.raw_usage: dict | None = None
        self.generated: list[str] = []  # every delta sent, in order: what an estimate counts (as delta_text would)
        self._open: dict | None = None  # the open reasoning or message item: {"item", "index", "kind", "text"}
        self._calls: dict[int, dict] = {}  # chat tool_call index -> open function call

    def _event(self, kind: str, **fields) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode_event(event)

    def start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        snapshot = self.envelope.response("in_progress", [])
        return [self._event("response.created", response=snapshot), self._event("response.in_progress", response=snapshot)]

    def feed(self, chunk: dict) -> list[bytes]:
        out = self.start()
        if isinstance(chunk.get("usage"), dict):
            self.raw_usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._text("reasoning", reasoning)
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text("output_text", delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                out += self._text("refusal", delta["refusal"])
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _add(self, item: dict) -> tuple[int, bytes]:
        self.output.append(None)
        index = len(self.output) - 1
        return index, self._event("response.output_item.added", output_index=index, item=item)

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        current = self._open
        message_kind = kind in ("output_text", "refusal")
        if current is not None and (current["kind"] == "reasoning") == message_kind:
            out += self._close_open()
            current = None
        if current is None:
            if kind == "reasoning":
                item = {"id": new_id("rs"), "type": "reasoning", "summary": [], "status": "in_progress"}
            else:
                item = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress", "content": []}
            index, added = self._add(item)
            out.append(added)
            current = self._open = {"item": item, "index": index, "kind": kind, "text": "", "parts": []}
            if kind != "reasoning":
                out.append(self._part_added(current, kind))
        elif kind != current["kind"]:  # text after a refusal or the reverse: a new part of the same message
            out.append(self._part_done(current))
            current["kind"] = kind
            out.append(self._part_added(current, kind))
        current["text"] += text
        self.generated.append(text)
        fields = {"item_id": current["item"]["id"], "output_index": current["index"], "content_index": len(current["parts"]) - 1 if kind != "reasoning" else 0}
        if kind == "reasoning":
            out.append(self._event("response.reasoning_text.delta", delta=text, **fields))
        elif kind == "refusal":
            out.append(self._event("response.refusal.delta", delta=text, **fields))
        else:
            out.append(self._event("response.output_text.delta", delta=text, logprobs=[], **fields))
        return out

    def _part_added(self, current: dict, kind: str) -> bytes:
        current["parts"].append(None)
        current["text"] = ""
        part = text_part("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
        return self._event("response.content_part.added", item_id=current["item"]["id"], output_index=current["index"],
                           content_index=len(current["parts"]) - 1, part=part)

    def _part_done(self, current: dict) -> bytes:
        fields = {"item_id": current["item"]["id"], "output_index": current["index"], "content_index": len(current["parts"]) - 1}
        if current["kind"] == "refusal":
            part = {"type": "refusal", "refusal": current["text"]}
            done = self._event("response.refusal.done", refusal=current["text"], **fields)
        else:
            part = text_part(current["text"])
            done = self._event("response.output_text.done", text=current["text"], logprobs=[], **fields)
        current["parts"][-1] = part
        return done + self._event("response.content_part.done", part=part, **fields)

    def _close_open(self) -> list[bytes]:
        current, self._open = self._open, None
        if current is None:
            return []
        if current["kind"] == "reasoning":
            item = reasoning_item(current["item"]["id"], current["text"])
            out = [self._event("response.reasoning_text.done", item_id=item["id"], output_index=current["index"], content_index=0,
                               text=current["text"])]
        else:
            out = [self._part_done(current)]
            item = {**current["item"], "status": "completed", "content": current["parts"]}
        self.output[current["index"]] = item
        out.append(self._event("response.output_item.done", output_index=current["index"], item=item))
        return out

    def _call(self, call: dict) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
        function = call.get("function") or {}
        state = self._calls.get(position)
        if state is None:
            out += self._close_open()
            item = function_call_item(new_id("fc"), str(call.get("id") or new_id("call")), str(function.get("name") or ""), "", "in_progress")
            index, added = self._add(item)
            state = self._calls[position] = {"item": item, "index": index}
            out.append(added)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            state["item"]["arguments"] += arguments
            self.generated.append(arguments)
            out.append(self._event("response.function_call_arguments.delta", item_id=state["item"]["id"], output_index=state["index"],
                                   delta=arguments))
        return out

    def finish(self, usage: dict | None) -> list[bytes]:
        """The closing events: every open item done, then response.completed (or .incomplete) with `usage`."""
        out = self.start() + self._close_open()
        for position in sorted(self._calls):
            state = self._calls[position]
            item = {**state["item"], "status": "completed"}
            out.append(self._event("response.function_call_arguments.done", item_id=item["id"], output_index=state["index"],
                                   arguments=item["arguments"], name=item["name"]))
            self.output[state["index"]] = item
            out.append(self._event("response.output_item.done", output_index=state["index"], item=item))
        self._calls = {}
        status, reason = FINISH_STATUS.get(self.finish_reason, ("completed", None))
        self.final = self.envelope.response(status, [item for item in self.output if item is not None], usage, incomplete=reason)
        out.append(self._event("response.completed" if status == "completed" else "response.incomplete", response=self.final))
        return out

    def fail(self, code: str, message: str) -> bytes:
        """A failure after the stream started: an `error` event, then response.failed with what was produced."""
        out = self.start()
        error = {"code": code or "server_error", "message": message}
        out.append(self._event("error", code=error["code"], message=message, param=None))
        failed = self.envelope.response("failed", [item for item in self.output if item is not None], error=error)
        out.append(self._event("response.failed", response=failed))
        return b"".join(out)


def delta_text(events: list) -> str:
    """The generated text of encoded Responses events (text, refusal, reasoning and argument deltas)."""
    parts = []
    for event in events:
        if b".delta" not in event:
            continue
        start = event.find(b"data: ")
        try:
            data = orjson.loads(event[start + 6 :]) if start >= 0 else {}
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("delta"), str):
            parts.append(data["delta"])
    return "".join(parts)
