"""The adapter contract: one module per wire format under wire/adapters/.

An adapter turns an OpenAI-format request into the upstream's HTTP request, and the upstream's
answer (whole body, or stream events) back into OpenAI format. Adapters never touch the client
connection: they return bytes/objects and `relay.app` writes the response.
"""

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


class StreamTranslator(Protocol):
    """Stateful, one per streamed response."""

    usage: Usage | None  # filled as usage arrives

    def feed(self, event: SSEEvent) -> list[dict]:
        """Upstream event in, OpenAI `chat.completion.chunk` dicts out (possibly none)."""

    def finish(self) -> list[dict]:
        """Called at the upstream's end of stream; returns any final chunks."""


class Adapter(Protocol):
    name: str
    local: bool  # True: answers in-process through `local_call` (the demo provider), no HTTP
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
