"""GET /v1/responses/{id}/input_items: a stored Response's input items as OpenAI lists them (a `list` object
with `data`, `first_id`, `last_id`, `has_more`), paged by `limit`, `order` and `after`.

Items are given ids when stored (`with_ids`); rows stored before that get ids derived from the response id and
the item's place, so the same item keeps its id from one listing to the next (`after` needs that).
"""

import hashlib

from wire.errors import InvalidRequest
from wire.inbound.responses import new_id

PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def with_ids(items: list) -> list:
    """The items, each with an `id` (a new one where the client sent none), for storing."""
    return [item if item.get("id") else {**item, "id": new_id(PREFIXES.get(item.get("type", "message"), "item"))} for item in items]


def listed(items: list, response_id: str) -> list:
    """The stored items in the shape the openai SDK reads (a message's text content as input parts)."""
    out = []
    for index, item in enumerate(items):
        item = {"type": "message", **item}
        if not item.get("id"):
            digest = hashlib.sha256(f"{response_id}:{index}".encode()).hexdigest()[:32]
            item["id"] = f"{PREFIXES.get(item['type'], 'item')}_{digest}"
        if item["type"] == "message":
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
            item.setdefault("status", "completed")
        out.append(item)
    return out


def page(items: list, query: dict) -> dict:
    """One page of `items` (oldest first) for the query's `limit` (1-100, default 20), `order` (`desc`,
    the default, or `asc`) and `after` (an item id: the page starts after it)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}.", param="limit", code="invalid_value")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        position = next((index for index, item in enumerate(ordered) if item.get("id") == after), None)
        if position is None:
            raise InvalidRequest(f"No input item with id '{after}' in this response.", param="after", code="invalid_value")
        ordered = ordered[position + 1 :]
    data = ordered[: int(raw_limit)]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(ordered) > len(data)}
