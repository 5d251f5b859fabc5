"""The rerank wire format (wire.adapters.rerank): each dialect's request, every provider's usage, Cohere's
search units, answers and errors (PROVIDERS.md §8)."""

import orjson
import pytest

from wire.adapters.base import Target, Usage
from wire.adapters.rerank import adapter, attach_documents, search_units, usage_of
from wire.errors import MalformedUsage, UpstreamCredentialRejected, UpstreamError, UpstreamRejected

BODY = {"model": "up", "query": "q", "documents": ["a", {"text": "b"}], "top_n": 1, "return_documents": True, "max_tokens_per_doc": 512}


def build(provider: str, base: str = "https://x.test/v1"):
    target = Target(deployment_id=1, provider=provider, wire="rerank", base_url=base + "/", api_key="sk-1", upstream_model="up")
    request = adapter.build_request(endpoint="rerank", body=dict(BODY), target=target, stream=False)
    return request.url, request.headers["authorization"], orjson.loads(request.body)


@pytest.mark.parametrize("provider, url, payload", [
    ("cohere", "https://x.test/v1/v2/rerank", {"model": "up", "query": "q", "documents": ["a", "b"], "top_n": 1, "max_tokens_per_doc": 512}),
    ("jina", "https://x.test/v1/rerank", {"model": "up", "query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": False}),
    ("siliconflow", "https://x.test/v1/rerank", {"model": "up", "query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": False}),
    ("dashscope-rerank", "https://x.test/v1/services/rerank/text-rerank/text-rerank",
     {"model": "up", "input": {"query": "q", "documents": ["a", "b"]}, "parameters": {"top_n": 1, "return_documents": False}}),
])
def test_each_dialect_builds_its_request(provider, url, payload):
    assert build(provider) == (url, "Bearer sk-1", payload)


@pytest.mark.parametrize("answer, usage", [
    ({"results": [], "meta": {"billed_units": {"search_units": 2}}}, Usage(search_units=2)),
    ({"results": [], "meta": {"billed_units": {"search_units": 1, "input_tokens": 40}}}, Usage(prompt_tokens=40, search_units=1)),
    ({"results": [], "usage": {"total_tokens": 815}}, Usage(prompt_tokens=815)),
    ({"results": [], "usage": {"prompt_tokens": 12, "total_tokens": 12}}, Usage(prompt_tokens=12)),
    ({"results": [], "tokens": {"input_tokens": 9, "output_tokens": 0}}, Usage(prompt_tokens=9)),
    ({"output": {"results": []}, "usage": {"total_tokens": 7}}, Usage(prompt_tokens=7)),
    ({"results": []}, None),
])
def test_every_providers_usage_is_read(answer, usage):
    assert usage_of(answer) == usage


def test_a_usage_that_is_not_a_number_is_malformed():
    with pytest.raises(MalformedUsage):
        usage_of({"results": [], "usage": {"total_tokens": "many"}})


def test_search_units_count_chunks_of_500_tokens_and_100_documents_per_unit():
    assert search_units(10, [20] * 100) == 1
    assert search_units(10, [20] * 101) == 2
    assert search_units(10, [995] + [20] * 98) == 2  # 1,005 tokens with the query: three chunks
    assert search_units(5, [1]) == 1


def test_answers_keep_order_and_get_documents_only_when_asked():
    target = Target(deployment_id=1, provider="dashscope-rerank", wire="rerank", base_url="", api_key="", upstream_model="up")
    raw = orjson.dumps({"output": {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]},
                        "usage": {"total_tokens": 7}, "request_id": "r-1"})
    answer, usage = adapter.parse_response(endpoint="rerank", body=raw, target=target, model="public")
    shaped = attach_documents(answer, BODY, "req_x")
    assert shaped["results"] == [{"index": 1, "relevance_score": 0.9, "document": {"text": "b"}}, {"index": 0, "relevance_score": 0.1, "document": {"text": "a"}}]
    assert (shaped["id"], shaped["model"], shaped["usage"]["total_tokens"], usage) == ("r-1", "public", 7, Usage(prompt_tokens=7))
    plain = attach_documents(adapter.parse_response(endpoint="rerank", body=raw, target=target, model="public")[0], {**BODY, "return_documents": False}, "x")
    assert "document" not in plain["results"][0]
    with pytest.raises(MalformedUsage):
        attach_documents({"id": "", "results": [{"index": 5, "relevance_score": 1.0}]}, BODY, "x")
    with pytest.raises(MalformedUsage):
        adapter.parse_response(endpoint="rerank", body=b'{"results": [{"index": "0", "relevance_score": 1}]}', target=target, model="m")
    with pytest.raises(UpstreamError):  # DashScope's error inside a 200
        adapter.parse_response(endpoint="rerank", body=b'{"code": "InvalidParameter", "message": "bad"}', target=target, model="m")


@pytest.mark.parametrize("status, body, kind, message", [
    (400, b'{"message": "invalid request: too many documents"}', UpstreamRejected, "too many documents"),  # Cohere
    (422, b'{"detail": "query is empty"}', UpstreamRejected, "query is empty"),  # Jina
    (400, b'{"code": "InvalidParameter", "message": "Range of documents"}', UpstreamRejected, "Range of documents"),  # DashScope
    (401, b'{"message": "invalid api token"}', UpstreamCredentialRejected, ""),
    (500, b"<html>oops</html>", UpstreamError, "HTTP 500"),
])
def test_errors_are_mapped_per_provider(status, body, kind, message):
    error = adapter.map_error(status=status, body=body, headers={})
    assert isinstance(error, kind) and message in error.message
