"""/v1/messages to OpenAI-format and Gemini deployments: the official anthropic SDK through the real relay to
the mock upstream's chat and Gemini routes, translated both ways and governed like chat (README "Anthropic
Messages")."""

import json
import time
from pathlib import Path

import anthropic
import httpx
import pytest

from keys import services as key_services
from tests.gateway import wait_for
from tests.relay.test_hot_path import counted_io  # noqa: F401 (a fixture)
from tests.relay.test_messages import TOOLS, ledger_row
from tests.upstream.server import REPLY_WORDS, Canned
from wire import tokens
from wire.adapters.base import Target
from wire.inbound.messages import to_chat

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
HI = [{"role": "user", "content": "Hi there"}]


@pytest.fixture
def client(gateway):
    """An anthropic SDK client for the relay; `gpt-test` is the gateway's OpenAI-format model (mock upstream)."""
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.secret, max_retries=0, timeout=20)


@pytest.fixture
def gemini(gateway, upstream):
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-gemini", provider="gemini",
                                                base_url=upstream.url + "/v1beta", api_key="test-key")
    gateway.add_model("gem", "gemini-echo", credential=credential)
    return "gem"


def _sse(*chunks, usage=None) -> bytes:
    body = b"".join(b"data: " + json.dumps({"id": "chatcmpl-c", "object": "chat.completion.chunk", "model": "echo", "choices": [c]}).encode()
                    + b"\n\n" for c in chunks)
    if usage:
        body += b"data: " + json.dumps({"id": "chatcmpl-c", "object": "chat.completion.chunk", "choices": [], "usage": usage}).encode() + b"\n\n"
    return body + b"data: [DONE]\n\n"


def test_a_plain_message_to_an_openai_format_model(client, gateway, upstream):
    raw = client.messages.with_raw_response.create(
        model="gpt-test", max_tokens=50, system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=HI, stop_sequences=["END"], metadata={"user_id": "u-1"}, extra_body={"temperature": 0.5, "top_k": 3})
    message = raw.parse()
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["Authorization"] == "Bearer test-key"
    assert sent["json"] == {"model": "echo", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
                            "max_tokens": 50, "temperature": 0.5, "stop": ["END"], "user": "u-1"}
    # The mock's answer carries reasoning_content: a thinking block first, then the text.
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "thinking..." and message.content[1].text == " ".join(REPLY_WORDS)
    assert message.stop_reason == "end_turn" and message.model == "gpt-test" and message.id.startswith("msg_")
    served = upstream.ledger[-1]
    cached = 2 if served.prompt_tokens > 10 else 0
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        served.prompt_tokens - cached, cached, len(REPLY_WORDS))
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.usage_source, event.provider) == ("messages", 200, "provider", "custom")
    assert (event.prompt_tokens, event.cached_tokens, event.completion_tokens) == (served.prompt_tokens, cached, len(REPLY_WORDS))


def test_a_stream_from_an_openai_format_model_has_every_event_in_order(client, gateway, upstream):
    body = {"model": "gpt-test", "max_tokens": 50, "stream": True, "messages": HI}
    with httpx.stream("POST", gateway.base_url + "/messages", json=body, headers={"x-api-key": gateway.secret}, timeout=20) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        relayed = response.read().decode()
        request_id = response.headers["x-request-id"]
    kinds = [line[7:] for line in relayed.splitlines() if line.startswith("event: ")]
    assert kinds == ["message_start", "ping", "content_block_start", *["content_block_delta"] * len(REPLY_WORDS),
                     "content_block_stop", "message_delta", "message_stop"]
    assert "[DONE]" not in relayed and upstream.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    served = upstream.ledger[-1]
    delta = json.loads(relayed.split("event: message_delta\ndata: ", 1)[1].split("\n", 1)[0])
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == len(REPLY_WORDS)
    assert delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"] == served.prompt_tokens
    event = ledger_row(request_id)
    assert (event.endpoint, event.stream, event.usage_source, event.prompt_tokens, event.completion_tokens) == (
        "messages", True, "provider", served.prompt_tokens, len(REPLY_WORDS))

    with client.messages.stream(model="gpt-test", max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == " ".join(REPLY_WORDS) and final.stop_reason == "end_turn" and final.usage.output_tokens == len(REPLY_WORDS)


def test_a_tool_round_trip_through_an_openai_format_model(client, upstream):
    question = {"role": "user", "content": "use tool for Paris"}
    first = client.messages.create(model="gpt-test", max_tokens=50, tools=TOOLS, tool_choice={"type": "auto"}, messages=[question])
    sent = upstream.requests[-1]["json"]
    assert sent["tool_choice"] == "auto" and sent["tools"][0]["function"]["name"] == "get_weather"
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"} and call.id == "call_1"
    second = client.messages.create(model="gpt-test", max_tokens=50, tools=TOOLS, messages=[
        question, {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "sunny"}]}]},
    ])
    assert upstream.requests[-1]["json"]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    assert second.stop_reason == "end_turn" and second.content[-1].text == " ".join(REPLY_WORDS)


def test_streamed_reasoning_text_and_tool_calls_become_blocks(client, gateway, upstream):
    upstream.can("tooler", Canned(chunks=(_sse(
        {"index": 0, "delta": {"role": "assistant", "reasoning_content": "Need the"}, "finish_reason": None},
        {"index": 0, "delta": {"reasoning_content": " weather."}, "finish_reason": None},
        {"index": 0, "delta": {"content": "Checking."}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                               "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
        usage={"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52, "prompt_tokens_details": {"cached_tokens": 30}}),)))
    gateway.add_model("gpt-tooler", "tooler")
    with client.messages.stream(model="gpt-tooler", max_tokens=50, tools=TOOLS, thinking={"type": "enabled", "budget_tokens": 2048},
                                messages=[{"role": "user", "content": "Weather in Rome?"}]) as stream:
        thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert thinking == "Need the weather."
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[1].text == "Checking." and final.content[2].input == {"city": "Rome"} and final.content[2].id == "call_9"
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (10, 30, 12)
    assert "reasoning_effort" not in upstream.requests[-1]["json"]  # a custom OpenAI-compatible provider: thinking dropped


def test_stop_sequence_and_length_stop_reasons(client, gateway, upstream):
    answer = {"id": "chatcmpl-s", "object": "chat.completion", "model": "echo", "usage": {"prompt_tokens": 5, "completion_tokens": 2},
              "choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "END", "message": {"role": "assistant", "content": "Hello"}}]}
    upstream.can("stopper", Canned(chunks=(json.dumps(answer).encode(),), content_type="application/json"))
    gateway.add_model("gpt-stopper", "stopper")
    message = client.messages.create(model="gpt-stopper", max_tokens=50, stop_sequences=["END"], messages=HI)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    upstream.can("longer", Canned(chunks=(_sse({"index": 0, "delta": {"content": "Hel"}, "finish_reason": None},
                                               {"index": 0, "delta": {}, "finish_reason": "length"},
                                               usage={"prompt_tokens": 5, "completion_tokens": 1}),)))
    gateway.add_model("gpt-longer", "longer")
    with client.messages.stream(model="gpt-longer", max_tokens=1, messages=HI) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_images_reach_an_openai_format_model_as_image_parts(client, upstream):
    client.messages.create(model="gpt-test", max_tokens=5, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is it?"}]}])
    assert upstream.requests[-1]["json"]["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, {"type": "text", "text": "What is it?"}]


def test_a_gemini_model_answers_messages_whole_and_streamed(client, gemini, upstream):
    message = client.messages.create(model=gemini, max_tokens=50, system="Be brief.", messages=HI)
    sent = upstream.requests[-1]
    assert ":generateContent" in sent["path"] and sent["json"]["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert message.content[-1].text and message.stop_reason == "end_turn"
    served = upstream.ledger[-1]
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == served.prompt_tokens
    with client.messages.stream(model=gemini, max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert ":streamGenerateContent" in upstream.requests[-1]["path"]
    assert text == final.content[-1].text and final.usage.output_tokens == upstream.ledger[-1].completion_tokens


def test_a_fallback_from_an_anthropic_deployment_to_an_openai_one_translates(client, gateway, upstream):
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    model = key_services.model_create(actor=gateway.ctx, name="claude-ha", fallback_models=["gpt-test"])
    key_services.deployment_create(actor=gateway.ctx, model=model, credential=credential, upstream_model="fail-500")
    raw = client.messages.with_raw_response.create(model="claude-ha", max_tokens=20, messages=HI)
    assert raw.parse().content[-1].text == " ".join(REPLY_WORDS) and int(raw.headers["x-tollgate-attempts"]) >= 2
    assert next(r["path"] for r in upstream.requests) == "/v1/messages" and upstream.requests[-1]["path"] == "/v1/chat/completions"
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.provider) == ("messages", 200, "custom")


def test_count_tokens_for_an_openai_format_model_is_an_offline_estimate(client, gateway, upstream):
    body = {"model": "gpt-test", "system": "Be brief.", "messages": HI, "tools": TOOLS}
    raw = client.messages.with_raw_response.count_tokens(**body)
    assert raw.headers["x-tollgate-token-count"] == "estimate"
    expected = tokens.estimate_prompt("chat", to_chat({**body, "model": "echo"}, Target(0, "custom", "openai", "", "", "echo"), False))
    assert raw.parse().input_tokens == expected > 0
    assert not upstream.requests  # nothing was sent
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.prompt_tokens, event.completion_tokens) == ("count_tokens", 200, 0, 0)


def test_errors_from_a_translated_upstream_come_in_anthropic_shape(client, gateway, upstream):
    gateway.add_model("gpt-429", "fail-429")
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="gpt-429", max_tokens=5, messages=HI)
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gpt-test", max_tokens=5, messages=[
            {"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]}])
    assert caught.value.body["error"]["type"] == "invalid_request_error" and "messages.0.content.0" in caught.value.body["error"]["message"]
    event = ledger_row(caught.value.response.headers["x-request-id"])
    assert (event.endpoint, event.status_code) == ("messages", 400)


def test_an_error_mid_stream_becomes_an_error_event(client, gateway, upstream):
    upstream.can("breaks", Canned(chunks=(_sse({"index": 0, "delta": {"content": "Hel"}, "finish_reason": None})[:-len(b"data: [DONE]\n\n")]
                                          + b'data: {"error": {"message": "overloaded", "code": 503}}\n\n',)))
    gateway.add_model("gpt-breaks", "breaks")
    with pytest.raises(anthropic.APIStatusError) as caught:
        for _ in client.messages.create(model="gpt-breaks", max_tokens=50, stream=True, messages=HI):
            pass
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "api_error"


def test_a_client_disconnect_mid_translated_stream_is_billed_for_what_was_delivered(gateway, upstream):
    upstream.chunk_delay = 0.2
    try:
        body = {"model": "gpt-test", "max_tokens": 50, "stream": True, "messages": HI}
        deltas = 0
        with httpx.stream("POST", gateway.base_url + "/messages", json=body, headers={"x-api-key": gateway.secret}, timeout=10) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                deltas += line == "event: content_block_delta"
                if deltas == 3:
                    break
        event = ledger_row(request_id)
        time.sleep(1)
        entry = upstream.ledger[-1]
        assert not entry.completed
        assert (event.status_code, event.error_type, event.endpoint, event.usage_source) == (499, "client_disconnected", "messages", "estimated")
        assert 3 <= event.completion_tokens <= entry.completion_tokens and event.prompt_tokens > 0
    finally:
        upstream.chunk_delay = 0.0


def test_a_claude_code_first_turn_relayed_to_an_openai_format_model(gateway, upstream):
    """The recorded Claude Code request (system blocks with cache_control, tools, thinking, metadata,
    streaming, its beta header) to an OpenAI-format mock, with usage exact."""
    raw = (FIXTURES / "claude_code_first_turn.json").read_bytes().replace(b'"claude-sonnet-4-5"', b'"gpt-test"', 1)
    headers = {"authorization": f"Bearer {gateway.secret}", "anthropic-version": "2023-06-01", "content-type": "application/json",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    with httpx.stream("POST", gateway.base_url + "/messages", content=raw, headers=headers, timeout=20) as response:
        assert response.status_code == 200
        relayed = response.read().decode()
    sent = upstream.requests[-1]
    body = json.loads(raw)
    assert sent["path"] == "/v1/chat/completions" and "anthropic-beta" not in {k.lower() for k in sent["headers"]}
    assert sent["json"]["messages"][0] == {"role": "system", "content": "\n\n".join(b["text"] for b in body["system"])}
    assert [t["function"]["name"] for t in sent["json"]["tools"]] == [t["name"] for t in body["tools"]]
    assert "cache_control" not in json.dumps(sent["json"]) and sent["json"]["user"] == body["metadata"]["user_id"]
    assert relayed.rstrip().endswith('event: message_stop\ndata: {"type":"message_stop"}')
    served = upstream.ledger[-1]
    event = ledger_row(response.headers["x-request-id"])
    assert (event.status_code, event.usage_source, event.prompt_tokens, event.completion_tokens) == (
        200, "provider", served.prompt_tokens, len(REPLY_WORDS))


def test_an_idempotent_retry_replays_a_translated_answer(gateway, upstream):
    body = {"model": "gpt-test", "max_tokens": 20, "messages": HI}
    headers = {"x-api-key": gateway.secret, "idempotency-key": "msg-translated-1"}
    first = httpx.post(gateway.base_url + "/messages", json=body, headers=headers, timeout=20)
    second = httpx.post(gateway.base_url + "/messages", json=body, headers=headers, timeout=20)
    assert first.status_code == second.status_code == 200 and second.headers["idempotent-replayed"] == "true"
    assert first.json() == second.json() and first.json()["type"] == "message" and len(upstream.ledger) == 1


def test_a_translated_stream_past_its_output_ceiling_is_cut_with_an_error_event(gateway, upstream):
    first = _sse({"index": 0, "delta": {"role": "assistant", "content": "Go"}, "finish_reason": None})[: -len(b"data: [DONE]\n\n")]
    more = _sse({"index": 0, "delta": {"content": " more words" * 20}, "finish_reason": None})[: -len(b"data: [DONE]\n\n")]
    upstream.can("flood", Canned(chunks=(first,), endless=more, interval=0.001))
    gateway.add_model("gpt-flood", "flood")
    body = {"model": "gpt-flood", "max_tokens": 10, "stream": True, "messages": HI}
    response = httpx.post(gateway.base_url + "/messages", json=body, headers={"x-api-key": gateway.secret}, timeout=20)
    last = response.text.rstrip().split("\n\n")[-1]
    assert response.text.startswith("event: message_start") and last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["type"] == "error"
    event = ledger_row(response.headers["x-request-id"])
    assert event.error_type == "output_limit_exceeded" and 0 < event.completion_tokens <= 10 + 10 // 4 + 16


def test_an_upstream_without_usage_is_billed_from_an_estimate(client, gateway):
    gateway.add_model("gpt-nousage", "nousage")
    raw = client.messages.with_raw_response.create(model="gpt-nousage", max_tokens=50, messages=HI)
    assert raw.parse().content[-1].text == " ".join(REPLY_WORDS)
    with client.messages.with_streaming_response.create(model="gpt-nousage", max_tokens=50, messages=HI, stream=True) as streamed:
        streamed.read()
    for request_id in (raw.headers["x-request-id"], streamed.headers["x-request-id"]):
        event = ledger_row(request_id)
        assert (event.status_code, event.usage_source) == (200, "estimated")
        assert event.prompt_tokens > 0 and event.completion_tokens >= len(REPLY_WORDS) - 1


def test_a_tool_round_trip_through_a_gemini_model(client, gemini, upstream):
    question = {"role": "user", "content": "use tool for Paris"}
    first = client.messages.create(model=gemini, max_tokens=50, tools=TOOLS, tool_choice={"type": "any"}, messages=[question])
    sent = upstream.requests[-1]["json"]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    call = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.input == {"city": "Paris"}
    second = client.messages.create(model=gemini, max_tokens=50, tools=TOOLS, messages=[
        question, {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ])
    contents = upstream.requests[-1]["json"]["contents"]
    assert contents[1]["parts"][-1]["functionCall"]["name"] == "get_weather"
    assert contents[1]["parts"][-1]["thoughtSignature"] == "c2lnLW1vY2s="  # carried in the tool id, back to Gemini
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    assert second.stop_reason == "end_turn" and second.content[-1].text


def test_no_query_or_round_trip_per_translated_request(client, gateway, counted_io):  # noqa: F811
    """The hot path's promise (tests/relay/test_hot_path.py) holds when /v1/messages is translated too."""
    from django.conf import settings

    from billing import services as billing_services

    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=100_000, tpm_limit=100_000_000)
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1", output_per_m="2")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="1000")
    wait_for(lambda: client.messages.with_raw_response.create(model="gpt-test", max_tokens=20, messages=HI).headers.get("x-ratelimit-limit-requests"))
    time.sleep(1.2)  # every configuration change reaches the relay
    for _ in range(5):
        client.messages.create(model="gpt-test", max_tokens=20, messages=HI)
    sql, redis_trips = counted_io
    sql.count = redis_trips.count = 0
    requests = 100
    started = time.monotonic()
    for index in range(requests):
        if index % 2:
            client.messages.create(model="gpt-test", max_tokens=20, messages=HI)
        else:
            for _ in client.messages.create(model="gpt-test", max_tokens=20, messages=HI, stream=True):
                pass
    elapsed = time.monotonic() - started
    background = int(elapsed / 0.5 + 1) * 2 + int(elapsed / 0.2 + 1) + 10
    # The relay's own timers (lease renewals, usage flushes) scale with the elapsed time; one trip per request
    # would make at least `requests`.
    assert redis_trips.count <= background and redis_trips.count < requests, (redis_trips.count, background)
    if settings.REDIS_URL:
        assert sql.count == 0, sql.seen
    else:
        assert sql.count <= int(elapsed / 0.2 + 1) * 20
