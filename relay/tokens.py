"""Token counting: an exact offline count, and a cheap bound for admission.

The exact count (bpe-openai, which ships its encodings; tiktoken would download them) is used
only when an upstream reports no usage. It runs in the Rust backend directly: the package's
Python wrapper costs about 120 µs even for a short string, the backend about 6 µs. Admission
sizes its reservation with `bound_prompt`, which reads no tokenizer at all.
"""

from functools import lru_cache

import bpe_openai

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


def count_text(text: str) -> int:
    if not text:
        return 0
    encoding = _encoding()
    return encoding.count(text) if hasattr(encoding, "count") else len(encoding.encode(text))


def bound_prompt(endpoint: str, body: dict) -> int:
    """A quick estimate of the prompt's tokens from its text size, at least the real count for
    ordinary text; used to reserve limits and budgets without running the tokenizer."""
    return estimate_prompt(endpoint, body, count=_bytes_bound)


def _bytes_bound(text: str) -> int:
    return -(-len(text.encode("utf-8", "replace")) // BYTES_PER_TOKEN_BOUND) if text else 0


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
        for tool in body.get("tools") or []:
            total += count(str(tool))
        return total
    field = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(field, str):
        return count(field)
    if isinstance(field, list):
        return sum(count(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 0 for item in field)
    return 0


def loaded() -> bool:
    """The encoding tables (~77 MB) load on first use, only if an upstream ever reports no usage."""
    return _encoding.cache_info().currsize > 0
