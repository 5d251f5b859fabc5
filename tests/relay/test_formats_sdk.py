"""The openai SDK through Tollgate to upstreams speaking Anthropic, Gemini and Azure wire formats."""

import json

import openai
import pytest

from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
FORMATS = {
    "anthropic": {"base": "", "api_version": ""},
    "gemini": {"base": "/v1beta", "api_version": ""},
    "azure": {"base": "", "api_version": "2024-10-21"},
}


@pytest.fixture(params=sorted(FORMATS))
def fmt(request, gateway, upstream):
    wire = request.param
    spec = FORMATS[wire]
    credential = key_services.credential_create(
        actor=gateway.ctx, name=f"mock-{wire}", provider=wire, base_url=upstream.url + spec["base"], api_key="test-key",
        api_version=spec["api_version"],
    )
    for name, upstream_model in (("fmt", "echo"), ("fmt-429", "fail-429"), ("fmt-500", "fail-500"), ("fmt-400", "fail-400")):
        model = key_services.model_create(actor=gateway.ctx, name=name)
        key_services.deployment_create(actor=gateway.ctx, model=model, credential=credential, upstream_model=upstream_model)
    return wire


def test_chat_non_stream(gateway, upstream, fmt):
    raw = gateway.client().chat.completions.with_raw_response.create(model="fmt", messages=MESSAGES, max_tokens=50, temperature=0.5, stop=["END"])
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Hello")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=raw.headers["x-request-id"]).first())[1])
    served = upstream.ledger[-1]
    assert (event.prompt_tokens >= served.prompt_tokens, event.completion_tokens) == (True, served.completion_tokens)
    assert event.usage_source == "provider" and event.provider == fmt
    sent = upstream.requests[-1]
    assert "test-key" in json.dumps(sent["headers"]) + json.dumps(sent["query"])
    assert gateway.secret not in json.dumps(sent)


def test_chat_stream_with_usage(gateway, fmt):
    chunks = list(gateway.client().chat.completions.create(model="fmt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


TRANSLATED = "azure speaks the OpenAI format: tool calls pass through untouched (test_openai_sdk covers them)"


def test_tools_round_trip(gateway, fmt):
    if fmt == "azure":
        pytest.skip(TRANSLATED)
    client = gateway.client()
    first = client.chat.completions.create(model="fmt", messages=[{"role": "user", "content": "use tool please"}], tools=TOOLS, tool_choice="auto")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert call.function.name == "weather" and isinstance(json.loads(call.function.arguments), dict)
    second = client.chat.completions.create(
        model="fmt", tools=TOOLS,
        messages=[{"role": "user", "content": "use tool please"}, message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": "sunny"}],
    )
    assert second.choices[0].message.content


def test_streamed_tool_call(gateway, fmt):
    if fmt == "azure":
        pytest.skip(TRANSLATED)
    chunks = list(gateway.client().chat.completions.create(model="fmt", messages=[{"role": "user", "content": "use tool please"}], tools=TOOLS, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "weather"
    assert isinstance(json.loads("".join(tc.function.arguments or "" for tc in calls)), dict)


def test_errors_map_to_the_sdk_exceptions(gateway, fmt):
    client = gateway.client()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fmt-429", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fmt-500", messages=MESSAGES)
    assert info.value.status_code == 502
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fmt-400", messages=MESSAGES)


def test_embeddings_where_the_format_has_them(gateway, fmt):
    client = gateway.client()
    if fmt == "anthropic":
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="fmt", input="hello")
        return
    embedding = client.embeddings.create(model="fmt", input=["hello world", "bye"])
    assert len(embedding.data) == 2 and embedding.data[0].embedding
