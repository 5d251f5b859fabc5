"""relay.messages without a server: the body checks, the error shape, the pass-through of events and headers."""

import orjson
import pytest

from relay.messages import PassThrough, PassThroughStream, check_body, encode_error, error_body
from wire.adapters.base import Target
from wire.errors import BudgetExceeded, InvalidApiKey, InvalidRequest, ModelNotAllowed, ModelNotFound, RequestTooLarge, UpstreamError
from wire.sse import SSEParser

BODY = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}


def test_a_tool_may_take_arguments_named_like_credentials():
    tool = {"name": "deploy", "input_schema": {"type": "object", "properties": {"api_key": {"type": "string"}, "headers": {"type": "object"}}}}
    check_body("messages", {**BODY, "tools": [tool]})


@pytest.mark.parametrize("body, param", [
    ({**BODY, "metadata": {"base_url": "http://x"}}, "metadata.base_url"),
    ({**BODY, "workspace_id": "wrkspc_1"}, "workspace_id"),
    ({**BODY, "max_tokens": 0}, "max_tokens"),
    ({k: v for k, v in BODY.items() if k != "max_tokens"}, "max_tokens"),
    ({**BODY, "messages": [{"role": "system", "content": "x"}]}, "messages.0"),
    ({**BODY, "messages": []}, "messages"),
    ({**BODY, "system": 3}, "system"),
    ({**BODY, "stream": "yes"}, "stream"),
])
def test_bad_bodies_are_refused_with_param(body, param):
    with pytest.raises(InvalidRequest) as caught:
        check_body("messages", body)
    assert caught.value.param == param


def test_count_tokens_needs_no_max_tokens_and_takes_no_stream():
    check_body("count_tokens", {"model": "claude", "messages": BODY["messages"]})
    with pytest.raises(InvalidRequest):
        check_body("count_tokens", {**BODY, "stream": True})


@pytest.mark.parametrize("error, status, kind", [
    (InvalidApiKey("x"), 401, "authentication_error"),
    (ModelNotAllowed("x"), 403, "permission_error"),
    (ModelNotFound("x"), 404, "not_found_error"),
    (InvalidRequest("x"), 400, "invalid_request_error"),
    (RequestTooLarge("x"), 413, "request_too_large"),
    (BudgetExceeded("x"), 429, "rate_limit_error"),
    (UpstreamError("x"), 502, "api_error"),
    (UpstreamError("x", upstream_status=529), 529, "overloaded_error"),
])
def test_errors_in_anthropic_shape(error, status, kind):
    got_status, body = error_body(error, "req_1")
    assert got_status == status
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": "x"}, "request_id": "req_1"}
    event = encode_error(error)
    assert event.startswith(b"event: error\ndata: ") and orjson.loads(event.split(b"data: ", 1)[1])["error"]["type"] == kind


def test_events_pass_through_as_they_came_and_usage_is_read():
    raw = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5,'
           b'"cache_read_input_tokens":7,"cache_creation_input_tokens":11,"output_tokens":1}}}\n\n'
           b'event: ping\ndata: {"type": "ping"}\n\n'
           b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\ndata: "delta":{"type":"text_delta","text":"Hi"}}\n\n'
           b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\n')
    stream, out = PassThroughStream(), b""
    for event in SSEParser().feed(raw):
        out += b"".join(stream.feed(event))
        if event.event == "message_start":
            assert stream.usage is None and stream.prompt_usage.completion_tokens == 0  # the placeholder is not billed
    assert out == raw
    assert stream.stream_id == "msg_1"
    usage = stream.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens) == (23, 7, 11, 9)


def test_the_client_headers_are_forwarded_and_the_credential_key_replaces_its_key():
    class Conn:
        headers = {b"anthropic-version": "2023-06-01", b"anthropic-beta": "interleaved-thinking-2025-05-14", b"x-api-key": "tg-secret"}

        def header(self, name):
            return self.headers.get(name)

    target = Target(deployment_id=1, provider="anthropic", wire="anthropic", base_url="https://api.anthropic.com/", api_key="sk-ant-x",
                    upstream_model="claude-sonnet-4-5", extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    request = PassThrough(Conn()).build_request(endpoint="count_tokens", body=BODY, target=target, stream=False)
    assert request.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert request.headers["x-api-key"] == "sk-ant-x" and "tg-secret" not in str(request.headers)
    assert request.headers["anthropic-beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    assert request.headers["anthropic-version"] == "2023-06-01" and orjson.loads(request.body) == BODY
