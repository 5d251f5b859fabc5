"""/v1/messages and /v1/messages/count_tokens: the official anthropic SDK through the real relay to the mock
upstream's Anthropic routes, governed like chat (README "Anthropic Messages")."""

import json
import time
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for
from tests.relay.test_hot_path import counted_io  # noqa: F401 (a fixture)
from tests.upstream.server import REPLY_WORDS, Canned

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
def claude(gateway, upstream):
    """Anthropic-format models on the mock upstream, and an anthropic SDK client for the relay."""
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    for name, upstream_model in (("claude", "echo"), ("claude-cache", "cache-write"), ("claude-429", "fail-429"),
                                 ("claude-529", "fail-529"), ("claude-400", "fail-400"), ("claude-flood", "flood")):
        gateway.add_model(name, upstream_model, credential=credential)
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.secret, max_retries=0, timeout=20)


def ledger_row(request_id):
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])


def test_plain_message_passes_through_and_is_metered(claude, gateway, upstream):
    raw = claude.messages.with_raw_response.create(
        model="claude", max_tokens=50, system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "Hi there"}], stop_sequences=["END"], metadata={"user_id": "u-1"}, extra_body={"temperature": 0.5},
    )
    message = raw.parse()
    assert message.type == "message" and message.content[0].text == " ".join(REPLY_WORDS)
    assert message.stop_reason == "end_turn"
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["json"] == {"model": "echo", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi there"}],
                            "metadata": {"user_id": "u-1"}, "stop_sequences": ["END"], "system": [{"type": "text", "text": "Be brief."}],
                            "temperature": 0.5}
    assert sent["headers"]["x-api-key"] == "test-key"  # the credential's
    assert sent["headers"]["anthropic-version"] == raw.http_request.headers["anthropic-version"]  # the client's, forwarded
    assert gateway.secret not in json.dumps(sent)  # the client's key is never forwarded
    event = ledger_row(raw.headers["x-request-id"])
    served = upstream.ledger[-1]
    assert (event.endpoint, event.status_code, event.usage_source) == ("messages", 200, "provider")
    assert (event.prompt_tokens, event.completion_tokens) == (served.prompt_tokens, len(REPLY_WORDS))
    assert event.provider == "anthropic" and event.upstream_model == "echo" and event.model_name == "claude"


def test_bearer_auth_works_too(claude, gateway):
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), auth_token=gateway.secret, max_retries=0)
    assert client.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]).content[0].text


def test_stream_passes_every_event_in_order(claude, gateway, upstream):
    body = {"model": "claude", "max_tokens": 50, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "please use tool"}]}
    headers = {"x-api-key": gateway.secret, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", gateway.base_url + "/messages", json=body, headers=headers, timeout=20) as response:
        assert response.headers["content-type"] == "text/event-stream"
        relayed = response.read()
        request_id = response.headers["x-request-id"]
    # The same events, in the same order, as the upstream sends them to a direct client (but the model).
    direct = httpx.post(upstream.url + "/v1/messages", json={**body, "model": "echo"},
                        headers={"x-api-key": "test-key", "anthropic-version": "2023-06-01"}).content
    kinds = [line[7:] for line in relayed.decode().splitlines() if line.startswith("event: ")]
    assert kinds == [line[7:] for line in direct.decode().splitlines() if line.startswith("event: ")]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert "input_json_delta" in relayed.decode() and b"[DONE]" not in relayed
    event = ledger_row(request_id)
    assert (event.endpoint, event.stream, event.status_code, event.completion_tokens) == ("messages", True, 200, len(REPLY_WORDS))

    # The SDK reads it: text accumulated, the tool call's JSON whole.
    with claude.messages.stream(model="claude", max_tokens=50, tools=TOOLS, messages=[{"role": "user", "content": "please use tool"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == " ".join(REPLY_WORDS)
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Paris"}
    assert final.usage.output_tokens == len(REPLY_WORDS)


def test_tools_round_trip(claude):
    question = {"role": "user", "content": "use tool for Paris"}
    first = claude.messages.create(model="claude", max_tokens=50, tools=TOOLS, tool_choice={"type": "auto"}, messages=[question])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    second = claude.messages.create(model="claude", max_tokens=50, tools=TOOLS, messages=[
        question, {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "sunny"}]}]},
    ])
    assert second.stop_reason == "end_turn" and second.content[0].text


def test_errors_come_in_anthropic_shape(claude, gateway):
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="nope", max_tokens=5, messages=messages)
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key="tg-wrong", max_retries=0).messages.create(
            model="claude", max_tokens=5, messages=messages)
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude", max_tokens=5, messages=messages, metadata={"user_id": "u", "api_base": "http://evil"})
    assert caught.value.body["error"]["type"] == "invalid_request_error" and "api_base" in caught.value.body["error"]["message"]
    missing = httpx.post(gateway.base_url + "/messages", json={"model": "claude", "messages": messages}, headers={"x-api-key": gateway.secret})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in missing.text
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="claude-429", max_tokens=5, messages=messages)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude.messages.create(model="claude-529", max_tokens=5, messages=messages)
    assert caught.value.status_code == 529 and caught.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude-400", max_tokens=5, messages=messages)
    assert "sk-ant" not in json.dumps(caught.value.body) and "10.1.2.3" not in json.dumps(caught.value.body)
    key = key_services.virtual_key_create(actor=gateway.ctx, name="narrow", user=gateway.ctx.user, allowed_models=["gpt-test"])[1]
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=key, max_retries=0).messages.create(
            model="claude", max_tokens=5, messages=messages)
    assert caught.value.body["error"]["type"] == "permission_error"
    assert httpx.get(gateway.base_url + "/messages").json()["type"] == "error"  # 405, in the same shape


def test_a_hard_budget_refuses_before_forwarding(claude, gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="anthropic", upstream_model="echo", currency="USD", input_per_m="1000", output_per_m="1000")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.001", period="month")
    gateway.key.refresh_from_db()
    upstream.reset()
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="claude", max_tokens=4000, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error" and "budget" in caught.value.body["error"]["message"].lower()
    assert not upstream.ledger  # nothing was forwarded
    event = ledger_row(caught.value.response.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.error_type) == ("messages", 429, "budget_exceeded")


def test_cache_reads_and_writes_are_exact_in_the_ledger(claude, gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="anthropic", upstream_model="cache-write", currency="USD", input_per_m="3",
                                  output_per_m="15", cached_input_per_m="0.30", cache_write_per_m="3.75")
    system = [{"type": "text", "text": "You are a careful assistant with a long system prompt " * 3, "cache_control": {"type": "ephemeral"}}]
    for stream in (False, True):
        raw = claude.messages.with_raw_response.create(model="claude-cache", max_tokens=50, system=system, stream=stream,
                                                       messages=[{"role": "user", "content": "Hi"}])
        if stream:
            for _ in raw.parse():
                pass
        event = ledger_row(raw.headers["x-request-id"])
        served = upstream.ledger[-1]
        cache_write = served.prompt_tokens - 2 - 1
        assert (event.prompt_tokens, event.cached_tokens, event.cache_write_tokens, event.completion_tokens) == (
            served.prompt_tokens, 2, cache_write, len(REPLY_WORDS))
        expected = (Decimal(1) * 3 + Decimal(2) * Decimal("0.30") + Decimal(cache_write) * Decimal("3.75") + Decimal(len(REPLY_WORDS)) * 15) / 10**6
        assert event.cost == expected


def test_a_client_disconnect_mid_stream_is_billed_for_what_was_delivered(claude, gateway, upstream):
    upstream.chunk_delay = 0.2
    try:
        body = {"model": "claude", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
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
        assert (event.status_code, event.error_type, event.endpoint) == (499, "client_disconnected", "messages")
        # Delivered <= billed <= generated: the three words delivered, counted (not message_start's placeholder
        # output_tokens of 1), with the input as message_start reported it.
        assert 3 <= event.completion_tokens <= entry.completion_tokens
        assert (event.usage_source, event.prompt_tokens) == ("estimated", entry.prompt_tokens)
    finally:
        upstream.chunk_delay = 0.0


def _delta(text):
    return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"' + text + b'"}}\n\n'


def test_a_stream_past_its_output_ceiling_is_cut_with_an_error_event(claude, gateway, upstream):
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_flood","type":"message","role":"assistant",'
             b'"content":[],"model":"flood","usage":{"input_tokens":5,"output_tokens":1}}}\n\n')
    upstream.can("flood", Canned(chunks=(start,), endless=_delta(b"more words " * 20), interval=0.001))
    body = {"model": "claude-flood", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(gateway.base_url + "/messages", json=body, headers={"x-api-key": gateway.secret}, timeout=20)
    assert response.text.rstrip().split("\n\n")[-1].startswith("event: error\ndata: ")
    assert json.loads(response.text.rstrip().split("\n\n")[-1].split("data: ", 1)[1])["type"] == "error"
    event = ledger_row(response.headers["x-request-id"])
    assert event.error_type == "output_limit_exceeded" and event.completion_tokens <= 10 + 10 // 4 + 16
    wait_for(lambda: upstream.canned_log and upstream.canned_log[-1]["closed_by_peer"])


def test_an_upstream_error_event_reaches_the_client_as_an_error_event(claude, upstream):
    upstream.can("echo", Canned(chunks=((FIXTURES / "stream_error.sse").read_bytes(),)))
    with pytest.raises(anthropic.APIStatusError) as caught:
        for _ in claude.messages.create(model="claude", max_tokens=50, stream=True, messages=[{"role": "user", "content": "Hi"}]):
            pass
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_a_claude_code_first_turn_passes_through_untouched_but_the_model(claude, gateway, upstream):
    """A recorded request shape of Claude Code's first turn: system blocks with cache_control, tools,
    thinking, metadata, streaming, and its beta header."""
    raw = (FIXTURES / "claude_code_first_turn.json").read_bytes()
    headers = {"authorization": f"Bearer {gateway.secret}", "anthropic-version": "2023-06-01", "content-type": "application/json",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"}
    body = json.loads(raw)
    with httpx.stream("POST", gateway.base_url + "/messages", content=raw.replace(b'"claude-sonnet-4-5"', b'"claude"', 1),
                      headers=headers, timeout=20) as response:
        assert response.status_code == 200
        response.read()
    sent = upstream.requests[-1]
    forwarded = json.dumps(sent["json"], separators=(",", ":"), ensure_ascii=False)
    assert forwarded == json.dumps({**body, "model": "echo"}, separators=(",", ":"), ensure_ascii=False)  # keys in order too
    assert sent["headers"]["anthropic-beta"] == headers["anthropic-beta"] and sent["headers"]["x-api-key"] == "test-key"
    event = ledger_row(response.headers["x-request-id"])
    assert event.status_code == 200 and event.completion_tokens == len(REPLY_WORDS)


def test_count_tokens_is_forwarded_and_free(claude, gateway, upstream):
    raw = claude.messages.with_raw_response.count_tokens(model="claude", system="Be brief.", messages=[{"role": "user", "content": "Hi there"}])
    assert raw.parse().input_tokens == 3 + 2 + 2
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens" and sent["json"]["model"] == "echo" and sent["headers"]["x-api-key"] == "test-key"
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.prompt_tokens, event.completion_tokens, event.cost_display) == (
        "count_tokens", 200, 0, 0, Decimal(0))


def test_the_demo_model_answers_messages_locally(gateway):
    credential = key_services.credential_create(actor=gateway.ctx, name="demo", provider="mock")
    gateway.add_model("demo", "tollgate-demo", credential=credential)
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.secret, max_retries=0, timeout=20)
    raw = client.messages.with_raw_response.create(model="demo", max_tokens=100, messages=[{"role": "user", "content": "Hello"}])
    message = raw.parse()
    assert message.content[0].text.endswith("You said: Hello") and message.stop_reason == "end_turn"
    with client.messages.stream(model="demo", max_tokens=3, messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "This is Tollgate's" and final.usage.output_tokens == 3 and final.stop_reason == "max_tokens"
    assert client.messages.count_tokens(model="demo", messages=[{"role": "user", "content": "Hello"}]).input_tokens > 0
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.usage_source, event.completion_tokens) == ("messages", 200, "provider", message.usage.output_tokens)


def test_an_idempotent_retry_replays_the_answer(claude, gateway, upstream):
    body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"x-api-key": gateway.secret, "idempotency-key": "msg-retry-1"}
    first = httpx.post(gateway.base_url + "/messages", json=body, headers=headers, timeout=20)
    second = httpx.post(gateway.base_url + "/messages", json=body, headers=headers, timeout=20)
    assert first.status_code == second.status_code == 200 and second.headers["idempotent-replayed"] == "true"
    assert first.json() == second.json() and len(upstream.ledger) == 1


def test_no_query_or_round_trip_per_messages_request(claude, gateway, counted_io):
    """The hot path's promise (tests/relay/test_hot_path.py) holds on /v1/messages too."""
    from django.conf import settings

    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=100_000, tpm_limit=100_000_000)
    billing_services.price_create(actor=gateway.ctx, provider="anthropic", upstream_model="echo", currency="USD", input_per_m="1", output_per_m="2")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="1000")
    messages = [{"role": "user", "content": "Hi"}]
    wait_for(lambda: claude.messages.with_raw_response.create(model="claude", max_tokens=20, messages=messages).headers.get("x-ratelimit-limit-requests"))
    time.sleep(1.2)  # every configuration change reaches the relay
    for _ in range(5):
        claude.messages.create(model="claude", max_tokens=20, messages=messages)
    sql, redis_trips = counted_io
    sql.count = redis_trips.count = 0
    requests = 150
    started = time.monotonic()
    for index in range(requests):
        if index % 2:
            claude.messages.create(model="claude", max_tokens=20, messages=messages)
        else:
            for _ in claude.messages.create(model="claude", max_tokens=20, messages=messages, stream=True):
                pass
    elapsed = time.monotonic() - started
    background = int(elapsed / 0.5 + 1) * 2 + int(elapsed / 0.2 + 1) + 10
    assert redis_trips.count <= background and redis_trips.count < requests / 2, (redis_trips.count, background)
    if settings.REDIS_URL:
        assert sql.count == 0, sql.seen
    else:
        assert sql.count <= int(elapsed / 0.2 + 1) * 20


def test_retries_and_fallbacks_stay_among_anthropic_deployments(claude, gateway, upstream):
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic-2", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    # The primary fails; its fallbacks are an Anthropic model, then an OpenAI-format one (translated, not needed here).
    gateway.add_model("claude-backup", "echo", credential=credential)
    model = key_services.model_create(actor=gateway.ctx, name="claude-ha", fallback_models=["claude-backup", "gpt-test"])
    key_services.deployment_create(actor=gateway.ctx, model=model, credential=credential, upstream_model="fail-500")
    raw = claude.messages.with_raw_response.create(model="claude-ha", max_tokens=20, messages=[{"role": "user", "content": "Hi"}])
    assert raw.parse().content[0].text.startswith("Hello") and int(raw.headers["x-tollgate-attempts"]) >= 2
    assert [r["json"]["model"] for r in upstream.requests if r["path"] == "/v1/messages"][-1] == "echo"
    assert all(r["path"] == "/v1/messages" for r in upstream.requests)  # the Anthropic fallback answered, untranslated


def test_the_key_rate_limit_answers_in_anthropic_shape(claude, gateway):
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=1)
    messages = [{"role": "user", "content": "Hi"}]
    time.sleep(1.2)  # the change reaches the relay
    with pytest.raises(anthropic.RateLimitError) as caught:
        for _ in range(3):
            claude.messages.create(model="claude", max_tokens=5, messages=messages)
    assert caught.value.body["error"]["type"] == "rate_limit_error" and caught.value.response.headers.get("retry-after")


def test_an_interrupted_idempotent_stream_replays_in_anthropic_format(claude, gateway, upstream):
    upstream.chunk_delay = 0.2
    body = {"model": "claude", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"x-api-key": gateway.secret, "idempotency-key": "msg-stream-1"}
    try:
        with httpx.stream("POST", gateway.base_url + "/messages", json=body, headers=headers, timeout=10) as response:
            for line in response.iter_lines():
                if line == "event: content_block_delta":
                    break  # the client goes away
        ledger_row(response.headers["x-request-id"])
    finally:
        upstream.chunk_delay = 0.0
    replay = wait_for(lambda: (lambda r: r if r.headers.get("idempotent-replayed") else None)(
        httpx.post(gateway.base_url + "/messages", json=body, headers=headers, timeout=10)))
    last = replay.text.rstrip().split("\n\n")[-1]
    assert replay.text.startswith("event: message_start") and last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error" and "[DONE]" not in replay.text


def test_a_large_message_body_is_checked_off_the_event_loop_with_the_messages_rules(claude, gateway, upstream):
    """Bodies past relay.bodies.OFFLOAD_BYTES are parsed in the body reader's worker process: a coding
    agent's long context is read there with the Messages checks, and refused in Anthropic's shape."""
    from relay.bodies import OFFLOAD_BYTES

    long_context = "word " * (OFFLOAD_BYTES // 4)
    message = claude.messages.create(model="claude", max_tokens=20, system=[{"type": "text", "text": long_context}],
                                     messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == " ".join(REPLY_WORDS)
    assert upstream.requests[-1]["json"]["system"][0]["text"] == long_context
    with pytest.raises(anthropic.BadRequestError) as info:  # no max_tokens: the Messages rules, not chat's
        claude.messages.create(model="claude", max_tokens=20, messages=[{"role": "user", "content": long_context}],
                               extra_body={"max_tokens": None})
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
