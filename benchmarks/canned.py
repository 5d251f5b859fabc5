"""Canned requests and upstream answers (OpenAI format, and Anthropic's for /v1/messages) shared by the mocks and the load generators.

Everything here is deterministic, so every run sends and receives the same bytes.
"""

import json
import random

MODEL = "bench"  # chat and embeddings; /v1/messages translated to chat and /v1/responses also use it
MODEL_MESSAGES = "bench-messages"  # an Anthropic-format deployment: /v1/messages passes through
MODEL_STREAM = "bench-stream"  # canned SSE body, all events in one write (nginx mock)
MODEL_SPACED = "bench-spaced"  # SSE with events spaced in time (asyncio mock)

# Spaced stream timing (asyncio mock): first event after TTFT_MS, then one event every GAP_MS.
SPACED_TTFT_MS = 50
SPACED_GAP_MS = 10
CONTENT_PIECES = ["Toll", " gates", " collect", " a", " small", " fee", " so", " roads", " stay", " open", "."]

SYSTEM_PROMPT = "You are a concise assistant."
USER_PROMPT = "Write one short sentence about toll gates."


def chat_request(model: str = MODEL, *, stream: bool = False) -> bytes:
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def messages_request(model: str = MODEL_MESSAGES) -> bytes:
    """chat_request's conversation in Anthropic's Messages shape (the same prompts and limits, ~the same size)."""
    body = {
        "model": model,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": USER_PROMPT}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def responses_request(model: str = MODEL) -> bytes:
    """chat_request's conversation in OpenAI's Responses shape (stateless: no `store`)."""
    body = {"model": model, "instructions": SYSTEM_PROMPT, "input": USER_PROMPT, "max_output_tokens": 64, "temperature": 0.2}
    return json.dumps(body, separators=(",", ":")).encode()


def embeddings_request(model: str = MODEL) -> bytes:
    return json.dumps({"model": model, "input": "The quick brown fox jumps over the lazy dog."}, separators=(",", ":")).encode()


CHAT_RESPONSE = json.dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(CONTENT_PIECES), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 11, "total_tokens": 42, "prompt_tokens_details": {"cached_tokens": 0}},
        "system_fingerprint": "fp_bench",
    },
    separators=(",", ":"),
).encode()


# An Anthropic Messages answer (what relay.messages.PassThrough parses for its usage): the same text and
# token counts as CHAT_RESPONSE. input_tokens excludes cache reads and writes, both zero here.
MESSAGES_RESPONSE = json.dumps(
    {
        "id": "msg_bench0001",
        "type": "message",
        "role": "assistant",
        "model": "bench-upstream",
        "content": [{"type": "text", "text": "".join(CONTENT_PIECES)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 31, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 11,
                  "service_tier": "standard"},
    },
    separators=(",", ":"),
).encode()


def _embedding(dims: int) -> list[float]:
    rng = random.Random(7)
    return [round(rng.uniform(-0.1, 0.1), 8) for _ in range(dims)]


EMBED_DIMS = 1536  # text-embedding-3-small's size: a realistic body (~20 KB) rather than a toy one
EMBEDDINGS_RESPONSE = json.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": _embedding(EMBED_DIMS)}],
        "model": "bench-embed-upstream",
        "usage": {"prompt_tokens": 10, "total_tokens": 10},
    },
    separators=(",", ":"),
).encode()


def _chunk(delta: dict | None, finish=None, usage=None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-upstream",
        "system_fingerprint": "fp_bench",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def stream_events() -> list[bytes]:
    """The upstream's SSE events: role, content pieces, finish, usage, [DONE]."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": piece}) for piece in CONTENT_PIECES]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk(None, usage={"prompt_tokens": 31, "completion_tokens": 11, "total_tokens": 42}))
    events.append(b"data: [DONE]\n\n")
    return events


STREAM_EVENTS = stream_events()
STREAM_BODY = b"".join(STREAM_EVENTS)
# Events carrying data (everything but [DONE]): the unit of "CPU per forwarded chunk".
STREAM_CHUNKS = len(STREAM_EVENTS) - 1

NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error","code":"not_found"}}'
