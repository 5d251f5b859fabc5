"""What comes back from upstream is untrusted: streams are bounded, malformed answers and errors inside a
200 end in OpenAI-shaped errors, a refused credential cools its deployment, responses keep the public
model name. Everything through the real relay, with the openai SDK or raw HTTP."""

import json
import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.db.models import Sum

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for
from tests.upstream.server import Canned

MESSAGES = [{"role": "user", "content": "Hi"}]


def output_ceiling(allowance: int) -> int:
    """README "Budgets and limits": a request is delivered and billed at most its allowance + 25 % + 16 tokens."""
    return allowance + allowance // 4 + 16


def sse(payload) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def chunk(text: str, name: str = "flood", finish=None) -> dict:
    return {"id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1, "model": name,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


FLOOD = sse(chunk("lorem ipsum dolor sit amet consectetur adipiscing elit "))


def model_on(gateway, name: str, upstream_model: str, credential=None, **policy):
    model = key_services.model_create(actor=gateway.ctx, name=name, **policy)
    return key_services.deployment_create(actor=gateway.ctx, model=model, credential=credential or gateway.credential, upstream_model=upstream_model)


def row(request_id: str) -> UsageEvent:
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])


def raw_stream(gateway, body: dict, headers=None, timeout=20) -> tuple[httpx.Response, list]:
    """POST a streamed chat request; the response and its data lines, parsed ([DONE] as a string)."""
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={"stream": True, **body}, timeout=timeout,
                      headers={"authorization": f"Bearer {gateway.secret}", **(headers or {})}) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    return response, [line if line == "[DONE]" else json.loads(line) for line in lines]


# -- 1. streams are bounded --------------------------------------------------------------------------


def test_a_stream_past_its_max_tokens_is_cut_closed_and_billed_for_what_was_delivered(gateway, upstream):
    upstream.can("flood", Canned(endless=FLOOD))
    model_on(gateway, "flooded", "flood")
    started = time.monotonic()
    response, events = raw_stream(gateway, {"model": "flooded", "messages": MESSAGES, "max_tokens": 10})
    assert time.monotonic() - started < 10
    error = events[-1]
    assert error["error"]["code"] == "output_limit_exceeded" and error["id"] == "chatcmpl-up1"  # the stream's id
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert 0 < len(text) < 40 * output_ceiling(10)
    wait_for(lambda: upstream.canned_log and upstream.canned_log[-1]["closed_by_peer"])  # the upstream was closed
    event = row(response.headers["x-request-id"])
    assert event.error_type == "output_limit_exceeded" and event.usage_source == "estimated"
    assert 0 < event.completion_tokens <= output_ceiling(10)


def test_the_sdk_sees_the_cut_as_an_error(gateway, upstream):
    upstream.can("flood", Canned(endless=FLOOD))
    model_on(gateway, "flooded", "flood")
    with pytest.raises(openai.APIError) as info:
        for _ in gateway.client().chat.completions.create(model="flooded", messages=MESSAGES, max_tokens=10, stream=True):
            pass
    assert "past what the request allowed" in info.value.message


def test_without_max_tokens_the_output_reserve_bounds_the_stream(gateway, upstream, settings):
    upstream.can("flood", Canned(endless=FLOOD))
    model_on(gateway, "flooded", "flood")
    response, events = raw_stream(gateway, {"model": "flooded", "messages": MESSAGES}, timeout=60)
    assert events[-1]["error"]["code"] == "output_limit_exceeded"
    reserve = gateway_runtime().output_reserve
    assert row(response.headers["x-request-id"]).completion_tokens <= output_ceiling(reserve)


def test_a_stream_within_its_allowance_is_untouched(gateway, upstream):
    words = [" the"] * 30  # 30 tokens: exactly the allowance
    upstream.can("thirty", Canned(chunks=(*(sse(chunk(w, "thirty")) for w in words), sse(chunk("", "thirty", "stop")), b"data: [DONE]\n\n")))
    model_on(gateway, "exact", "thirty")
    _, events = raw_stream(gateway, {"model": "exact", "messages": MESSAGES, "max_tokens": 30})
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "".join(words)
    assert events[-1] == "[DONE]"


def test_a_trickling_stream_stops_at_the_models_stream_deadline(gateway, upstream):
    upstream.can("trickle", Canned(chunks=(sse(chunk("Hello", "trickle")),), endless=b": still here\n\n", interval=0.2))
    model_on(gateway, "slowpoke", "trickle", stream_deadline_seconds=2)
    started = time.monotonic()
    response, events = raw_stream(gateway, {"model": "slowpoke", "messages": MESSAGES, "max_tokens": 10})
    assert 1.5 < time.monotonic() - started < 8
    assert events[0]["choices"][0]["delta"]["content"] == "Hello"
    assert events[-1]["error"]["code"] == "upstream_timeout" and "deadline" in events[-1]["error"]["message"]
    wait_for(lambda: upstream.canned_log and upstream.canned_log[-1]["closed_by_peer"])
    assert row(response.headers["x-request-id"]).status_code == 504


def test_a_trickling_whole_answer_stops_at_the_same_deadline(gateway, upstream):
    upstream.can("trickle", Canned(chunks=(b'{"id": "x", ',), endless=b" ", interval=0.2, content_type="application/json"))
    model_on(gateway, "slowpoke", "trickle", stream_deadline_seconds=2)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="slowpoke", messages=MESSAGES)
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"
    assert 1.5 < time.monotonic() - started < 8
    wait_for(lambda: upstream.canned_log and upstream.canned_log[-1]["closed_by_peer"])


def test_the_readme_overspend_bound_holds_against_an_upstream_that_ignores_max_tokens(gateway, upstream):
    """README "Budgets and limits": beyond its reservation a request can cost at most its output margin
    (allowance // 4 + 16 tokens); the upstream here ignores max_tokens and never stops."""
    upstream.can("flood", Canned(endless=FLOOD))
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="flood", currency="USD", input_per_m="0", output_per_m="1000")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.05", period="month")
    model_on(gateway, "flooded", "flood")
    client = gateway.client()
    admitted = 0
    for _ in range(20):
        try:
            stream = client.chat.completions.create(model="flooded", messages=MESSAGES, max_tokens=10, stream=True)
        except openai.RateLimitError as error:
            assert error.code == "budget_exceeded"
            break
        admitted += 1
        with pytest.raises(openai.APIError):
            list(stream)
    else:
        pytest.fail("the hard budget never refused")
    wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org, error_type="output_limit_exceeded").count() == admitted)[1])
    total = UsageEvent.objects.filter(organization=gateway.org).aggregate(total=Sum("cost_display"))["total"]
    margin = Decimal(output_ceiling(10) - 10) * Decimal("0.001")  # 1000 USD per 1M tokens
    rows = list(UsageEvent.objects.filter(organization=gateway.org).values_list("status_code", "error_type", "completion_tokens", "cost_display"))
    assert admitted >= 2 and total is not None and total <= Decimal("0.05") + margin, (admitted, total, rows)


def gateway_runtime():
    from config.asgi import relay_application

    return relay_application.runtime


# -- 2. malformed answers -----------------------------------------------------------------------------

FORMATS = {
    "anthropic": {"base": "", "api_version": ""},
    "gemini": {"base": "/v1beta", "api_version": ""},
    "azure": {"base": "", "api_version": "2024-10-21"},
}
BAD_USAGE_WHOLE = {
    "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": "bad",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": "lots", "completion_tokens": 2}},
    "anthropic": {"id": "m1", "type": "message", "role": "assistant", "model": "bad", "content": [{"type": "text", "text": "Hello there"}],
                  "stop_reason": "end_turn", "usage": {"input_tokens": "lots", "output_tokens": 2}},
    "gemini": {"candidates": [{"content": {"parts": [{"text": "Hello there"}], "role": "model"}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": "lots", "candidatesTokenCount": 2}},
}
BAD_USAGE_STREAM = {
    "openai": (sse(chunk("Hello there", "bad")), sse({"id": "chatcmpl-up1", "choices": [], "usage": {"prompt_tokens": "lots"}}), b"data: [DONE]\n\n"),
    "anthropic": (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there"}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"lots"}}\n\n',
    ),
    "gemini": (sse({"candidates": [{"content": {"parts": [{"text": "Hello there"}]}}]}),
               sse({"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": "lots"}})),
}
BAD_JSON_STREAM = {
    "openai": (sse(chunk("Hello there", "bad")), b'data: {"id": "chatcmpl-up1", "choices": [\n\n'),
    "anthropic": (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there"}}\n\n',
                  b"event: content_block_delta\ndata: {not json\n\n"),
    "gemini": (sse({"candidates": [{"content": {"parts": [{"text": "Hello there"}]}}]}), b"data: <html>oops</html>\n\n"),
}
BAD_USAGE_WHOLE["azure"], BAD_USAGE_STREAM["azure"], BAD_JSON_STREAM["azure"] = BAD_USAGE_WHOLE["openai"], BAD_USAGE_STREAM["openai"], BAD_JSON_STREAM["openai"]


@pytest.fixture(params=["openai", "anthropic", "gemini", "azure"])
def wire(request, gateway, upstream):
    """A model "bad" on the wire format under test, served by the canned upstream model "bad"."""
    if request.param == "openai":
        credential = gateway.credential
    else:
        spec = FORMATS[request.param]
        credential = key_services.credential_create(actor=gateway.ctx, name=f"mock-{request.param}", provider=request.param,
                                                    base_url=upstream.url + spec["base"], api_key="test-key", api_version=spec["api_version"])
    model_on(gateway, "bad", "bad", credential=credential)
    return request.param


def test_a_malformed_usage_in_a_whole_answer_is_a_502_billed_as_an_estimate(gateway, upstream, wire):
    upstream.can("bad", Canned(chunks=(json.dumps(BAD_USAGE_WHOLE[wire]).encode(),), content_type="application/json"))
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="bad", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.code == "upstream_malformed"
    event = row(info.value.response.headers["x-request-id"])
    assert (event.status_code, event.error_type, event.usage_source) == (502, "upstream_malformed", "estimated")
    assert event.completion_tokens > 0


def test_a_body_that_is_not_json_is_a_502(gateway, upstream, wire):
    upstream.can("bad", Canned(chunks=(b"<html>Service temporarily unavailable</html>",), content_type="text/html"))
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="bad", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.code == "upstream_malformed"
    assert info.value.body["type"] == "api_error"
    event = row(info.value.response.headers["x-request-id"])
    assert event.error_type == "upstream_malformed" and event.completion_tokens == 0


@pytest.mark.parametrize("answers", [BAD_USAGE_STREAM, BAD_JSON_STREAM], ids=["bad-usage", "bad-json"])
def test_a_malformed_stream_ends_with_an_error_event_and_bills_what_was_delivered(gateway, upstream, wire, answers):
    upstream.can("bad", Canned(chunks=answers[wire]))
    response, events = raw_stream(gateway, {"model": "bad", "messages": MESSAGES, "stream_options": {"include_usage": True}})
    assert events[-1]["error"]["code"] == "upstream_malformed"
    assert "Hello there" in "".join(e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e.get("choices"))
    event = row(response.headers["x-request-id"])
    assert (event.error_type, event.usage_source) == ("upstream_malformed", "estimated") and event.completion_tokens >= 2


# -- 3. an error inside a 200 -------------------------------------------------------------------------

ERROR_200 = {
    "openai": {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": None}},
    "anthropic": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    "gemini": {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
}
ERROR_200["azure"] = ERROR_200["openai"]
ERROR_200_STREAM = {
    "openai": (sse(ERROR_200["openai"]),),
    "anthropic": (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',),
    "gemini": (sse(ERROR_200["gemini"]),),
}
ERROR_200_STREAM["azure"] = ERROR_200_STREAM["openai"]


def test_an_error_inside_a_whole_200_is_a_failure_not_a_billed_success(gateway, upstream, wire):
    upstream.can("bad", Canned(chunks=(json.dumps(ERROR_200[wire]).encode(),), content_type="application/json"))
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="bad", messages=MESSAGES)
    assert info.value.status_code >= 500 and "error" in info.value.response.json()
    event = row(info.value.response.headers["x-request-id"])
    assert event.status_code >= 500 and event.error_type
    assert (event.prompt_tokens, event.completion_tokens, event.cost) == (0, 0, None)


def test_an_error_event_inside_a_200_stream_is_a_failure_not_a_billed_success(gateway, upstream, wire):
    upstream.can("bad", Canned(chunks=ERROR_200_STREAM[wire]))
    with pytest.raises(openai.APIError):
        list(gateway.client().chat.completions.create(model="bad", messages=MESSAGES, stream=True))
    response, events = raw_stream(gateway, {"model": "bad", "messages": MESSAGES})
    assert "error" in events[-1] and events[-1]["id"]
    event = row(response.headers["x-request-id"])
    assert event.status_code >= 500 and event.error_type
    assert (event.prompt_tokens, event.completion_tokens) == (0, 0)


# -- 4. a rejected credential -------------------------------------------------------------------------


def test_a_rejected_credential_is_not_retried_cools_its_deployment_and_alerts_once(gateway, upstream, monkeypatch):
    import billing.tasks_alerts

    sent = []
    monkeypatch.setattr(billing.tasks_alerts.credential_rejected, "apply_async", lambda args, **kw: sent.append(args))
    model = key_services.model_create(actor=gateway.ctx, name="locked", retries_per_deployment=3, max_attempts=5)
    refused = key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model="fail-401", order=0)
    key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model="echo", order=1)
    client = gateway.client()
    answer = client.chat.completions.with_raw_response.create(model="locked", messages=MESSAGES)
    assert answer.headers["x-tollgate-deployment"] != str(refused.pk)  # fell back to the other deployment
    assert sum(r["json"]["model"] == "fail-401" for r in upstream.requests) == 1  # no retry on the refused credential
    assert gateway_runtime().cooldowns.cooling(refused.pk)
    client.chat.completions.create(model="locked", messages=MESSAGES)
    assert sum(r["json"]["model"] == "fail-401" for r in upstream.requests) == 1  # cooling: skipped
    wait_for(lambda: sent)
    time.sleep(0.2)
    assert sent == [(refused.pk, 401)]


def test_the_credential_alert_fires_once_per_credential_and_day_and_emails_admins_without_channels(gateway, mailoutbox):
    from billing.alerts import credential_rejected_alert
    from billing.models import Alert

    first = key_services.deployment_create(actor=gateway.ctx, model=gateway.model, credential=gateway.credential, upstream_model="a")
    second = key_services.deployment_create(actor=gateway.ctx, model=gateway.model, credential=gateway.credential, upstream_model="b")
    assert credential_rejected_alert(deployment_id=first.pk, status=401) is not None
    assert credential_rejected_alert(deployment_id=second.pk, status=403) is None  # the same credential, the same day
    assert Alert.objects.filter(organization=gateway.org, kind="credential.rejected").count() == 1
    assert len(mailoutbox) == 1 and "mock-openai" in mailoutbox[0].subject


# -- 6. the public model name -------------------------------------------------------------------------


def test_whole_answers_and_stream_chunks_carry_the_public_model_name(gateway, upstream):
    answer = gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert answer.model == "gpt-test" and upstream.requests[-1]["json"]["model"] == "echo"
    chunks = list(gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert {c.model for c in chunks} == {"gpt-test"}
    assert len({c.id for c in chunks}) == 1 and chunks[-1].usage is not None


def test_chunks_the_gateway_adds_carry_the_streams_id(gateway, upstream):
    upstream.can("nousage-stream", Canned(chunks=(sse(chunk("Hi", "nousage-stream")), sse(chunk("", "nousage-stream", "stop")), b"data: [DONE]\n\n")))
    model_on(gateway, "quiet", "nousage-stream")
    _, events = raw_stream(gateway, {"model": "quiet", "messages": MESSAGES, "stream_options": {"include_usage": True}})
    usage = [e for e in events if isinstance(e, dict) and e.get("usage")]
    assert usage and usage[0]["id"] == "chatcmpl-up1" and usage[0]["model"] == "quiet"
