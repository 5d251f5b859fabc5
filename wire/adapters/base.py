"""The adapter contract: one module per wire format under wire/adapters/.

An adapter turns an OpenAI-format request into the upstream's HTTP request, and the upstream's
answer (whole body, or stream events) back into OpenAI format. Adapters never touch the client
connection: they return bytes/objects and `relay.app` writes the response.
"""

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wire.sse import SSEEvent


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: a snapshot of a Deployment and its decrypted credential."""

    deployment_id: int
    provider: str  # preset slug (wire.presets)
    wire: str  # adapter name
    base_url: str
    api_key: str
    upstream_model: str
    api_version: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Snapshots always carry the credential's own; these match wire.presets' defaults for new credentials.
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    stream_usage: bool = True  # ask for stream_options.include_usage


@dataclass
class Usage:
    prompt_tokens: int = 0  # total input, cached included
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens read from a cache
    cache_write_tokens: int = 0  # part of prompt_tokens written to a cache (Anthropic's cache_creation_input_tokens)
    search_units: int = 0  # rerank: Cohere's billed search units (wire.adapters.rerank)


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


class UpstreamBody(Protocol):
    """The body of an upstream answer, read as it arrives (aiohttp's StreamReader offers these)."""

    def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """Chunks of at most `n` bytes (a whole answer)."""

    def iter_any(self) -> AsyncIterator[bytes]:
        """Whatever each read received (a stream)."""


class UpstreamResponse(Protocol):
    """An upstream's answer as relay.upstream reads it, whatever the transport: aiohttp's ClientResponse
    over HTTP, or an in-process answer (`LocalTransport.local_call`: a LocalResponse below)
    offering the same members."""

    status: int
    headers: Mapping[str, str]
    content: UpstreamBody

    async def read(self) -> bytes:
        """The whole body at once (the credential test; the relay reads `content`, with its size cap)."""

    def release(self) -> None:
        """The answer was read to its end (its connection goes back to the pool)."""

    def close(self) -> None:
        """The answer is abandoned (its connection is closed, which stops the generation upstream)."""


class LocalResponse:
    """An in-process answer (the demo provider's, a local count) with the members of an HTTP one
    (UpstreamResponse above), so the relay reads both alike. It is its own `content`; `body_chunks` (an
    async iterator) come as they were made, whatever the chunk size asked."""

    __slots__ = ("status", "headers", "_chunks")

    def __init__(self, status: int, body_chunks):
        self.status = status
        self.headers = {"content-type": "application/json"}
        self._chunks = body_chunks

    @property
    def content(self) -> "LocalResponse":
        return self

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks])

    def iter_chunked(self, n: int):
        return self._chunks

    def iter_any(self):
        return self._chunks

    def close(self) -> None:
        pass

    release = close


class StreamTranslator(Protocol):
    """Stateful, one per streamed response."""

    usage: Usage | None  # filled as usage arrives

    def feed(self, event: SSEEvent) -> list[dict]:
        """Upstream event in, OpenAI `chat.completion.chunk` dicts out (possibly none)."""

    def finish(self) -> list[dict]:
        """Called at the upstream's end of stream; returns any final chunks."""


class Adapter(Protocol):
    name: str
    # The transport: False (every HTTP provider) sends `build_request`'s request over the relay's pooled
    # session; True answers in-process instead, and the adapter is then also a `LocalTransport` (below).
    # Adapters that wrap another (relay.messages, relay.responses) delegate both.
    local: bool
    # Endpoints this wire format serves: chat, completions, embeddings.
    endpoints: frozenset[str]

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        """`body` is the client's parsed OpenAI request, `model` already replaced by the upstream name."""

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        """A 2xx upstream body to (OpenAI response dict, usage). `model` is the public name to report."""

    def stream_translator(self, *, target: Target, model: str, request_id: str, include_usage: bool = False) -> StreamTranslator:
        """A translator for one streamed response (SSE events → OpenAI chunks). `include_usage`: the
        client asked for the usage chunk (translating adapters may ignore it: the app adds it)."""

    def map_error(self, *, status: int, body: bytes, headers: dict[str, str]) -> Exception:
        """A non-2xx upstream answer to a wire.errors.UpstreamError (never echoing secrets or internal addresses)."""


class LocalTransport(Protocol):
    """The optional transport hook of an adapter with `local = True` (the demo provider, relay.messages'
    count_tokens estimate): answers in-process, in place of the HTTP call. No other adapter defines it."""

    local: bool

    async def local_call(self, request: UpstreamRequest, endpoint: str) -> UpstreamResponse:
        """The answer to `request` (as `build_request` made it), with the members an HTTP answer has."""
