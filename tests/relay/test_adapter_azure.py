"""Azure OpenAI adapter: OpenAI bodies and streams, Azure URLs and the `api-key` header (PROVIDERS.md §4)."""

import httpx
import orjson
import pytest

from tests.upstream.server import REPLY_WORDS, MockUpstream
from wire.adapters.azure import adapter
from wire.adapters.base import Target
from wire.errors import UpstreamCredentialRejected, UpstreamError, UpstreamRateLimited, UpstreamRejected
from wire.sse import SSEEvent, SSEParser

RESOURCE = "https://contoso.openai.azure.com"


def target(**overrides) -> Target:
    values = {"deployment_id": 3, "provider": "azure", "wire": "azure", "base_url": RESOURCE, "api_key": "azure-secret",
              "upstream_model": "gpt-4o-prod"}
    return Target(**{**values, **overrides})


@pytest.mark.parametrize("overrides, endpoint, url", [
    ({}, "chat", f"{RESOURCE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"),
    ({}, "completions", f"{RESOURCE}/openai/deployments/gpt-4o-prod/completions?api-version=2024-10-21"),
    ({}, "embeddings", f"{RESOURCE}/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21"),
    ({"api_version": "2025-04-01-preview"}, "chat", f"{RESOURCE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2025-04-01-preview"),
    ({"base_url": RESOURCE + "/openai/"}, "chat", f"{RESOURCE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"),
    ({"base_url": RESOURCE + "/openai/v1"}, "chat", f"{RESOURCE}/openai/v1/chat/completions"),
    ({"base_url": RESOURCE + "/openai/v1/", "api_version": "2024-10-21"}, "embeddings", f"{RESOURCE}/openai/v1/embeddings"),
])
def test_urls(overrides, endpoint, url):
    body = {"model": "gpt-4o-prod", "input": "x"} if endpoint == "embeddings" else {"model": "gpt-4o-prod", "messages": [], "prompt": "x"}
    assert adapter.build_request(endpoint=endpoint, body=body, target=target(**overrides), stream=False).url == url


def test_headers_and_body_are_openai():
    body = {"model": "gpt-4o-prod", "messages": [{"role": "user", "content": "Hi"}], "temperature": 1.5, "n": 2}
    request = adapter.build_request(endpoint="chat", body=dict(body), target=target(extra_headers={"x-ms-client-request-id": "abc"}), stream=True)
    assert request.headers["api-key"] == "azure-secret"
    assert "authorization" not in {k.lower() for k in request.headers}
    assert request.headers["x-ms-client-request-id"] == "abc"
    # Same body as OpenAI, plus the usage request for streams; the deployment name stays as `model` (v1 API needs it).
    assert orjson.loads(request.body) == {**body, "stream_options": {"include_usage": True}}
    assert adapter.endpoints == {"chat", "completions", "embeddings"} and adapter.name == "azure"


def test_response_and_stream_pass_through():
    raw = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop", "content_filter_results": {}}], "prompt_filter_results": [],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22, "prompt_tokens_details": {"cached_tokens": 8}}})
    answer, usage = adapter.parse_response(endpoint="chat", body=raw, target=target(), model="public")
    assert orjson.loads(answer) == orjson.loads(raw)
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (20, 8, 2)
    translator = adapter.stream_translator(target=target(), model="public", request_id="r", include_usage=False)
    filter_chunk = SSEEvent(None, b'{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}')
    usage_chunk = SSEEvent(None, b'{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}')
    assert translator.feed(filter_chunk)  # Azure's prompt-filter chunk goes through
    assert translator.feed(usage_chunk) == [] and translator.usage.completion_tokens == 3


@pytest.mark.parametrize("status, body, headers, error_class, retryable", [
    (429, {"error": {"code": "429", "message": "Requests ... Please retry after 20 seconds."}}, {"retry-after": "20"}, UpstreamRateLimited, True),
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key"}}, {}, UpstreamCredentialRejected, False),
    (400, {"error": {"code": "content_filter", "message": "The response was filtered", "param": "prompt", "status": 400}}, {}, UpstreamRejected, False),
    (500, {"error": {"code": "InternalServerError", "message": "Backend returned unexpected response."}}, {}, UpstreamError, True),
])
def test_error_mapping(status, body, headers, error_class, retryable):
    error = adapter.map_error(status=status, body=orjson.dumps(body), headers=headers)
    assert type(error) is error_class and error.retryable is retryable
    if status == 429:
        assert error.retry_after == 20.0


# -- the mock upstream speaks the same format --


@pytest.fixture(scope="module")
def upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


def send(client, request):
    return client.request(request.method, request.url, headers=request.headers, content=request.body)


@pytest.mark.parametrize("v1", [False, True])
def test_mock_upstream_speaks_azure(upstream, v1):
    upstream.reset()
    base = upstream.url + ("/openai/v1" if v1 else "")

    def tgt(model="echo", key="test-key"):
        return target(base_url=base, api_key=key, upstream_model=model)

    with httpx.Client(timeout=10) as client:
        chat = {"model": "echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 3}
        response = send(client, adapter.build_request(endpoint="chat", body=dict(chat), target=tgt(), stream=False))
        assert response.status_code == 200
        answer, usage = adapter.parse_response(endpoint="chat", body=response.content, target=tgt(), model="public")
        assert orjson.loads(answer)["choices"][0]["message"]["content"] == " ".join(REPLY_WORDS[:3])
        assert usage.completion_tokens == upstream.ledger[-1].completion_tokens == 3
        assert ("api-version" in upstream.requests[-1]["query"]) is not v1

        request = adapter.build_request(endpoint="chat", body={**chat, "stream": True}, target=tgt(), stream=True)
        translator = adapter.stream_translator(target=tgt(), model="public", request_id="r", include_usage=True)
        with client.stream(request.method, request.url, headers=request.headers, content=request.body) as streamed:
            raw = streamed.read()
        parser = SSEParser()
        out = [item for event in parser.feed(raw) for item in translator.feed(event)]
        assert b"prompt_filter_results" in out[0] and translator.usage.completion_tokens == 3
        assert upstream.ledger[-1].completed and upstream.ledger[-1].stream

        embedded = send(client, adapter.build_request(endpoint="embeddings", body={"model": "echo", "input": ["a", "b"]}, target=tgt(), stream=False))
        assert len(embedded.json()["data"]) == 2

        bad = send(client, adapter.build_request(endpoint="chat", body=dict(chat), target=tgt(key="wrong"), stream=False))
        assert bad.status_code == 401 and "error" in bad.json()
        # The app puts the upstream name in `model` (what the v1 API routes on).
        limited = send(client, adapter.build_request(endpoint="chat", body={**chat, "model": "fail-429"}, target=tgt("fail-429"), stream=False))
        error = adapter.map_error(status=limited.status_code, body=limited.content, headers=limited.headers)
        assert isinstance(error, UpstreamRateLimited) and error.retry_after == 1.0


def test_mock_requires_api_version_on_deployment_urls(upstream):
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{upstream.url}/openai/deployments/echo/chat/completions", headers={"api-key": "test-key"},
                               json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
