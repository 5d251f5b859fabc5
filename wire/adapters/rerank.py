"""Rerank wire formats: the Cohere/Jina request RAG frameworks send to /v1/rerank, out to each provider's
rerank API, and every answer back in one shape.

The client's request (`model`, `query`, `documents` as strings or {"text"} objects, `top_n`,
`return_documents`, `max_tokens_per_doc`) is sent as plain document strings in the provider's dialect
(chosen by the preset, wire.presets); the answer comes back as Cohere and Jina clients both read it:
`{"id", "model", "results": [{"index", "relevance_score", "document"?}], "usage", "meta": {"billed_units"}}`.
Documents are added back from the request when `return_documents` is true, so no provider has to send
them (Cohere's v2 API never does). Wire facts and sources: PROVIDERS.md §8.
"""

from dataclasses import dataclass

import orjson

from wire.adapters.base import Target, UpstreamRequest, Usage
from wire.adapters.openai import map_http_error
from wire.errors import MalformedUsage, UpstreamError
from wire.usage import usage_number

# One search unit: a query with up to 100 documents; a document longer than 500 tokens with the query
# counts once per 500-token chunk (docs.cohere.com/docs/rerank-overview, "Pricing").
DOCUMENTS_PER_SEARCH_UNIT = 100
TOKENS_PER_CHUNK = 500
MAX_DOCUMENTS = 1000  # Cohere's recommended ceiling; DashScope takes 500, Jina 2048 (PROVIDERS.md §8)


@dataclass(frozen=True)
class Dialect:
    path: str  # appended to the credential's base URL
    nested: bool = False  # DashScope: {"input": {query, documents}, "parameters": {...}}
    return_documents: bool = True  # the provider takes a return_documents flag (sent false: the relay adds them)
    max_tokens_per_doc: bool = False  # the provider takes max_tokens_per_doc


JINA = Dialect("/rerank")  # Jina, SiliconFlow, and OpenAI-compatible servers with a rerank route
DIALECTS = {
    "cohere": Dialect("/v2/rerank", return_documents=False, max_tokens_per_doc=True),
    "jina": JINA,
    "siliconflow": JINA,
    "dashscope-rerank": Dialect("/services/rerank/text-rerank/text-rerank", nested=True),
}


def document_texts(documents: list) -> list[str]:
    """Documents as the checked request holds them (strings or {"text": ...}), as strings."""
    return [doc if isinstance(doc, str) else doc["text"] for doc in documents]


def search_units(query_tokens: int, document_tokens: list[int]) -> int:
    """Cohere's search units for a request of this size: chunks of 500 tokens (query included), 100 per unit."""
    chunks = sum(max(1, -(-(query_tokens + tokens) // TOKENS_PER_CHUNK)) for tokens in document_tokens)
    return max(1, -(-chunks // DOCUMENTS_PER_SEARCH_UNIT))


def usage_of(data: dict) -> Usage | None:
    """Whatever the provider reported, None when nothing: Cohere's meta.billed_units (search units, input
    tokens) or meta.tokens, Jina's and DashScope's usage.total_tokens, SiliconFlow's tokens.input_tokens."""
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    billed = meta.get("billed_units") if isinstance(meta.get("billed_units"), dict) else {}
    meta_tokens = meta.get("tokens") if isinstance(meta.get("tokens"), dict) else {}
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = data.get("tokens") if isinstance(data.get("tokens"), dict) else {}
    units = usage_number(billed.get("search_units"))
    prompt = (usage_number(usage.get("prompt_tokens")) or usage_number(usage.get("total_tokens")) or usage_number(usage.get("input_tokens"))
              or usage_number(tokens.get("input_tokens")) or usage_number(billed.get("input_tokens")) or usage_number(meta_tokens.get("input_tokens")))
    if not (units or prompt):
        return None
    return Usage(prompt_tokens=prompt, search_units=units)


def answer(*, data: dict, model: str, usage: Usage | None) -> dict:
    """The provider's answer in the shape /v1/rerank gives (Cohere's and Jina's, side by side), without
    documents: `attach_documents` adds them from the request."""
    results = data["output"]["results"] if isinstance(data.get("output"), dict) else data["results"]
    shaped = []
    for result in results:
        index, score = result["index"], result["relevance_score"]
        if type(index) is not int or type(score) not in (int, float):
            raise MalformedUsage("The upstream sent a rerank result that could not be read.")
        shaped.append({"index": index, "relevance_score": score})
    body = {"id": str(data.get("id") or data.get("request_id") or ""), "model": model, "results": shaped}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens, "search_units": usage.search_units}
        billed = {"search_units": usage.search_units} if usage.search_units else {}
        body["meta"] = {"billed_units": {**billed, "input_tokens": usage.prompt_tokens}}
    return body


def attach_documents(answer: dict, request: dict, request_id: str) -> dict:
    """Each result's document from the request when `return_documents` is true; an index the request does
    not have is a malformed answer. An answer without an id gets the request's."""
    texts = document_texts(request["documents"])
    with_documents = request.get("return_documents") is True
    for result in answer["results"]:
        if not 0 <= result["index"] < len(texts):
            raise MalformedUsage("The upstream ranked a document the request does not have.")
        if with_documents:
            result["document"] = {"text": texts[result["index"]]}
    answer["id"] = answer["id"] or request_id
    return answer


class RerankAdapter:
    name = "rerank"
    local = False
    endpoints = frozenset({"rerank"})

    def build_request(self, *, endpoint: str, body: dict, target: Target, stream: bool) -> UpstreamRequest:
        dialect = DIALECTS.get(target.provider, JINA)
        documents = document_texts(body["documents"])
        options = {}
        if body.get("top_n") is not None:
            options["top_n"] = body["top_n"]
        if dialect.return_documents:
            options["return_documents"] = False  # added back from the request: less to carry
        if dialect.max_tokens_per_doc and body.get("max_tokens_per_doc") is not None:
            options["max_tokens_per_doc"] = body["max_tokens_per_doc"]
        if dialect.nested:
            payload = {"model": body["model"], "input": {"query": body["query"], "documents": documents}, "parameters": options}
        else:
            payload = {"model": body["model"], "query": body["query"], "documents": documents, **options}
        headers = {**target.extra_headers, "authorization": f"Bearer {target.api_key}", "content-type": "application/json"}
        return UpstreamRequest("POST", target.base_url.rstrip("/") + dialect.path, headers, orjson.dumps(payload))

    def parse_response(self, *, endpoint: str, body: bytes, target: Target, model: str) -> tuple[dict, Usage | None]:
        data = _load(body)
        usage = usage_of(data)
        return answer(data=data, model=model, usage=usage), usage

    @staticmethod
    def test_call(upstream_model: str) -> tuple[str, dict]:
        """The credential test's call (keys.testing): one document ranked."""
        return "rerank", {"model": upstream_model, "query": "test", "documents": ["test"], "top_n": 1}

    def stream_translator(self, **_):
        raise UpstreamError("Rerank answers are never streamed.", retryable=False)

    def map_error(self, *, status: int, body: bytes, headers) -> UpstreamError:
        return map_http_error(status, _error_message(body), headers)


def _load(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedUsage("The upstream answered with a body that is not JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedUsage("The upstream answered with an unexpected body.")
    if "results" not in data and not isinstance(data.get("output"), dict):  # an error inside a 200 (DashScope's code)
        raise UpstreamError(f"The upstream answered without results ({_error_message(body) or 'no message'}).", code="upstream_error")
    return data


def _error_message(body: bytes) -> str:
    """Cohere's {"message"}, Jina's {"detail"}, DashScope's {"code", "message"}, OpenAI-style {"error"}."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "")
    detail = data.get("detail")
    return str(data.get("message") or (detail if isinstance(detail, str) else "") or error or "")


adapter = RerankAdapter()
