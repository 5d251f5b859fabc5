"""Anthropic adapter: OpenAI request → Messages body, Messages answer/stream → OpenAI, error mapping.

Fixtures in fixtures/anthropic/ are hand-written after the documented wire format (PROVIDERS.md §2).
"""

from pathlib import Path

import httpx
import orjson
import pytest

from tests.upstream.server import REPLY_WORDS, MockUpstream
from wire.adapters.anthropic import adapter
from wire.adapters.base import Target
from wire.errors import InvalidRequest, UpstreamCredentialRejected, UpstreamError, UpstreamRateLimited, UpstreamRejected
from wire.sse import SSEParser

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"


def target(**overrides) -> Target:
    values = {"deployment_id": 1, "provider": "anthropic", "wire": "anthropic", "base_url": "https://api.anthropic.com",
              "api_key": "sk-ant-test", "upstream_model": "claude-sonnet-4-5"}
    return Target(**{**values, **overrides})


def build(body: dict, stream: bool = False, **target_overrides) -> dict:
    request = adapter.build_request(endpoint="chat", body=body, target=target(**target_overrides), stream=stream)
    return orjson.loads(request.body)


def chat(*messages, **params) -> dict:
    return {"model": "claude-sonnet-4-5", "messages": list(messages), **params}


def user(content):
    return {"role": "user", "content": content}


def run_stream(raw: bytes, request_id: str = "chatcmpl-test"):
    translator = adapter.stream_translator(target=target(), model="claude-public", request_id=request_id)
    parser, chunks = SSEParser(), []
    for event in parser.feed(raw) + parser.close():
        chunks += translator.feed(event)
    return chunks + translator.finish(), translator


# -- request mapping --


def test_request_url_headers_and_defaults():
    request = adapter.build_request(endpoint="chat", body=chat(user("Hi")), target=target(base_url="https://api.anthropic.com/",
                                                                                          extra_headers={"anthropic-beta": "x"}), stream=False)
    assert request.method == "POST"
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers == {"anthropic-beta": "x", "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01",
                               "content-type": "application/json"}
    assert orjson.loads(request.body) == {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                                          "max_tokens": 4096}
    assert adapter.endpoints == {"chat"}


def test_system_and_developer_messages_are_joined_top_level():
    body = build(chat({"role": "system", "content": "Be brief."}, {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                      user("Bonjour"), {"role": "assistant", "content": "Salut"}, user("Ça va ?")))
    assert body["system"] == "Be brief.\n\nUse French."
    assert [(m["role"], m["content"][0]["text"]) for m in body["messages"]] == [("user", "Bonjour"), ("assistant", "Salut"), ("user", "Ça va ?")]


def test_images_data_url_and_http_url():
    body = build(chat(user([{"type": "text", "text": "Compare"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}])))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_tool_calls_and_results_round_trip():
    calls = [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
             {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]
    body = build(chat(user("Weather and time?"), {"role": "assistant", "content": None, "tool_calls": calls},
                      {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                      {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
                      user("Thanks")))
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]}
    # Both results and the following user text share one user turn, results first.
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
        {"type": "text", "text": "Thanks"}]}
    assert len(body["messages"]) == 3


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_invalid_tool_arguments_are_refused_with_param(arguments):
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequest) as caught:
        build(chat(user("x"), {"role": "assistant", "content": "", "tool_calls": [call]}))
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.mark.parametrize("params, expected", [
    ({}, None),
    ({"tool_choice": "auto"}, {"type": "auto"}),
    ({"tool_choice": "required"}, {"type": "any"}),
    ({"tool_choice": "none"}, {"type": "none"}),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, {"type": "tool", "name": "get_weather"}),
    ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tools_and_tool_choice(params, expected):
    body = build(chat(user("x"), tools=TOOLS, **params))
    assert body["tools"] == [{"name": "get_weather", "description": "Weather by city",
                              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    assert body.get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped_and_bad_values_refused():
    assert "tool_choice" not in build(chat(user("x"), tool_choice="auto"))
    with pytest.raises(InvalidRequest) as caught:
        build(chat(user("x"), tools=TOOLS, tool_choice="sometimes"))
    assert caught.value.param == "tool_choice"
    with pytest.raises(InvalidRequest):
        build(chat(user("x"), tools=[{"type": "code_interpreter"}]))


@pytest.mark.parametrize("params, expected", [
    ({"stop": "END"}, {"stop_sequences": ["END"]}),
    ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
    ({"max_tokens": 50}, {"max_tokens": 50}),
    ({"max_tokens": 50, "max_completion_tokens": 70}, {"max_tokens": 70}),
    ({"temperature": 1.7}, {"temperature": 1.0}),  # clamped to Anthropic's range
    ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3, "top_p": 0.9}),
    ({"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
])
def test_scalar_parameters(params, expected):
    body = build(chat(user("x"), **params))
    for key, value in expected.items():
        assert body[key] == value


def test_openai_only_parameters_are_dropped():
    body = build(chat(user("x"), frequency_penalty=0.5, presence_penalty=0.1, logit_bias={"1": 2}, seed=7, n=1,
                      stream_options={"include_usage": True}, response_format={"type": "json_object"}, store=True))
    assert set(body) == {"model", "messages", "max_tokens"}


def test_json_schema_response_format_becomes_output_config():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = build(chat(user("x"), response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@pytest.mark.parametrize("body, param", [
    (chat(user("x"), n=2), "n"),
    (chat(user([{"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}])), "messages[0].content[0]"),
    (chat(user([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])), "messages[0].content[0].image_url"),
    (chat({"role": "function", "name": "f", "content": "x"}), "messages[0].role"),
])
def test_unsupported_requests_are_refused_with_param(body, param):
    with pytest.raises(InvalidRequest) as caught:
        build(body)
    assert caught.value.param == param


def test_stream_flag():
    assert build(chat(user("x"), stream=True), stream=True)["stream"] is True
    assert "stream" not in build(chat(user("x")))


# -- response mapping --


def test_text_response_with_cache_usage_and_thinking():
    answer, usage = adapter.parse_response(endpoint="chat", body=(FIXTURES / "message_text.json").read_bytes(), target=target(), model="claude-public")
    assert answer["object"] == "chat.completion" and answer["model"] == "claude-public"
    assert answer["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    choice = answer["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello! How can I help you today?", "reasoning_content": "The user greets me."}
    assert choice["finish_reason"] == "stop"
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (12 + 100 + 2048, 2048, 9)
    assert answer["usage"] == {"prompt_tokens": 2160, "completion_tokens": 9, "total_tokens": 2169, "prompt_tokens_details": {"cached_tokens": 2048}}


def test_tool_use_response():
    answer, usage = adapter.parse_response(endpoint="chat", body=(FIXTURES / "message_tool_use.json").read_bytes(), target=target(), model="m")
    message = answer["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"location":"San Francisco, CA","unit":"celsius"}'}},
        {"id": "toolu_01B71b2c3d4e5f6a7b8c9d0e", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert usage.prompt_tokens == 480 and usage.cached_tokens == 0


@pytest.mark.parametrize("stop_reason, finish_reason", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("model_context_window_exceeded", "length"),
    ("pause_turn", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_finish_reasons(stop_reason, finish_reason):
    raw = orjson.dumps({"id": "m", "type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason,
                        "usage": {"input_tokens": 1, "output_tokens": 1}})
    answer, _ = adapter.parse_response(endpoint="chat", body=raw, target=target(), model="m")
    assert answer["choices"][0]["finish_reason"] == finish_reason


def test_response_without_usage_and_non_json_body():
    answer, usage = adapter.parse_response(endpoint="chat", body=b'{"id":"m","content":[],"stop_reason":"end_turn"}', target=target(), model="m")
    assert usage is None and "usage" not in answer and answer["choices"][0]["message"]["content"] == ""
    with pytest.raises(UpstreamError):
        adapter.parse_response(endpoint="chat", body=b"<html>", target=target(), model="m")


# -- streaming --


def test_stream_text_sequence():
    chunks, translator = run_stream((FIXTURES / "stream_text.sse").read_bytes())
    assert all(c["id"] == "chatcmpl-test" and c["model"] == "claude-public" and c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks]
    assert deltas == [({"role": "assistant", "content": ""}, None), ({"content": "Hello"}, None), ({"content": "!"}, None), ({}, "stop")]
    assert not any(c["choices"] == [] for c in chunks)  # the usage chunk is the app's job
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens, translator.usage.completion_tokens) == (1025, 1000, 15)


def test_stream_tool_calls_thinking_and_text():
    chunks, translator = run_stream((FIXTURES / "stream_tool_use.sse").read_bytes())
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert {"reasoning_content": "I need the weather."} in deltas
    assert {"content": "Let me check."} in deltas
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    first = "".join(c["function"].get("arguments", "") for c in calls if c["index"] == 0)
    assert orjson.loads(first) == {"location": "San Francisco, CA"}
    second = [c for c in calls if c["index"] == 1]
    assert second[0]["id"] == "toolu_02Zz9" and second[0]["function"]["name"] == "get_time"
    assert "".join(c["function"]["arguments"] for c in second) == "{}"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (472, 89)


def test_stream_error_event_after_200_raises():
    raw = (FIXTURES / "stream_error.sse").read_bytes()
    translator = adapter.stream_translator(target=target(), model="m", request_id="r")
    parser, delivered = SSEParser(), []
    with pytest.raises(UpstreamError) as caught:
        for event in parser.feed(raw):
            delivered += translator.feed(event)
    assert [c["choices"][0]["delta"] for c in delivered] == [{"role": "assistant", "content": ""}, {"content": "Once upon"}]
    assert caught.value.retryable and "overloaded" in caught.value.message.lower()
    assert translator.usage is None and translator.prompt_usage.prompt_tokens == 10  # what was known before the failure


@pytest.mark.parametrize("kind, error_class, retryable", [
    ("rate_limit_error", UpstreamRateLimited, True),
    ("api_error", UpstreamError, True),
    ("invalid_request_error", UpstreamRejected, False),
])
def test_stream_error_event_types(kind, error_class, retryable):
    translator = adapter.stream_translator(target=target(), model="m", request_id="r")
    parser = SSEParser()
    raw = b'event: error\ndata: {"type":"error","error":{"type":"' + kind.encode() + b'","message":"boom"}}\n\n'
    with pytest.raises(error_class) as caught:
        for event in parser.feed(raw):
            translator.feed(event)
    assert caught.value.retryable is retryable


# -- error mapping --


def error_body(kind: str, message: str, **extra) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message, **extra}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})


@pytest.mark.parametrize("status, body, headers, error_class, client_status, retryable", [
    (400, error_body("invalid_request_error", "messages: text content blocks must be non-empty"), {}, UpstreamRejected, 400, False),
    (404, error_body("not_found_error", "model: claude-nope"), {}, UpstreamRejected, 404, False),
    (413, error_body("request_too_large", "Request exceeds the maximum allowed number of bytes."), {}, UpstreamRejected, 413, False),
    (401, error_body("authentication_error", "invalid x-api-key"), {}, UpstreamCredentialRejected, 502, False),
    (403, error_body("permission_error", "Your API key does not have permission"), {}, UpstreamCredentialRejected, 502, False),
    (402, error_body("billing_error", "Your credit balance is too low"), {}, UpstreamError, 502, True),
    (429, error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), {"retry-after": "7"},
     UpstreamRateLimited, 429, True),
    (529, error_body("overloaded_error", "Overloaded"), {}, UpstreamError, 502, True),
    (500, error_body("api_error", "Internal server error"), {}, UpstreamError, 502, True),
    (502, b"<html>Bad gateway</html>", {}, UpstreamError, 502, True),
])
def test_error_mapping(status, body, headers, error_class, client_status, retryable):
    error = adapter.map_error(status=status, body=body, headers=headers)
    assert type(error) is error_class
    assert (error.status, error.retryable, error.upstream_status) == (client_status, retryable, status)


def test_error_details():
    rate = adapter.map_error(status=429, body=error_body("rate_limit_error", "slow down"), headers={"retry-after": "7"})
    assert rate.retry_after == 7.0
    auth = adapter.map_error(status=401, body=error_body("authentication_error", "invalid x-api-key sk-ant-api03-abcdef123456"), headers={})
    assert auth.message == "The upstream provider rejected the gateway's credentials."
    billing = adapter.map_error(status=402, body=error_body("billing_error", "low balance"), headers={})
    assert billing.code == "upstream_billing"
    spend = adapter.map_error(status=429, body=error_body("rate_limit_error", "cap", details={"error_code": "enforced_spend_limit_reached"}), headers={})
    assert type(spend) is UpstreamError and spend.code == "upstream_billing" and spend.retry_after is None


def test_rejected_message_is_scrubbed_and_short():
    leaky = "Invalid key sk-ant-api03-AbCdEf0123456789 for https://internal.example:8443/v1 " + "x" * 500
    error = adapter.map_error(status=400, body=error_body("invalid_request_error", leaky), headers={})
    assert "sk-ant" not in error.message and "internal.example" not in error.message
    assert len(error.message) <= 200


# -- the mock upstream speaks the same format --


@pytest.fixture(scope="module")
def upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


def mock_target(upstream, model="echo", key="test-key"):
    return target(base_url=upstream.url, api_key=key, upstream_model=model)


def send(request, client):
    return client.request(request.method, request.url, headers=request.headers, content=request.body)


def test_mock_upstream_speaks_messages(upstream):
    upstream.reset()
    with httpx.Client(timeout=10) as client:
        tgt = mock_target(upstream)
        request = adapter.build_request(endpoint="chat", body=chat({"role": "system", "content": "Be kind"}, user("Hello there"), max_tokens=5),
                                        target=tgt, stream=False)
        response = send(request, client)
        assert response.status_code == 200
        answer, usage = adapter.parse_response(endpoint="chat", body=response.content, target=tgt, model="public")
        assert answer["choices"][0]["message"]["content"] == " ".join(REPLY_WORDS[:5])
        assert answer["choices"][0]["finish_reason"] == "length"
        assert (usage.prompt_tokens, usage.completion_tokens) == (upstream.ledger[-1].prompt_tokens, 5)

        # Streaming with a tool: the full event sequence, ledger updated as words are written.
        body = chat(user("please use tool"), tools=TOOLS, stream=True)
        request = adapter.build_request(endpoint="chat", body=body, target=tgt, stream=True)
        with client.stream(request.method, request.url, headers=request.headers, content=request.body) as response:
            raw = response.read()
        kinds = [e.event for e in SSEParser().feed(raw)]
        assert kinds[:3] == ["message_start", "content_block_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
        chunks, translator = run_stream(raw)
        calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
        assert calls[0]["function"]["name"] == "get_weather"
        assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        entry = upstream.ledger[-1]
        assert entry.completed and entry.stream and entry.completion_tokens == translator.usage.completion_tokens == len(REPLY_WORDS)

        # Behaviours and auth, with the format's own error body.
        bad = send(adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, key="wrong"), stream=False), client)
        assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
        limited = send(adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, "fail-429"), stream=False), client)
        error = adapter.map_error(status=limited.status_code, body=limited.content, headers=limited.headers)
        assert isinstance(error, UpstreamRateLimited) and error.retry_after == 1.0
        overloaded = send(adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, "fail-529"), stream=False), client)
        assert overloaded.json()["error"]["type"] == "overloaded_error"
        quiet = send(adapter.build_request(endpoint="chat", body=chat(user("x")), target=mock_target(upstream, "nousage"), stream=False), client)
        assert adapter.parse_response(endpoint="chat", body=quiet.content, target=tgt, model="m")[1] is None
