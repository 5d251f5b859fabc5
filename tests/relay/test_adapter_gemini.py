"""Gemini adapter: OpenAI request → generateContent body, answers/streams → OpenAI, embeddings, errors.

Fixtures in fixtures/gemini/ are hand-written after the documented REST format (PROVIDERS.md §3).
"""

from pathlib import Path

import httpx
import orjson
import pytest

from tests.upstream.server import REPLY_WORDS, MockUpstream
from wire.adapters.base import Target
from wire.adapters.gemini import adapter
from wire.errors import InvalidRequest, UpstreamCredentialRejected, UpstreamError, UpstreamRateLimited, UpstreamRejected
from wire.sse import SSEParser

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
BASE = "https://generativelanguage.googleapis.com/v1beta"


def target(**overrides) -> Target:
    values = {"deployment_id": 2, "provider": "gemini", "wire": "gemini", "base_url": BASE, "api_key": "AIza-test",
              "upstream_model": "gemini-2.5-flash"}
    return Target(**{**values, **overrides})


def build(body: dict, stream: bool = False, endpoint: str = "chat") -> dict:
    return orjson.loads(adapter.build_request(endpoint=endpoint, body=body, target=target(), stream=stream).body)


def chat(*messages, **params) -> dict:
    return {"model": "gemini-2.5-flash", "messages": list(messages), **params}


def user(content):
    return {"role": "user", "content": content}


def run_stream(raw: bytes):
    translator = adapter.stream_translator(target=target(), model="gemini-public", request_id="chatcmpl-g")
    parser, chunks = SSEParser(), []
    for event in parser.feed(raw) + parser.close():
        chunks += translator.feed(event)
    return chunks + translator.finish(), translator


# -- request mapping --


@pytest.mark.parametrize("stream, endpoint, url", [
    (False, "chat", f"{BASE}/models/gemini-2.5-flash:generateContent"),
    (True, "chat", f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
    (False, "embeddings", f"{BASE}/models/gemini-2.5-flash:batchEmbedContents"),
])
def test_urls_and_headers(stream, endpoint, url):
    body = chat(user("Hi")) if endpoint == "chat" else {"model": "m", "input": "Hi"}
    request = adapter.build_request(endpoint=endpoint, body=body, target=target(extra_headers={"x-extra": "1"}), stream=stream)
    assert (request.method, request.url) == ("POST", url)
    assert request.headers == {"x-extra": "1", "x-goog-api-key": "AIza-test", "content-type": "application/json"}
    assert adapter.endpoints == {"chat", "embeddings"}


def test_models_prefix_is_not_doubled():
    request = adapter.build_request(endpoint="chat", body=chat(user("Hi")), target=target(upstream_model="models/gemini-pro"), stream=False)
    assert request.url == f"{BASE}/models/gemini-pro:generateContent"


def test_system_instruction_and_multi_turn_roles():
    body = build(chat({"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use French."},
                      user("Bonjour"), {"role": "assistant", "content": "Salut"}, user([{"type": "text", "text": "Ça va ?"}])))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nUse French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Bonjour"}]}, {"role": "model", "parts": [{"text": "Salut"}]},
                                {"role": "user", "parts": [{"text": "Ça va ?"}]}]
    assert "generationConfig" not in body


def test_images_audio_and_files():
    body = build(chat(user([
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ])))
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


def test_tool_calls_and_results():
    calls = [{"id": "call_0__thought__c2lnMQ==", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
             {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    body = build(chat(user("Weather and time?"), {"role": "assistant", "content": None, "tool_calls": calls},
                      {"role": "tool", "tool_call_id": "call_0__thought__c2lnMQ==", "content": '{"temp": 18}'},
                      {"role": "tool", "tool_call_id": "call_1", "content": "noon"}))
    assert body["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "c2lnMQ=="},
        {"functionCall": {"name": "get_time", "args": {}}}]}
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}}]}


@pytest.mark.parametrize("messages, param", [
    ([user("x"), {"role": "tool", "tool_call_id": "unknown", "content": "1"}], "messages[1].tool_call_id"),
    ([user("x"), {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}],
     "messages[1].tool_calls[0].function.arguments"),
    ([user([{"type": "video", "video": {}}])], "messages[0].content[0]"),
])
def test_invalid_messages_are_refused_with_param(messages, param):
    with pytest.raises(InvalidRequest) as caught:
        build(chat(*messages))
    assert caught.value.param == param


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                                                          "additionalProperties": False}}},
         {"type": "function", "function": {"name": "get_time"}}]


@pytest.mark.parametrize("tool_choice, expected", [
    (None, None),
    ("auto", {"mode": "AUTO"}),
    ("required", {"mode": "ANY"}),
    ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
])
def test_tools_and_tool_choice(tool_choice, expected):
    body = build(chat(user("x"), tools=TOOLS, **({"tool_choice": tool_choice} if tool_choice else {})))
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather by city", "parametersJsonSchema": TOOLS[0]["function"]["parameters"]},
        {"name": "get_time", "description": ""}]}]
    assert (body.get("toolConfig") or {}).get("functionCallingConfig") == expected


@pytest.mark.parametrize("params, expected", [
    ({"temperature": 1.5, "top_p": 0.9}, {"temperature": 1.5, "topP": 0.9}),  # Gemini accepts 0-2: no clamp
    ({"max_tokens": 100}, {"maxOutputTokens": 100}),
    ({"max_tokens": 100, "max_completion_tokens": 200}, {"maxOutputTokens": 200}),
    ({"stop": "END"}, {"stopSequences": ["END"]}),
    ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
    ({"n": 2, "seed": 7}, {"candidateCount": 2, "seed": 7}),
    ({"presence_penalty": 0.5, "frequency_penalty": 0.2}, {"presencePenalty": 0.5, "frequencyPenalty": 0.2}),
    ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}},
     {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}),
    ({"response_format": {"type": "text"}, "logit_bias": {"1": 1}, "user": "u", "stream_options": {"include_usage": True}}, None),
])
def test_generation_config(params, expected):
    body = build(chat(user("x"), **params))
    assert body.get("generationConfig") == expected


# -- response mapping --


def test_text_response_with_thoughts_and_cached_usage():
    answer, usage = adapter.parse_response(endpoint="chat", body=(FIXTURES / "generate_text.json").read_bytes(), target=target(), model="gemini-public")
    assert answer["id"] == "mPJiaKO2LMfYz7IPz9GJ0Q4" and answer["model"] == "gemini-public" and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello! How can I help you today?",
                                               "reasoning_content": "**Greeting** The user says hello."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    # promptTokenCount already includes the cache; thoughts count as output.
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (4200, 4096, 59)
    assert answer["usage"]["total_tokens"] == 4259


def test_tool_call_response_ids_and_signatures():
    answer, _ = adapter.parse_response(endpoint="chat", body=(FIXTURES / "generate_tool_call.json").read_bytes(), target=target(), model="m")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_0__thought__CiQBVKhc7kZ3Pq==", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Tokyo"}'}},
    ]


def test_blocked_prompt():
    answer, usage = adapter.parse_response(endpoint="chat", body=(FIXTURES / "generate_blocked.json").read_bytes(), target=target(), model="m")
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": "content_filter"}]
    assert usage.prompt_tokens == 12 and usage.completion_tokens == 0


@pytest.mark.parametrize("reason, finish_reason", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("OTHER", "content_filter"), ("LANGUAGE", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"), ("UNEXPECTED_TOOL_CALL", "stop"), ("TOO_MANY_TOOL_CALLS", "stop"),
])
def test_finish_reasons(reason, finish_reason):
    raw = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason, "index": 0}]})
    answer, usage = adapter.parse_response(endpoint="chat", body=raw, target=target(), model="m")
    assert answer["choices"][0]["finish_reason"] == finish_reason
    assert usage is None and "usage" not in answer


def test_several_candidates():
    raw = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
                                       {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1}]})
    answer, _ = adapter.parse_response(endpoint="chat", body=raw, target=target(), model="m")
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in answer["choices"]] == [(0, "a", "stop"), (1, "b", "length")]


# -- streaming --


def test_stream_text():
    chunks, translator = run_stream((FIXTURES / "stream_text.sse").read_bytes())
    assert all(c["id"] == "chatcmpl-g" and c["model"] == "gemini-public" and c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks]
    assert deltas == [({"role": "assistant", "content": ""}, None), ({"content": "Hello"}, None), ({"content": " there,"}, None),
                      ({"content": " friend."}, None), ({}, "stop")]
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens, translator.usage.completion_tokens) == (30, 16, 10)


def test_stream_tool_calls():
    chunks, translator = run_stream((FIXTURES / "stream_tool_call.sse").read_bytes())
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1] == {"reasoning_content": "thinking about tools"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls == [
        {"index": 0, "id": "call_0__thought__c2lnMQ==", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
        {"index": 1, "id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.usage.completion_tokens == 20


def test_stream_error_after_200_raises():
    translator = adapter.stream_translator(target=target(), model="m", request_id="r")
    parser, delivered = SSEParser(), []
    with pytest.raises(UpstreamError) as caught:
        for event in parser.feed((FIXTURES / "stream_error.sse").read_bytes()):
            delivered += translator.feed(event)
    assert delivered[-1]["choices"][0]["delta"] == {"content": "Once upon"}
    assert caught.value.retryable and caught.value.upstream_status == 503
    assert translator.usage.prompt_tokens == 9


def test_stream_blocked_prompt():
    chunks, _ = run_stream(b'data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5}}\r\n\r\n')
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]


# -- embeddings --


def test_embeddings_request_and_response():
    body = build({"model": "gemini-embedding-001", "input": ["one", "two"], "dimensions": 4, "encoding_format": "float"}, endpoint="embeddings")
    assert body == {"requests": [
        {"model": "models/gemini-2.5-flash", "content": {"parts": [{"text": "one"}]}, "outputDimensionality": 4},
        {"model": "models/gemini-2.5-flash", "content": {"parts": [{"text": "two"}]}, "outputDimensionality": 4}]}
    assert build({"model": "m", "input": "solo"}, endpoint="embeddings")["requests"][0]["content"] == {"parts": [{"text": "solo"}]}
    answer, usage = adapter.parse_response(endpoint="embeddings", body=(FIXTURES / "embed.json").read_bytes(), target=target(), model="emb-public")
    assert usage is None  # Gemini counts no tokens here; the app estimates
    assert answer["object"] == "list" and answer["model"] == "emb-public"
    assert [(d["object"], d["index"], len(d["embedding"])) for d in answer["data"]] == [("embedding", 0, 4), ("embedding", 1, 4)]


@pytest.mark.parametrize("value", [[1, 2, 3], [], None, [["a"]]])
def test_embeddings_refuse_token_arrays(value):
    with pytest.raises(InvalidRequest) as caught:
        build({"model": "m", "input": value}, endpoint="embeddings")
    assert caught.value.param == "input"


# -- error mapping --


def google_error(code: int, status: str, message: str, details=None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, **({"details": details} if details else {})}})


API_KEY_INVALID = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]


@pytest.mark.parametrize("status, body, error_class, client_status, retryable", [
    (400, google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents[0].parts'"), UpstreamRejected, 400, False),
    (400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", API_KEY_INVALID), UpstreamCredentialRejected, 502, False),
    (400, google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), UpstreamError, 502, True),
    (403, google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"), UpstreamCredentialRejected, 502, False),
    (404, google_error(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"), UpstreamRejected, 404, False),
    (429, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota"), UpstreamRateLimited, 429, True),
    (500, google_error(500, "INTERNAL", "An internal error has occurred."), UpstreamError, 502, True),
    (503, google_error(503, "UNAVAILABLE", "The model is overloaded."), UpstreamError, 502, True),
    (504, google_error(504, "DEADLINE_EXCEEDED", "Deadline expired"), UpstreamError, 502, True),
    (502, b"<html>bad gateway</html>", UpstreamError, 502, True),
])
def test_error_mapping(status, body, error_class, client_status, retryable):
    error = adapter.map_error(status=status, body=body, headers={})
    assert type(error) is error_class
    assert (error.status, error.retryable) == (client_status, retryable)


def test_rate_limit_retry_delay_and_scrubbing():
    retry_info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    error = adapter.map_error(status=429, body=google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_info), headers={})
    assert error.retry_after == 37.0
    assert adapter.map_error(status=429, body=google_error(429, "RESOURCE_EXHAUSTED", "quota"), headers={"retry-after": "3"}).retry_after == 3.0
    leaky = adapter.map_error(status=400, body=google_error(400, "INVALID_ARGUMENT", "bad key AIzaSyA1234567890abcdefghij at https://10.0.0.1/x"), headers={})
    assert "AIza" not in leaky.message and "10.0.0.1" not in leaky.message


# -- the mock upstream speaks the same format --


@pytest.fixture(scope="module")
def upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


def mock_target(upstream, model="echo", key="test-key"):
    return target(base_url=upstream.url + "/v1beta", api_key=key, upstream_model=model)


def send(client, request):
    return client.request(request.method, request.url, headers=request.headers, content=request.body)


def test_mock_upstream_speaks_gemini(upstream):
    upstream.reset()
    with httpx.Client(timeout=10) as client:
        tgt = mock_target(upstream)
        response = send(client, adapter.build_request(endpoint="chat", body=chat(user("Hello there"), max_tokens=4), target=tgt, stream=False))
        answer, usage = adapter.parse_response(endpoint="chat", body=response.content, target=tgt, model="public")
        assert answer["choices"][0]["message"]["content"] == " ".join(REPLY_WORDS[:4]) and answer["choices"][0]["finish_reason"] == "length"
        assert (usage.prompt_tokens, usage.completion_tokens) == (upstream.ledger[-1].prompt_tokens, 4)

        # Streamed tool call, then its result sent back in the next turn (name found by id, signature replayed).
        request = adapter.build_request(endpoint="chat", body=chat(user("use tool please"), tools=TOOLS, stream=True), target=tgt, stream=True)
        assert request.url.endswith(":streamGenerateContent?alt=sse")
        with client.stream(request.method, request.url, headers=request.headers, content=request.body) as streamed:
            chunks, translator = run_stream(streamed.read())
        calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
        assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        entry = upstream.ledger[-1]
        assert entry.completed and entry.completion_tokens == translator.usage.completion_tokens == len(REPLY_WORDS)
        follow_up = chat(user("use tool please"), {"role": "assistant", "tool_calls": [{**calls[0], "type": "function"}]},
                         {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 18}'})
        response = send(client, adapter.build_request(endpoint="chat", body=follow_up, target=tgt, stream=False))
        assert response.status_code == 200
        sent = upstream.requests[-1]["json"]["contents"]
        assert sent[1]["parts"][0]["thoughtSignature"] == "c2lnLW1vY2s=" and sent[2]["parts"][0]["functionResponse"]["name"] == "get_weather"

        embedded = send(client, adapter.build_request(endpoint="embeddings", body={"model": "e", "input": ["a b", "c"]},
                                                      target=mock_target(upstream, "text-embedding-004"), stream=False))
        answer, usage = adapter.parse_response(endpoint="embeddings", body=embedded.content, target=tgt, model="e")
        assert len(answer["data"]) == 2 and usage is None and upstream.ledger[-1].prompt_tokens == 3

        bad = send(client, adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, key="nope"), stream=False))
        assert bad.status_code == 401
        assert adapter.map_error(status=bad.status_code, body=bad.content, headers=bad.headers).message == "The upstream provider rejected the gateway's credentials."
        limited = send(client, adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, "fail-429"), stream=False))
        error = adapter.map_error(status=limited.status_code, body=limited.content, headers=limited.headers)
        assert isinstance(error, UpstreamRateLimited) and error.retry_after == 1.0
        quiet = send(client, adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, "nousage"), stream=False))
        assert adapter.parse_response(endpoint="chat", body=quiet.content, target=tgt, model="m")[1] is None
