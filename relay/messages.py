"""Anthropic's Messages API on /v1/messages (and /v1/messages/count_tokens): this module owns what differs
from chat (the body's checks, the error shape, the "adapters"); relay.pipeline runs the same governed flow.

Anthropic-format deployments get the body as the client sent it, `model` excepted, and their streamed
events go to the client in order, each as it came; usage is read from `message_start` / `message_delta`
only, so the other events cost no JSON parse. Every other wire format is reached through the canonical
chat form (wire.inbound.messages) and that format's own adapter, both ways, chosen per attempt.
"""

import orjson

from relay.streaming import OutputMeter
from relay.validation import check_no_destination
from wire import tokens
from wire.adapters import get_adapter
from wire.adapters.anthropic import ERROR_STATUS, VERSION, map_anthropic_error, usage_from
from wire.adapters.base import LocalResponse, Target, UpstreamRequest, Usage
from wire.adapters.translation import error_object, load_json
from wire.errors import InvalidRequest, RelayError, UpstreamError
from wire.inbound import messages as inbound
from wire.sse import SSEEvent

PATHS = {"/v1/messages": "messages", "/v1/messages/count_tokens": "count_tokens"}
ENDPOINTS = frozenset(PATHS.values())

# Anthropic's request fields (anthropic SDK 2.10 and the samplers older clients still send); anything else
# is refused like an unknown chat parameter (Anthropic itself refuses extra fields). `workspace_id` is left
# out: it picks where on the provider's account a request goes, which is the gateway's choice.
COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management",
                "output_config", "output_format", "cache_control", "speed", "user_profile_id"}
MESSAGES_FIELDS = COUNT_FIELDS | {
    "max_tokens", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k", "service_tier", "container",
    "inference_geo", "diagnostics",
}
# Client headers that change what Anthropic does with the body; forwarded as they came.
FORWARDED_HEADERS = (b"anthropic-version", b"anthropic-beta")

# Our status -> Anthropic's error type (docs.claude.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 409: "invalid_request_error",
               413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
# Sent with a count_tokens answer that the offline tokenizer gave, not the provider.
ESTIMATE_HEADERS = ((b"x-tollgate-token-count", b"estimate"),)


def check_body(endpoint: str, body) -> None:
    """The checks of relay.validation, for a Messages body: clear 400s before anything is forwarded."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    check_no_destination(body)
    unknown = sorted(set(body) - (MESSAGES_FIELDS if endpoint == "messages" else COUNT_FIELDS))
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: Extra inputs are not permitted", param=unknown[0], code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or "\x00" in model or len(model) > 200:
        raise InvalidRequest("model: Field required (a model name).", param="model", code="missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty array).", param="messages", code="missing_required_parameter")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}: each message is an object with role 'user' or 'assistant'.", param=f"messages.{index}")
        if not isinstance(message.get("content"), (str, list)):
            raise InvalidRequest(f"messages.{index}.content: a string or an array of content blocks.", param=f"messages.{index}.content")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise InvalidRequest("system: a string or an array of text blocks.", param="system")
    for name, kind in (("tools", list), ("stream", bool), ("metadata", dict), ("stop_sequences", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise InvalidRequest(f"{name}: wrong type.", param=name, code="invalid_type")
    if endpoint == "messages":
        limit = body.get("max_tokens")
        # Anthropic requires it, and it sizes the budget hold and the stream's output ceiling.
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000_000:
            raise InvalidRequest("max_tokens: Field required (an integer >= 1).", param="max_tokens", code="missing_required_parameter")


def error_body(error: RelayError, request_id: str) -> tuple[int, bytes]:
    """(status, body) of a refusal in Anthropic's shape. Statuses are chat's (the ledger means the same
    thing on every endpoint), except an upstream's 529 overload, which Anthropic's clients know."""
    status = error.status
    if isinstance(error, UpstreamError) and error.upstream_status == 529:
        status = 529
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": error.message}, "request_id": request_id}
    return status, orjson.dumps(body)


def encode_error(error: Exception, stream_id: str | None = None) -> bytes:
    """An error after the first byte, as Anthropic sends it: an `error` event."""
    status = getattr(error, "status", 500)
    if getattr(error, "upstream_status", None) == 529:
        status = 529
    kind = ERROR_TYPES.get(status, "api_error")
    payload = {"type": "error", "error": {"type": kind, "message": getattr(error, "message", "The upstream stream failed.")}}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def answer_text(answer) -> str:
    """The generated text of a Messages answer or of streamed Messages events (bytes), for estimates."""
    if isinstance(answer, dict):
        return "".join(_block_text(block) for block in answer.get("content") or [] if isinstance(block, dict))
    return stream_text(answer)


def _block_text(block: dict) -> str:
    if "input" in block and isinstance(block.get("input"), dict):
        return orjson.dumps(block["input"]).decode()
    return str(block.get("text") or block.get("thinking") or "")


def stream_text(delivered: list) -> str:
    """The delta text of delivered Messages events (text, thinking, tool input JSON)."""
    parts = []
    for item in delivered:
        start = item.find(b"data: ")
        if start < 0 or b"content_block_delta" not in item:
            continue
        try:
            delta = orjson.loads(item[start + 6 :]).get("delta") or {}
        except (orjson.JSONDecodeError, AttributeError):
            continue
        parts.append(str(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""))
    return "".join(parts)


class MessagesMeter(OutputMeter):
    """Bounds a Messages stream's output (relay.streaming.OutputMeter), reading Anthropic's deltas."""

    __slots__ = ()
    read_text = staticmethod(stream_text)


class PassThroughStream:
    """Every upstream event goes to the client as it came; usage is read on the way."""

    done = b""  # Anthropic's streams end with message_stop, not [DONE]
    usage_forwarded = True
    encode_error = staticmethod(encode_error)
    stream_text = staticmethod(stream_text)
    meter = MessagesMeter

    def __init__(self):
        # The whole usage arrives with message_delta; message_start's input figures alone (its
        # output_tokens is a placeholder) serve to bill a stream cut short (relay.pipeline._estimate).
        self.usage: Usage | None = None
        self.prompt_usage: Usage | None = None
        self.stream_id = ""
        self._raw_usage: dict = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        kind = event.event
        if kind in ("message_start", "message_delta", "error") or kind is None:
            data = orjson.loads(event.data) if event.data.strip() else {}
            kind = kind or data.get("type")
            if kind == "error":
                error = data.get("error") or {}
                raise map_anthropic_error(ERROR_STATUS.get(error.get("type"), 500), error, {})
            if kind == "message_start":
                message = data.get("message") or {}
                self.stream_id = str(message.get("id") or "")
                if isinstance(message.get("usage"), dict):
                    self._raw_usage.update({k: v for k, v in message["usage"].items() if v is not None})
                    self.prompt_usage = usage_from({**self._raw_usage, "output_tokens": 0})
            elif kind == "message_delta":
                self._add_usage(data.get("usage"))  # output_tokens there is cumulative
        head = b"event: " + event.event.encode() + b"\n" if event.event else b""
        data = event.data if b"\n" not in event.data else event.data.replace(b"\n", b"\ndata: ")  # a multi-line event stays one
        return [head + b"data: " + data + b"\n\n"]

    def _add_usage(self, raw) -> None:
        if isinstance(raw, dict):
            self._raw_usage.update({k: v for k, v in raw.items() if v is not None})
            self.usage = usage_from(self._raw_usage)

    def finish(self) -> list:
        return []


class PassThrough:
    """The "adapter" of an Anthropic-format deployment for one /v1/messages request: it forwards the
    client's body and its anthropic-version / anthropic-beta headers, with the credential's key."""

    name = "anthropic"
    local = False
    endpoints = ENDPOINTS

    def __init__(self, conn=None):
        self.headers = {name.decode(): conn.header(name) for name in FORWARDED_HEADERS if conn.header(name)} if conn else {}

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        headers = {"anthropic-version": VERSION, **target.extra_headers, **self.headers,
                   "x-api-key": target.api_key, "content-type": "application/json"}
        if "anthropic-beta" in self.headers and target.extra_headers.get("anthropic-beta"):  # both sets of betas
            headers["anthropic-beta"] = target.extra_headers["anthropic-beta"] + "," + self.headers["anthropic-beta"]
        path = "/v1/messages/count_tokens" if endpoint == "count_tokens" else "/v1/messages"
        return UpstreamRequest("POST", target.base_url.rstrip("/") + path, headers, orjson.dumps(body))

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[bytes, Usage | None]:
        data = load_json(body)
        if data.get("type") == "error" or isinstance(data.get("error"), dict):  # an error inside a 200
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            raise map_anthropic_error(ERROR_STATUS.get(error.get("type"), 500), error, {})
        if endpoint == "count_tokens":
            return body, Usage()  # counting is free: a zero row in the ledger
        return body, usage_from(data.get("usage"))

    def stream_translator(self, **_) -> PassThroughStream:
        return PassThroughStream()

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return map_anthropic_error(status, error_object(body), headers)


class DemoMessages(PassThrough):
    """The demo provider (wire/adapters/mock.py) answering in Anthropic's format, in-process."""

    local = True

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        return UpstreamRequest("POST", f"mock://local/{endpoint}", {}, orjson.dumps(body))

    async def local_call(self, request: UpstreamRequest, endpoint: str):
        from wire.adapters import mock  # reads Django settings: imported when first used

        return await mock.messages_call(orjson.loads(request.body), endpoint)


class Translated:
    """A deployment of another wire format for one /v1/messages attempt: the Messages body becomes a chat
    body (wire.inbound.messages) that the format's own adapter sends, and its answer comes back as Messages."""

    local = False
    endpoints = frozenset({"messages"})

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.stop_sequences = None

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        self.stop_sequences = body.get("stop_sequences")
        return self.inner.build_request(endpoint="chat", body=inbound.to_chat(body, target, stream), target=target, stream=stream)

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        answer, usage = self.inner.parse_response(endpoint="chat", body=body, target=target, model=model)
        answer = load_json(answer) if isinstance(answer, bytes) else answer
        return inbound.from_chat(answer, usage, model, self.stop_sequences), usage

    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False) -> "TranslatedStream":
        inner = self.inner.stream_translator(target=target, model=model, request_id=request_id, include_usage=False)
        return TranslatedStream(inner, model, self.stop_sequences)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return self.inner.map_error(status=status, body=body, headers=headers)


class TranslatedStream:
    """The format's own stream translator (upstream events -> chat chunks), then chat chunks -> Anthropic's
    events. Usage is the inner translator's: exact when the upstream reported it."""

    done = b""
    usage_forwarded = True
    prompt_usage = None  # a chat stream reports its input only at the end
    encode_error = staticmethod(encode_error)
    stream_text = staticmethod(stream_text)
    meter = MessagesMeter

    def __init__(self, inner, model: str, stop_sequences):
        self.inner = inner
        self.events = inbound.MessagesStream(model, stop_sequences)
        self.stream_id = ""

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    def feed(self, event: SSEEvent) -> list[bytes]:
        return self._translate(self.inner.feed(event))

    def finish(self) -> list[bytes]:
        return self._translate(self.inner.finish()) + self.events.finish(self.inner.usage)

    def _translate(self, chunks: list) -> list[bytes]:
        out = []
        for chunk in chunks:  # the OpenAI adapter forwards encoded chunks ("data: {…}\n\n"), the others dicts
            out += self.events.feed(orjson.loads(chunk[6:]) if isinstance(chunk, bytes) else chunk)
        return out


class CountEstimate:
    """count_tokens for a deployment of another wire format: the input translated as for the upstream, counted
    by the offline tokenizer (wire.tokens), answered locally and marked as an estimate."""

    name = "estimate"
    local = True
    endpoints = frozenset({"count_tokens"})
    response_headers = ESTIMATE_HEADERS

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        count = tokens.estimate_prompt("chat", inbound.to_chat(body, target, False))
        return UpstreamRequest("POST", "local://count_tokens", {}, orjson.dumps({"input_tokens": count}))

    async def local_call(self, request: UpstreamRequest, endpoint: str):
        async def body():
            yield request.body

        return LocalResponse(200, body())

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[bytes, Usage]:
        return body, Usage()  # counting is free, as on Anthropic

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return UpstreamError(f"Upstream error (HTTP {status}).", upstream_status=status)


COUNT_ESTIMATE = CountEstimate()
DEMO = DemoMessages()  # no client header to forward: nothing goes over the network


def adapters(conn):
    """wire -> adapter for this request's deployments: Anthropic's passes through, the demo answers locally,
    every other format is translated (a new one per attempt: it keeps the attempt's stop sequences)."""
    passthrough = PassThrough(conn)
    counting = PATHS.get(conn.scope["path"]) == "count_tokens"

    def pick(wire: str):
        if wire == "anthropic":
            return passthrough
        if wire == "mock":
            return DEMO
        return COUNT_ESTIMATE if counting else Translated(get_adapter(wire))

    return pick
