"""Token counting: an exact offline count, and a cheap bound for admission.

The exact count (bpe-openai, which ships its encodings; tiktoken would download them) is used
only when an upstream reports no usage. It runs in the Rust backend directly: the package's
Python wrapper costs about 120 µs even for a short string, the backend about 6 µs. Admission
sizes its reservation with `bound_prompt`, which reads no tokenizer at all.
"""

from functools import lru_cache

import bpe_openai
import orjson

# Rough fixed cost of the chat envelope per message (role markers), as OpenAI documents it.
PER_MESSAGE_TOKENS = 4
# o200k averages ~4.5 bytes of English per token and ~3 bytes (one CJK character) at worst.
BYTES_PER_TOKEN_BOUND = 3


@lru_cache(maxsize=1)
def _encoding():
    try:
        from bpe_openai import _bindings

        return _bindings.tokenizer_for_encoding("o200k_base")
    except (ImportError, AttributeError):  # a future release without the binding: the public API
        return bpe_openai.get_encoding("o200k_base")


# Past this many characters the tokenizer reads a sample and the rest is extrapolated from its
# tokens per character: the count of an 8 MB text would otherwise take a core for about a second.
COUNT_SAMPLE_CHARS = 256 * 1024


def count_text(text: str) -> int:
    if not text:
        return 0
    if len(text) <= COUNT_SAMPLE_CHARS:
        return _count(text)
    head, tail = text[: COUNT_SAMPLE_CHARS // 2], text[-COUNT_SAMPLE_CHARS // 2 :]  # both ends: prose, then code
    sampled = _count(head) + _count(tail)
    return -(-sampled * len(text) // COUNT_SAMPLE_CHARS)


def _count(text: str) -> int:
    encoding = _encoding()
    return encoding.count(text) if hasattr(encoding, "count") else len(encoding.encode(text))


def bound_prompt(endpoint: str, body: dict) -> int:
    """A quick estimate of the prompt's tokens from its text size, at least the real count for
    ordinary text; used to reserve limits and budgets without running the tokenizer."""
    return estimate_prompt(endpoint, body, count=_bytes_bound)


def _bytes_bound(text: str) -> int:
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))  # isascii() is O(1)
    return -(-size // BYTES_PER_TOKEN_BOUND)


count_bound = _bytes_bound  # a text's tokens bounded from its size, without the tokenizer


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def estimate_prompt(endpoint: str, body: dict, count=count_text) -> int:
    """Tokens of the request's input, counted offline."""
    if endpoint == "chat":
        total = 3
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                total += PER_MESSAGE_TOKENS + count(_content_text(message.get("content")))
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {} if isinstance(call, dict) else {}
                    total += count(str(function.get("name", ""))) + count(str(function.get("arguments", "")))
        tools = body.get("tools")
        if tools:  # serialized by orjson (C): str() of a large schema costs a hundred times more
            total += count(orjson.dumps(tools).decode())
        return total
    if endpoint in ("messages", "count_tokens"):
        return _messages_prompt(body, count)
    if endpoint == "responses":  # counted as the chat request it becomes (wire.inbound.responses)
        from wire.inbound.responses import to_chat

        return estimate_prompt("chat", to_chat(body), count)
    if endpoint == "rerank":  # the query and every document (strings or {"text"}), as checked by the relay
        texts = [doc if isinstance(doc, str) else doc.get("text", "") for doc in body.get("documents") or [] if isinstance(doc, (str, dict))]
        return count(str(body.get("query") or "")) + count("\n".join(t for t in texts if isinstance(t, str)))
    field = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(field, str):
        return count(field)
    if isinstance(field, list):  # strings and token arrays: one count over the joined strings (C loops)
        try:
            return count("\n".join(field))
        except TypeError:  # token arrays among them
            return count("\n".join(filter(str.__instancecheck__, field))) + sum(map(len, filter(list.__instancecheck__, field)))
    return 0


def _messages_prompt(body: dict, count) -> int:
    """An Anthropic Messages body: system, every block's text, tool uses and results, and the tools."""
    texts = [_content_text(body.get("system"))]
    total = 3
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE_TOKENS
        content = message.get("content")
        for block in [content] if isinstance(content, str) else content if isinstance(content, list) else []:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, dict):
                inner = block.get("content")  # a tool result
                texts.append(block.get("text") or block.get("thinking") or _content_text(inner))
                if isinstance(block.get("input"), dict):  # a tool use
                    texts.append(orjson.dumps(block["input"]).decode())
    tools = body.get("tools")
    if tools:
        texts.append(orjson.dumps(tools).decode())
    return total + count("\n".join(t for t in texts if isinstance(t, str)))


def loaded() -> bool:
    """The encoding tables (~77 MB) load on first use, only if an upstream ever reports no usage."""
    return _encoding.cache_info().currsize > 0
