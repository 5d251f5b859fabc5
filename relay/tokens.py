"""Offline token counting (bpe-openai ships its encodings; tiktoken would download them).

Used when an upstream reports no usage (the record is then marked estimated) and to size the
worst-case reservation at admission.
"""

from functools import lru_cache

import bpe_openai

# Rough fixed cost of the chat envelope per message (role markers), as OpenAI documents it.
PER_MESSAGE_TOKENS = 4


@lru_cache(maxsize=1)
def _encoding():
    return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text))


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def estimate_prompt(endpoint: str, body: dict) -> int:
    """Tokens of the request's input, counted offline."""
    if endpoint == "chat":
        total = 3
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                total += PER_MESSAGE_TOKENS + count_text(_content_text(message.get("content")))
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {} if isinstance(call, dict) else {}
                    total += count_text(str(function.get("name", ""))) + count_text(str(function.get("arguments", "")))
        for tool in body.get("tools") or []:
            total += count_text(str(tool))
        return total
    field = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(field, str):
        return count_text(field)
    if isinstance(field, list):
        return sum(count_text(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 0 for item in field)
    return 0


def warm_up() -> None:
    """Load the encoding at start-up rather than on the first request that needs it."""
    count_text("warm up")
