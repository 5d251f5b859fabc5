"""The exact response cache's wire side (README "Response cache"): the request's fingerprint, and one
answer in both shapes, whole and streamed, in the protocol it was asked in (OpenAI chat and completions
here; Anthropic Messages in wire.replay_messages, OpenAI Responses in wire.replay_responses).

The fingerprint leaves out what does not change the answer (`stream`, `stream_options`, `user`; each
protocol's own such fields), so a streamed request and a whole one share an entry: the entry keeps the
whole answer (a stream is assembled into one) and a streamed hit is replayed as events made from it.
"""

import hashlib

import orjson

from wire import replay_messages, replay_responses
from wire.sse import DONE, SSEParser, encode_chunk

CACHEABLE_ENDPOINTS = frozenset({"chat", "completions", "embeddings", "messages", "responses"})
NOT_IN_FINGERPRINT = frozenset({"stream", "stream_options", "user"})
# Endpoints whose answers have their own protocol: (canonical body, calls tools, whole from stream, stream of whole).
PROTOCOLS = {"messages": replay_messages, "responses": replay_responses}


def cacheable(endpoint: str, body: dict) -> bool:
    """Whether this request may use the cache at all (a Responses request only when stateless)."""
    return endpoint in CACHEABLE_ENDPOINTS and (endpoint != "responses" or replay_responses.cacheable(body))


def fingerprint(endpoint: str, body: dict, variant: str = "") -> str:
    """sha256 of the endpoint and the body with its keys sorted (at every depth), minus what does not
    change the answer; `variant` is what else does (Anthropic's beta header on /v1/messages)."""
    protocol = PROTOCOLS.get(endpoint)
    if protocol is not None:
        canonical = protocol.canonical(body)
    else:
        canonical = {name: value for name, value in body.items() if name not in NOT_IN_FINGERPRINT}
    keyed = [endpoint, canonical, variant] if variant else [endpoint, canonical]
    return hashlib.sha256(orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)).hexdigest()


def deterministic(endpoint: str, body: dict) -> bool:
    """Whether the request asks for a repeatable answer: embeddings always; text only at temperature 0
    (a missing temperature is the provider's default, 1 at OpenAI: not repeatable)."""
    if endpoint == "embeddings":
        return True
    temperature = body.get("temperature")
    return type(temperature) in (int, float) and temperature == 0


def calls_tools(endpoint: str, answer: dict) -> bool:
    if endpoint in PROTOCOLS:
        return PROTOCOLS[endpoint].calls_tools(answer)
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        if message.get("tool_calls") or message.get("function_call") or choice.get("finish_reason") in ("tool_calls", "function_call"):
            return True
    return False


def answer_from_stream(endpoint: str, delivered: list, usage: dict) -> dict | None:
    """The whole answer a complete stream delivered (bytes or chunk dicts, as the client got them), or
    None when it cannot be rebuilt exactly: no choices, a choice without its finish_reason (a cut stream),
    an error event."""
    if endpoint in PROTOCOLS:
        return PROTOCOLS[endpoint].answer_from_stream(delivered)
    parser = SSEParser()
    chunks = []
    for item in delivered:
        if isinstance(item, dict):
            chunks.append(item)
            continue
        for event in parser.feed(item):
            if event.data != b"[DONE]":
                chunks.append(orjson.loads(event.data))
    choices: dict[int, dict] = {}
    head = None
    for chunk in chunks:
        if "error" in chunk:
            return None
        head = head or chunk
        for part in chunk.get("choices") or ():
            slot = choices.setdefault(part.get("index", 0), {"text": [], "reasoning": [], "tools": {}, "finish": None, "role": "assistant"})
            if endpoint == "completions":
                slot["text"].append(part.get("text") or "")
            else:
                delta = part.get("delta") or {}
                slot["role"] = delta.get("role") or slot["role"]
                slot["text"].append(delta.get("content") or "")
                slot["reasoning"].append(delta.get("reasoning_content") or "")
                for call in delta.get("tool_calls") or ():
                    _merge_call(slot["tools"].setdefault(call.get("index", 0), {}), call)
            if part.get("finish_reason"):
                slot["finish"] = part["finish_reason"]
    if head is None or not choices or any(slot["finish"] is None for slot in choices.values()):
        return None
    built = []
    for index in sorted(choices):
        slot = choices[index]
        if endpoint == "completions":
            built.append({"index": index, "text": "".join(slot["text"]), "finish_reason": slot["finish"], "logprobs": None})
            continue
        message = {"role": slot["role"], "content": "".join(slot["text"]) or None}
        if any(slot["reasoning"]):
            message["reasoning_content"] = "".join(slot["reasoning"])
        if slot["tools"]:
            message["tool_calls"] = [slot["tools"][i] for i in sorted(slot["tools"])]
        built.append({"index": index, "message": message, "finish_reason": slot["finish"], "logprobs": None})
    kind = "text_completion" if endpoint == "completions" else "chat.completion"
    answer = {"id": head.get("id", ""), "object": kind, "created": head.get("created", 0), "model": head.get("model", ""), "choices": built, "usage": usage}
    if head.get("system_fingerprint"):
        answer["system_fingerprint"] = head["system_fingerprint"]
    return answer


def _merge_call(call: dict, delta: dict) -> None:
    for name in ("id", "type"):
        if delta.get(name):
            call[name] = delta[name]
    function = delta.get("function") or {}
    target = call.setdefault("function", {"name": "", "arguments": ""})
    target["name"] += function.get("name") or ""
    target["arguments"] += function.get("arguments") or ""


def stream_of(endpoint: str, answer: dict, include_usage: bool) -> bytes:
    """A whole answer as the SSE stream OpenAI would have sent: a chunk with each choice's content, a
    chunk with its finish_reason, the usage chunk when asked, then [DONE]. Messages and Responses: their own
    event streams."""
    if endpoint in PROTOCOLS:
        return PROTOCOLS[endpoint].stream_of(answer)
    kind = "text_completion" if endpoint == "completions" else "chat.completion.chunk"
    base = {"id": answer.get("id", ""), "object": kind, "created": answer.get("created", 0), "model": answer.get("model", "")}
    if answer.get("system_fingerprint"):
        base["system_fingerprint"] = answer["system_fingerprint"]
    out = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        if endpoint == "completions":
            out.append(encode_chunk({**base, "choices": [{"index": index, "text": choice.get("text") or "", "finish_reason": None, "logprobs": None}]}))
            out.append(encode_chunk({**base, "choices": [{"index": index, "text": "", "finish_reason": choice.get("finish_reason"), "logprobs": None}]}))
            continue
        message = choice.get("message") or {}
        delta = {"role": message.get("role") or "assistant", "content": message.get("content")}
        if message.get("reasoning_content"):
            delta["reasoning_content"] = message["reasoning_content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        out.append(encode_chunk({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}]}))
        out.append(encode_chunk({**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason"), "logprobs": None}]}))
    if include_usage and answer.get("usage"):
        out.append(encode_chunk({**base, "choices": [], "usage": answer["usage"]}))
    out.append(DONE)
    return b"".join(out)
