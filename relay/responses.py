"""OpenAI's Responses API on /v1/responses, through any deployment that serves chat: this module owns what
differs from chat (the body's checks, the adapter that translates on the way out and back, stored
responses); relay.pipeline runs the same governed flow as for chat (README "OpenAI Responses").

The translation itself is wire.inbound.responses. A request is stateless unless it says `store: true`:
then the finished Response is written by a background task after it was sent (never before, the relay
writes no SQL on the response path), and `previous_response_id` is read once, only when it is given.
"""

import asyncio
import logging
from urllib.parse import parse_qsl

import orjson

from relay import control
from relay.db import run_db
from relay.streaming import OutputMeter
from relay.validation import check_no_destination
from wire import tokens
from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.errors import MalformedUsage, MethodNotAllowed, NotFound, UpstreamError
from wire.inbound import response_items, responses as wire_responses
from wire.inbound.responses import HISTORY, Envelope, EventStream, delta_text, encode_event, from_chat, to_chat, usage_dict, usage_of
from wire.sse import SSEEvent

log = logging.getLogger(__name__)

PATH = "/v1/responses"
ENDPOINT = "responses"
STORED_PREFIX = PATH + "/"
INPUT_ITEMS = "/input_items"
# Providers whose chat API refuses max_tokens for newer models: the output limit goes as max_completion_tokens.
COMPLETION_TOKENS_PROVIDERS = frozenset({"openai", "azure"})


def check_body(endpoint: str, body) -> None:
    """The checks of relay.validation, for a Responses body: clear 400s before anything is forwarded."""
    wire_responses.check_body(body)
    check_no_destination(body)


def answer_text(answer) -> str:
    """The generated text of a Response object (estimates when the upstream reported no usage)."""
    return wire_responses.output_text(answer) if isinstance(answer, dict) and answer.get("object") == "response" else ""


class ResponsesMeter(OutputMeter):
    """Bounds a Responses stream's output (relay.streaming.OutputMeter), reading its delta events."""

    __slots__ = ()
    read_text = staticmethod(delta_text)


def responses_usage(usage: Usage | None, raw) -> dict | None:
    """The Responses `usage`: the figures the request is billed on, and reasoning tokens as the upstream reported them."""
    if usage is None:
        return usage_of(raw)
    reasoning = (usage_of(raw) or {}).get("output_tokens_details", {}).get("reasoning_tokens", 0)
    return usage_dict(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens, reasoning)


# Sent with a whole Response whose usage is the gateway's offline estimate (the upstream reported none), as
# count_tokens marks its estimates (relay.messages); a stream, whose headers left before, says so in `usage`.
ESTIMATE_HEADERS = ((b"x-tollgate-usage", b"estimate"),)


def estimated_usage(body: dict, text: str, prompt_usage: Usage | None = None) -> dict:
    """The Responses `usage` the ledger bills when the upstream reported none: the same offline count as
    relay.record.Record.estimate (the input as sent, the generated text), flagged `estimated`. Counted here, on
    the event loop: only answers from upstreams that report no usage pay it."""
    prompt = prompt_usage.prompt_tokens if prompt_usage is not None else tokens.estimate_prompt(ENDPOINT, body)
    cached = prompt_usage.cached_tokens if prompt_usage is not None else 0
    cache_write = prompt_usage.cache_write_tokens if prompt_usage is not None else 0
    return {**usage_dict(prompt, tokens.count_text(text), cached, cache_write), "estimated": True}


class Turn:
    """One /v1/responses request: the Response's id and echoed settings (the same over every attempt),
    and where the finished Response goes when it is to be stored."""

    def __init__(self, key, body: dict):
        self.key, self.body = key, body
        self.envelope: Envelope | None = None

    def start(self, model: str) -> Envelope:
        if self.envelope is None:
            self.envelope = Envelope(self.body, model)
        self.envelope.model = model
        return self.envelope

    def done(self, response: dict) -> None:
        if self.body.get("store") and response.get("status") in ("completed", "incomplete"):
            items = response_items.with_ids([*(self.body.get(HISTORY) or ()), *wire_responses.input_items(self.body)])
            writer.save(self.key.organization_id, self.key.id, response, items)


class Translated:
    """A chat adapter serving /v1/responses: the request is translated to chat before it is built, the
    answer (or each streamed chunk) from chat after it is parsed."""

    def __init__(self, inner, turn: Turn):
        self.inner, self.turn = inner, turn
        self.name, self.local = inner.name, inner.local
        self.endpoints = frozenset({ENDPOINT}) if "chat" in inner.endpoints else frozenset()
        self.answer_headers = ()  # set by parse_response: the whole answer's own headers

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        field = "max_completion_tokens" if target.provider in COMPLETION_TOKENS_PROVIDERS else "max_tokens"
        return self.inner.build_request(endpoint="chat", body=to_chat(body, tokens_field=field), target=target, stream=stream)

    async def local_call(self, request: UpstreamRequest, endpoint: str):
        return await self.inner.local_call(request, "chat")

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        answer, usage = self.inner.parse_response(endpoint="chat", body=body, target=target, model=model)
        chat = orjson.loads(answer) if isinstance(answer, bytes) else answer
        if not isinstance(chat, dict):
            raise MalformedUsage("The upstream answered with an unexpected body.")
        response = from_chat(chat, self.turn.start(model), responses_usage(usage, chat.get("usage")))
        self.answer_headers = ()
        if response["usage"] is None:
            response["usage"] = estimated_usage(self.turn.body, wire_responses.output_text(response))
            self.answer_headers = ESTIMATE_HEADERS
        self.turn.done(response)
        return response, usage

    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False):
        # The inner translator passes the usage chunk on: its reasoning tokens go into response.completed.
        inner = self.inner.stream_translator(target=target, model=model, request_id=request_id, include_usage=True)
        return TranslatedStream(inner, self.turn, model)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return self.inner.map_error(status=status, body=body, headers=headers)


class TranslatedStream:
    """The chat chunks of the inner translator, as Responses events (no [DONE]: Responses streams end
    with response.completed)."""

    done = b""
    usage_forwarded = True
    meter = ResponsesMeter
    stream_text = staticmethod(delta_text)

    def __init__(self, inner, turn: Turn, model: str):
        self.inner, self.turn = inner, turn
        self.events = EventStream(turn.start(model))
        self.stream_id = self.events.envelope.id

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property
    def prompt_usage(self) -> Usage | None:
        return getattr(self.inner, "prompt_usage", None)

    def feed(self, event: SSEEvent) -> list[bytes]:
        return self._translate(self.inner.feed(event))

    def _translate(self, chunks) -> list[bytes]:
        out: list[bytes] = []
        for chunk in chunks:
            if isinstance(chunk, bytes):
                start = chunk.find(b"data: ")
                chunk = orjson.loads(chunk[start + 6 :]) if start >= 0 else None
            if isinstance(chunk, dict):
                out += self.events.feed(chunk)
        return out

    def finish(self) -> list[bytes]:
        out = self._translate(self.inner.finish())
        usage = responses_usage(self.inner.usage, self.events.raw_usage)
        if usage is None:
            usage = estimated_usage(self.turn.body, "".join(self.events.generated), self.prompt_usage)
        out += self.events.finish(usage)
        self.turn.done(self.events.final)
        return out

    def encode_error(self, error, stream_id: str | None = None) -> bytes:
        return self.events.fail(getattr(error, "code", "server_error"), getattr(error, "message", "The upstream stream failed."))


def replay_error(delivered: list[bytes]):
    """Encodes the `error` event that ends a stream replayed for an Idempotency-Key after its client left,
    numbered after the events delivered (each ends with a blank line; JSON data never holds one)."""
    sequence = sum(chunk.count(b"\n\n") for chunk in delivered)

    def encode(error, stream_id: str | None = None) -> bytes:
        return encode_event({"type": "error", "sequence_number": sequence, "code": error.code, "message": error.message, "param": None})

    return encode


def adapters(key, body: dict):
    """wire -> adapter for this request's deployments: each wire format's own chat adapter, translated."""
    from wire.adapters import get_adapter

    turn, made = Turn(key, body), {}

    def adapter_for(wire: str):
        if wire not in made:
            made[wire] = Translated(get_adapter(wire), turn)
        return made[wire]

    return adapter_for


# -- stored responses -------------------------------------------------------------------------------
class Writer:
    """Writes stored responses in background tasks, after they were sent. A read of an id still being
    written by this process waits for it, so a client continuing at once finds its previous turn."""

    def __init__(self):
        self.pending: dict[str, asyncio.Task] = {}

    def save(self, organization_id: int, key_id: int, response: dict, items: list) -> None:
        task = asyncio.get_running_loop().create_task(self._save(organization_id, key_id, response, items))
        self.pending[response["id"]] = task
        task.add_done_callback(lambda _: self.pending.pop(response["id"], None))

    async def _save(self, organization_id, key_id, response, items) -> None:
        try:
            await run_db(control.response_save, organization_id=organization_id, key_id=key_id, response=response, items=items)
        except Exception:
            log.exception("storing response %s failed", response.get("id"))

    async def drain(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending.values(), return_exceptions=True)

    async def settled(self, response_id: str) -> None:
        task = self.pending.get(response_id)
        if task is not None:
            await asyncio.shield(task)


writer = Writer()


async def _stored(organization_id: int, response_id: str):
    if not response_id or len(response_id) > 64:
        return None
    await writer.settled(response_id)
    return await run_db(control.response_get, organization_id=organization_id, response_id=response_id)


async def prepare(key, body: dict) -> dict:
    """The body with the items of the turns before it (HISTORY) when it continues a stored response."""
    previous = body.get("previous_response_id")
    if not previous:
        return body
    stored = await _stored(key.organization_id, previous)
    if stored is None:
        raise NotFound(f"Previous response with id '{previous}' not found.", param="previous_response_id",
                       code="previous_response_not_found")
    return {**body, HISTORY: [*stored.items, *stored.response.get("output", [])]}


async def handle_stored(conn, key, response_id: str) -> None:
    """GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: the organization's own stored
    responses only."""
    method = conn.scope["method"]
    if response_id.endswith(INPUT_ITEMS):
        if method != "GET":
            raise MethodNotAllowed(f"Use GET for {STORED_PREFIX}{{id}}{INPUT_ITEMS}.")
        response_id = response_id[: -len(INPUT_ITEMS)]
        stored = await _stored(key.organization_id, response_id)
        if stored is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        query = dict(parse_qsl(conn.scope.get("query_string", b"").decode("latin-1")))
        await conn.respond(200, orjson.dumps(response_items.page(response_items.listed(stored.items, response_id), query)))
    elif method == "GET":
        stored = await _stored(key.organization_id, response_id)
        if stored is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        await conn.respond(200, orjson.dumps(stored.response))
    elif method == "DELETE":
        await writer.settled(response_id)
        if len(response_id) > 64 or not await run_db(control.response_delete, organization_id=key.organization_id, response_id=response_id):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        await conn.respond(200, orjson.dumps({"id": response_id, "object": "response", "deleted": True}))
    else:
        raise MethodNotAllowed(f"Use GET or DELETE for {STORED_PREFIX}{{id}}.")
