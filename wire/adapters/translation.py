"""What every adapter that translates OpenAI chat to another wire format shares (anthropic, gemini):
reading chat messages and tool calls, building chat completions back, and classifying upstream errors."""

import time

import orjson

from wire.adapters.base import Usage
from wire.adapters.openai import retry_after_seconds
from wire.errors import (
    InvalidRequest,
    MalformedUsage,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    sanitize_upstream_message,
)


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
