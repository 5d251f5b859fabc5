"""OpenAI wire format, shared by every OpenAI-compatible preset (wire.presets).

Nothing needs translating, so bodies pass through untouched: the response bytes are forwarded as
they are and stream events are only scanned for `usage`. Provider extras such as DeepSeek's
`reasoning_content` therefore reach the client intact.
"""

import time

import orjson

from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.errors import MalformedUsage, UpstreamCredentialRejected, UpstreamError, UpstreamRateLimited, UpstreamRejected, sanitize_upstream_message
from wire.sse import SSEEvent
from wire.usage import usage_number

PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}


def usage_from_openai(usage: dict | None) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    # Every figure through usage_number, as it is parsed (a non-number raises MalformedUsage, which ends a
    # stream with an error event); relay.record.Record.usage bounds them.
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = {}
    # DeepSeek reports cache hits beside prompt tokens rather than in the details.
    cached = usage_number(details.get("cached_tokens")) or usage_number(usage.get("prompt_cache_hit_tokens"))
    return Usage(prompt_tokens=usage_number(usage.get("prompt_tokens")), completion_tokens=usage_number(usage.get("completion_tokens")),
                 cached_tokens=cached)


def retry_after_seconds(headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def map_http_error(status: int, message: str, headers, *, code: str | None = None) -> UpstreamError:
    """Classify an upstream failure for every wire format: whose fault, and may another attempt help."""
    message = sanitize_upstream_message(message) or f"Upstream answered HTTP {status}."
    if status == 429:
        return UpstreamRateLimited(message, upstream_status=status, retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        # The provider refused the gateway's credential: an operator problem, not the caller's.
        return UpstreamCredentialRejected(upstream_status=status)
    if status == 402:
        return UpstreamError("The upstream provider account has no balance left.", upstream_status=status, code="upstream_billing")
    if status in (400, 413, 422):
        reject_code = code if code in _CONTEXT_CODES else "upstream_invalid_request"
        return UpstreamRejected(message, status=400 if status == 422 else status, upstream_status=status, code=reject_code)
    if status == 404:
        return UpstreamError("The upstream does not know this model or endpoint.", upstream_status=status, code="upstream_not_found")
    return UpstreamError(f"Upstream error (HTTP {status}).", upstream_status=status, retry_after=retry_after_seconds(headers))


def _usage_near_the_end(body: bytes) -> dict | None:
    """The `usage` object without parsing the whole answer (an 18 KB embedding: 0.5 µs, not 33 µs).

    Providers put `usage` last; anything unexpected returns None and the caller parses it all.
    """
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    start = body.find(b"{", at)
    if start < 0 or body[at + 7 : start].strip(b" \t\r\n:"):
        return None  # "usage": null, or not what it seemed
    end = body.find(b"}", start)
    while end >= 0 and body.count(b"{", start, end) != body.count(b"}", start, end + 1):
        end = body.find(b"}", end + 1)
    if end < 0:
        return None
    try:
        usage = orjson.loads(body[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    return usage if isinstance(usage, dict) and "prompt_tokens" in usage else None


def error_in_200(error) -> UpstreamError:
    """An `error` object in a 200 answer (whole or streamed): a failure, classified by the status or code
    it names when it names one."""
    error = error if isinstance(error, dict) else {"message": str(error or "")}
    status = error.get("status") if isinstance(error.get("status"), int) else error.get("code")
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return map_http_error(status, str(error.get("message") or ""), {}, code=error.get("code"))
    message = sanitize_upstream_message(str(error.get("message") or "")) or "The upstream answered with an error."
    return UpstreamError(message, upstream_status=200, retryable=False)


def rewrite_model(data: bytes, quoted: bytes) -> bytes:
    """`data` with its first "model" string value replaced by `quoted` (a JSON string, quotes included)."""
    span = model_span(data)
    return data if span is None else data[: span[1]] + quoted + data[span[2] + 1 :]


def model_span(data: bytes) -> tuple[int, int, int] | None:
    """Where the first `"model": "…"` is: (key, opening quote, closing quote) offsets, or None.

    OpenAI puts the top-level `model` before `choices`, so the first match is it; a quote inside a JSON
    string is always escaped, so content cannot fake the key. A few find() calls, no parsing.
    """
    at = data.find(b'"model"')
    if at < 0:
        return None
    start = data.find(b'"', at + 7)
    if start < 0 or data[at + 7 : start].strip(b" \t\r\n") != b":":
        return None
    end = data.find(b'"', start + 1)
    while end > 0 and data[end - 1] == 0x5C:  # "\"": escaped unless the backslash is itself escaped
        slashes = len(data[start + 1 : end]) - len(data[start + 1 : end].rstrip(b"\\"))
        if slashes % 2 == 0:
            break
        end = data.find(b'"', end + 1)
    return None if end < 0 else (at, start, end)


class PassthroughStream:
    """Forwards OpenAI stream events as they are, noting usage on the way and putting the public model
    name in place of the upstream's (which would reveal A/B variants)."""

    def __init__(self, *, include_usage: bool, model: str = ""):
        self.include_usage = include_usage  # the client asked for the usage chunk
        self.usage: Usage | None = None
        self.usage_forwarded = False
        self.error: UpstreamError | None = None
        self.stream_id = ""  # the upstream's chunk id, for the chunks the gateway adds
        self._model = orjson.dumps(model) if model else b""
        self._seen = self._public = b""  # the upstream's `"model":"…"` bytes, and ours
        self._grows = False

    def feed(self, event: SSEEvent) -> list:
        data = event.data
        if data == b"[DONE]":
            return []
        if event.event == "error":
            raise error_in_200(_error_of(data))
        if data[:1] != b"{" or (data[-1:] != b"}" and data.rstrip()[-1:] != b"}"):  # a cheap shape check
            raise MalformedUsage("The upstream sent a stream event that is not a JSON object.")
        at = data.find(b'"usage"')
        if at >= 0 and data[at + 7 : at + 14].lstrip(b": ")[:4] != b"null":
            parsed = orjson.loads(data)
            self.usage = usage_from_openai(parsed.get("usage")) or self.usage
            if not parsed.get("choices"):
                if isinstance(parsed.get("error"), (dict, str)):
                    raise error_in_200(parsed["error"])
                if not self.include_usage:
                    return []  # we asked for it on the client's behalf
                self.usage_forwarded = True
        elif data.startswith(b'{"error"'):
            parsed = orjson.loads(data)
            if isinstance(parsed.get("error"), (dict, str)) and not parsed.get("choices"):
                raise error_in_200(parsed["error"])
        if not self.stream_id:
            self.stream_id = chunk_id(data)
        if self._model:
            # Upstreams repeat the same `"model":"…"` in every chunk: learnt once, then one replace()
            # (a length that did not change says it found nothing; equal lengths need a look first).
            if self._grows:
                replaced = data.replace(self._seen, self._public, 1)
                data = replaced if len(replaced) != len(data) else self._learn(data)
            elif self._seen and self._seen in data:
                data = data.replace(self._seen, self._public, 1)
            else:
                data = self._learn(data)
        return [b"data: " + data + b"\n\n"]

    def _learn(self, data: bytes) -> bytes:
        span = model_span(data)
        if span is None:
            return data
        at, start, end = span
        self._seen, self._public = data[at : end + 1], data[at:start] + self._model
        self._grows = len(self._seen) != len(self._public)
        return data[:start] + self._model + data[end + 1 :]

    def finish(self) -> list:
        return []


def _error_of(data: bytes):
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"message": ""}
    return parsed.get("error", parsed) if isinstance(parsed, dict) else {"message": ""}


def chunk_id(data: bytes) -> str:
    """The chunk's top-level `id` (OpenAI puts it first), read once per stream."""
    if not data.startswith(b'{"id":"'):
        try:
            value = orjson.loads(data).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            return ""
        return value if isinstance(value, str) else ""
    end = data.find(b'"', 7)
    return data[7:end].decode("utf-8", "replace") if end > 0 else ""


class OpenAIAdapter:
    name = "openai"
    endpoints = frozenset(PATHS)
    local = False

    def url(self, target: Target, endpoint: str) -> str:
        return target.base_url.rstrip("/") + PATHS[endpoint]

    def auth_headers(self, target: Target) -> dict[str, str]:
        return {"authorization": f"Bearer {target.api_key}"}

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        if stream and target.stream_usage and endpoint in ("chat", "completions"):
            options = body.get("stream_options") or {}
            if not options.get("include_usage"):
                body["stream_options"] = {**options, "include_usage": True}
        headers = {**target.extra_headers, **self.auth_headers(target), "content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", self.url(target, endpoint), headers, orjson.dumps(body))

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[bytes, Usage | None]:
        """The body as it came, with the public model name in `model`; usage read from its end."""
        usage = _usage_near_the_end(body)
        if usage is not None:
            return rewrite_model(body, orjson.dumps(model)), usage_from_openai(usage)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedUsage("The upstream answered with a body that is not JSON.") from exc
        if not isinstance(parsed, dict):
            raise MalformedUsage("The upstream answered with an unexpected body.")
        if parsed.get("error") and not parsed.get("choices") and not parsed.get("data"):
            raise error_in_200(parsed["error"])  # an error inside a 200
        return rewrite_model(body, orjson.dumps(model)), usage_from_openai(parsed.get("usage"))

    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False):
        return PassthroughStream(include_usage=include_usage, model=model)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        message, code = "", None
        try:
            error = orjson.loads(body).get("error")
            if isinstance(error, dict):
                message, code = str(error.get("message") or ""), error.get("code")
            elif isinstance(error, str):
                message = error
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return map_http_error(status, message, headers, code=code)


def chat_chunk(request_id: str, model: str, delta: dict, finish_reason=None, created: int | None = None) -> dict:
    """An OpenAI `chat.completion.chunk`, for adapters that translate."""
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


adapter = OpenAIAdapter()
