"""The relay driven by the official openai SDK against the OpenAI-format mock upstream."""

import openai
import pytest

from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for


def ledger_row(request_id):
    def find():
        drain_usage()
        return UsageEvent.objects.filter(request_id=request_id).first()

    return wait_for(find)


def test_chat_non_stream_passes_through_and_records_usage(gateway, upstream):
    raw = gateway.client().chat.completions.with_raw_response.create(model="gpt-test", messages=[{"role": "user", "content": "Hi there"}])
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Hello from the mock")
    assert completion.model_extra is not None or True
    assert completion.choices[0].message.model_extra["reasoning_content"] == "thinking..."  # provider extras intact
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-tollgate-model"] == "gpt-test"
    assert raw.headers["x-tollgate-attempts"] == "1"
    # the client's credential never reaches the upstream; the stored one does
    sent = upstream.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer test-key"
    assert gateway.secret not in str(sent["headers"])
    event = ledger_row(request_id)
    entry = upstream.ledger[-1]
    assert (event.prompt_tokens, event.completion_tokens) == (entry.prompt_tokens, entry.completion_tokens)
    assert event.usage_source == "provider"
    assert event.status_code == 200 and event.key_id == gateway.key.pk and event.organization_id == gateway.org.pk


def test_chat_stream_with_usage_chunk(gateway, upstream):
    stream = gateway.client().chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock upstream at your service today friend"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_stream_without_usage_request_hides_the_usage_chunk_but_records_it(gateway, upstream):
    with gateway.client().chat.completions.with_streaming_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    assert all(c.usage is None for c in chunks)
    assert upstream.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    event = ledger_row(request_id)
    assert event.completion_tokens == 10 and event.usage_source == "provider" and event.stream


def test_upstream_without_usage_is_estimated(gateway, upstream):
    gateway.add_model("no-usage", "nousage")
    raw = gateway.client().chat.completions.with_raw_response.create(model="no-usage", messages=[{"role": "user", "content": "Hi"}])
    event = ledger_row(raw.headers["x-request-id"])
    assert event.usage_source == "estimated"
    assert event.completion_tokens > 0 and event.prompt_tokens > 0


def test_embeddings_and_completions(gateway):
    client = gateway.client()
    embedding = client.embeddings.create(model="gpt-test", input=["a b", "c"])
    assert len(embedding.data) == 2 and embedding.usage.prompt_tokens == 3
    completion = client.completions.create(model="gpt-test", prompt="Say hi")
    assert completion.choices[0].text.startswith("Hello")


def test_models_list_and_retrieve(gateway):
    client = gateway.client()
    assert [m.id for m in client.models.list()] == ["gpt-test"]
    assert client.models.retrieve("gpt-test").id == "gpt-test"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_tools_round_trip(gateway):
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    client = gateway.client()
    first = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "use tool please"}], tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "weather" and first.choices[0].finish_reason == "tool_calls"
    second = client.chat.completions.create(
        model="gpt-test", tools=tools,
        messages=[{"role": "user", "content": "use tool please"}, first.choices[0].message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": "sunny"}],
    )
    assert second.choices[0].message.content


@pytest.mark.parametrize(
    "secret, exception",
    [("tg-unknown", openai.AuthenticationError), ("", openai.AuthenticationError)],
)
def test_bad_keys_are_401(gateway, secret, exception):
    with pytest.raises(exception) as info:
        gateway.client(secret=secret or "x").chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.code == "invalid_api_key"


def test_revoked_key_is_refused(gateway):
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    key_services.virtual_key_revoke(actor=gateway.ctx, key=gateway.key)

    def refused():
        try:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
        except openai.AuthenticationError:
            return True
        return False

    wait_for(refused, timeout=2)


def test_model_not_allowed_and_not_found(gateway):
    gateway.add_model("other", "echo")
    key, secret = key_services.virtual_key_create(actor=gateway.ctx, name="narrow", allowed_models=["gpt-test"])
    client = gateway.client(secret=secret)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.code == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(model="missing", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "extra_body": {"api_base": "http://169.254.169.254"}}, "api_base"),
        ({"messages": [{"role": "user", "content": "x"}], "extra_body": {"metadata": {"base_url": "http://x"}}}, "metadata.base_url"),
        ({"messages": [{"role": "user", "content": "x"}], "extra_body": {"bogus_param": 1}}, "bogus_param"),
    ],
)
def test_bad_input_is_400_with_param(gateway, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="gpt-test", **kwargs)
    assert info.value.param == param


def test_upstream_errors_are_mapped_without_leaking(gateway):
    gateway.add_model("limited", "fail-429")
    gateway.add_model("broken", "fail-500")
    gateway.add_model("slow", "slow-5")
    client = gateway.client()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "Hi"}])
    assert "10.1.2.3" not in str(info.value.body)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 502 and info.value.code == "upstream_error"
    gateway.credential.read_timeout = 0.5
    key_services.credential_update(actor=gateway.ctx, credential=gateway.credential, read_timeout=0.5)
    wait_for(lambda: _times_out(client), timeout=5)


def _times_out(client) -> bool:
    try:
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "Hi"}])
    except openai.APIStatusError as error:
        return error.status_code == 504 and error.code == "upstream_timeout"
    return False


def test_demo_mock_provider_answers_locally(gateway):
    credential = key_services.credential_create(actor=gateway.ctx, name="demo", provider="mock")
    gateway.add_model("demo", "tollgate-demo", credential=credential)
    client = gateway.client()
    answer = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "ping"}])
    assert "You said: ping" in answer.choices[0].message.content
    chunks = list(client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "ping"}], stream=True))
    assert "ping" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_idempotency_key_replays_without_a_second_call_or_charge(gateway, upstream):
    client = gateway.client()
    headers = {"Idempotency-Key": "order-42"}
    first = client.chat.completions.with_raw_response.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}], extra_headers=headers)
    calls = len(upstream.ledger)
    second = client.chat.completions.with_raw_response.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}], extra_headers=headers)
    assert len(upstream.ledger) == calls
    assert second.headers["idempotent-replayed"] == "true"
    assert second.parse().model_dump() == first.parse().model_dump()
    assert second.headers["x-request-id"] == first.headers["x-request-id"]
    ledger_row(first.headers["x-request-id"])
    drain_usage()
    assert UsageEvent.objects.filter(organization=gateway.org).count() == 1
    # another key, or another Idempotency-Key, is a new request
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}], extra_headers={"Idempotency-Key": "order-43"})
    assert len(upstream.ledger) == calls + 1


def test_rpm_limit_answers_429_with_retry_after_and_openai_headers(gateway):
    key, secret = key_services.virtual_key_create(actor=gateway.ctx, name="slow lane", rpm_limit=2, tpm_limit=100_000)
    client = gateway.client(secret=secret)
    first = client.chat.completions.with_raw_response.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.code == "rate_limit_exceeded"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 61
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
