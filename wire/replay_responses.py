"""The response cache's OpenAI Responses side (README "Response cache"): what of a Responses body changes the
answer, the Response a complete stream ended with, and a whole Response replayed as the typed events the
openai SDK reads (numbered by sequence_number, ending with response.completed).
"""

import orjson

from wire.sse import SSEParser

NOT_IN_FINGERPRINT = frozenset({"stream", "stream_options", "metadata", "user"})
# Echoed from the request into the Response, but left out of the fingerprint: a hit echoes the new request's.
ECHOED = ("metadata", "user")
FINAL_EVENTS = {"completed": "response.completed", "incomplete": "response.incomplete"}
ENDING_MARKERS = (b"response.completed", b"response.incomplete", b"response.failed", b"event: error")


def canonical(body: dict) -> dict:
    return {name: value for name, value in body.items() if name not in NOT_IN_FINGERPRINT}


def cacheable(body: dict) -> bool:
    """Stateless requests only. With `store` the client is promised a Response of its own, under a new id it
    may read, continue and delete (a replay would hand it the id of another request's, maybe deleted); with
    `previous_response_id` the answer rests on stored turns that the body only names and that can be deleted."""
    return not body.get("store") and not body.get("previous_response_id")


def calls_tools(answer: dict) -> bool:
    return any(isinstance(item, dict) and item.get("type") == "function_call" for item in answer.get("output") or ())


def echo(answer: dict, body: dict) -> dict:
    """The cached Response, with this request's own metadata and user echoed."""
    return {**answer, "metadata": body.get("metadata") or {}, "user": body.get("user")}


def answer_from_stream(delivered: list) -> dict | None:
    """The Response of the response.completed (or .incomplete) event that ended a complete stream, else None.
    Each delivered item holds whole events, so only those that may end the stream are parsed."""
    final = None
    for item in delivered:
        if not any(marker in item for marker in ENDING_MARKERS):
            continue
        for event in SSEParser().feed(item):
            data = orjson.loads(event.data) if event.data.strip() else {}
            kind = data.get("type") or event.event
            if kind in ("error", "response.failed"):
                return None
            if kind in FINAL_EVENTS.values():
                final = data.get("response")
    return final if isinstance(final, dict) else None


class _Events:
    def __init__(self):
        self.sequence, self.out = 0, []

    def add(self, kind: str, **fields) -> None:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")


def stream_of(answer: dict) -> bytes:
    """A whole Response as its stream: response.created and .in_progress, each output item added, its content
    in one delta, done; then response.completed (or .incomplete) carrying the whole Response."""
    events = _Events()
    snapshot = {**answer, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events.add("response.created", response=snapshot)
    events.add("response.in_progress", response=snapshot)
    for index, item in enumerate(answer.get("output") or ()):
        kind = item.get("type")
        where = {"item_id": item.get("id"), "output_index": index}
        if kind == "message":
            events.add("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
            for number, part in enumerate(item.get("content") or ()):
                _part(events, part, {**where, "content_index": number})
        elif kind == "reasoning":
            events.add("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
            for number, part in enumerate(item.get("content") or ()):
                text = part.get("text") or ""
                events.add("response.reasoning_text.delta", delta=text, **where, content_index=number)
                events.add("response.reasoning_text.done", text=text, **where, content_index=number)
        elif kind == "function_call":
            events.add("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""})
            arguments = item.get("arguments") or ""
            events.add("response.function_call_arguments.delta", delta=arguments, **where)
            events.add("response.function_call_arguments.done", arguments=arguments, name=item.get("name"), **where)
        else:
            events.add("response.output_item.added", output_index=index, item=item)
        events.add("response.output_item.done", output_index=index, item=item)
    events.add(FINAL_EVENTS.get(answer.get("status"), "response.completed"), response=answer)
    return b"".join(events.out)


def _part(events: _Events, part: dict, where: dict) -> None:
    if part.get("type") == "refusal":
        events.add("response.content_part.added", part={"type": "refusal", "refusal": ""}, **where)
        events.add("response.refusal.delta", delta=part.get("refusal") or "", **where)
        events.add("response.refusal.done", refusal=part.get("refusal") or "", **where)
    else:
        events.add("response.content_part.added", part={**part, "text": "", "annotations": []}, **where)
        events.add("response.output_text.delta", delta=part.get("text") or "", logprobs=[], **where)
        events.add("response.output_text.done", text=part.get("text") or "", logprobs=[], **where)
    events.add("response.content_part.done", part=part, **where)
