"""The response cache's Anthropic Messages side (README "Response cache"): what of a Messages body changes
the answer, a whole Message rebuilt from the events a complete stream delivered, and a whole Message
replayed as the event stream Anthropic would have sent (message_start … message_stop).
"""

import orjson

from wire.sse import SSEParser

# Delta type -> the block field it extends (PROVIDERS.md §2); signature_delta replaces, the others append.
TEXT_DELTAS = {"text_delta": ("text", "text"), "thinking_delta": ("thinking", "thinking")}


def canonical(body: dict) -> dict:
    """The body less `stream` and metadata.user_id (who asks, not what is asked)."""
    canonical = {name: value for name, value in body.items() if name != "stream"}
    metadata = canonical.get("metadata")
    if isinstance(metadata, dict):
        rest = {name: value for name, value in metadata.items() if name != "user_id"}
        if rest:
            canonical["metadata"] = rest
        else:
            canonical.pop("metadata")
    return canonical


def calls_tools(answer: dict) -> bool:
    return answer.get("stop_reason") == "tool_use" or any(
        isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use") for block in answer.get("content") or ())


def answer_from_stream(delivered: list) -> dict | None:
    """The Message a complete stream delivered (encoded events, as the client got them), or None when it
    cannot be rebuilt exactly: no message_stop (a cut stream), an error event, a delta of a kind not known."""
    parser = SSEParser()
    message, blocks, partial_json, stopped = None, {}, {}, False
    for item in delivered:
        for event in parser.feed(item):
            data = orjson.loads(event.data) if event.data.strip() else {}
            kind = data.get("type") or event.event
            if kind == "error":
                return None
            if kind == "message_start":
                message = dict(data["message"])
                message["usage"] = dict(message.get("usage") or {})
            elif kind == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"])
            elif kind == "content_block_delta":
                block, delta = blocks[data["index"]], data.get("delta") or {}
                kind = delta.get("type")
                if kind in TEXT_DELTAS:
                    field, source = TEXT_DELTAS[kind]
                    block[field] = (block.get(field) or "") + str(delta.get(source) or "")
                elif kind == "signature_delta":
                    block["signature"] = delta.get("signature") or ""
                elif kind == "input_json_delta":
                    partial_json[data["index"]] = partial_json.get(data["index"], "") + str(delta.get("partial_json") or "")
                elif kind == "citations_delta":
                    block.setdefault("citations", []).append(delta.get("citation"))
                else:
                    return None
            elif kind == "message_delta" and message is not None:
                message.update({name: value for name, value in (data.get("delta") or {}).items() if name in ("stop_reason", "stop_sequence")})
                message["usage"].update({name: value for name, value in (data.get("usage") or {}).items() if value is not None})
            elif kind == "message_stop":
                stopped = True
    if message is None or not stopped:
        return None
    for index, text in partial_json.items():
        blocks[index]["input"] = orjson.loads(text) if text.strip() else {}
    message["content"] = [blocks[index] for index in sorted(blocks)]
    return message


def event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def stream_of(answer: dict) -> bytes:
    """A whole Message as Anthropic streams it: message_start (input usage), a ping, each block started
    empty, its content in one delta, stopped; message_delta with the stop reason and the usage; message_stop."""
    usage = dict(answer.get("usage") or {})
    start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 0}}
    out = [event("message_start", {"message": start}), event("ping", {})]
    for index, block in enumerate(answer.get("content") or ()):
        kind = block.get("type")
        if kind == "text":
            opened, deltas = {**block, "text": ""}, [{"type": "text_delta", "text": block.get("text") or ""}]
            opened.pop("citations", None)
            deltas += [{"type": "citations_delta", "citation": citation} for citation in block.get("citations") or ()]
        elif kind == "thinking":
            opened = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking") or ""}, {"type": "signature_delta", "signature": block.get("signature") or ""}]
        elif kind in ("tool_use", "server_tool_use"):
            opened, deltas = {**block, "input": {}}, [{"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input") or {}).decode()}]
        else:  # blocks that stream whole (redacted_thinking, tool results)
            opened, deltas = block, []
        out.append(event("content_block_start", {"index": index, "content_block": opened}))
        out += [event("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
        out.append(event("content_block_stop", {"index": index}))
    delta = {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")}
    out.append(event("message_delta", {"delta": delta, "usage": usage}))
    out.append(event("message_stop", {}))
    return b"".join(out)
