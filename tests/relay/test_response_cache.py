"""README "Response cache": the official openai SDK against the relay, the loopback mock upstream counting
the calls that reach it, and the real store (Redis when REDIS_URL is set, the in-process one without)."""

import time

import openai
import pytest

from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.gateway import drain_usage, wait_for
from tests.relay.test_hot_path import counted_io  # noqa: F401 (a fixture)

HELLO = [{"role": "user", "content": "Hello cache"}]


def ledger_row(request_id):
    def find():
        drain_usage()
        return UsageEvent.objects.filter(request_id=request_id).first()

    return wait_for(find)


def upstream_calls(upstream) -> int:
    return sum(1 for r in upstream.requests if r["path"].startswith("/v1/"))


def cache_on(gateway, **flags):
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, response_cache=True, **flags)


def a_hit(response):
    return response if response.headers["x-tollgate-cache"] == "hit" else None


def price(gateway):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1000", output_per_m="2000")


def test_second_identical_call_is_a_hit_at_zero_cost_with_the_cost_saved(gateway, upstream):
    cache_on(gateway)
    price(gateway)
    client = gateway.client()
    first = client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0)
    assert first.headers["x-tollgate-cache"] == "miss"
    calls = upstream_calls(upstream)
    # The body's keys in another order, and another `user`: the same request.
    second = client.chat.completions.with_raw_response.create(temperature=0, messages=HELLO, model="gpt-test", user="someone")
    assert second.headers["x-tollgate-cache"] == "hit"
    assert upstream_calls(upstream) == calls  # the upstream was not called again
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().id == first.parse().id
    original = ledger_row(first.headers["x-request-id"])
    hit = ledger_row(second.headers["x-request-id"])
    assert not original.cache_hit and original.cost_display > 0
    assert hit.cache_hit and hit.cost == 0 and hit.cost_display == 0 and hit.status_code == 200
    assert hit.would_have_cost == original.cost_display
    assert (hit.prompt_tokens, hit.completion_tokens) == (original.prompt_tokens, original.completion_tokens)


def test_a_stream_is_replayed_as_a_stream_the_sdk_parses(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test", messages=HELLO, temperature=0, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["x-tollgate-cache"] == "miss"
        first = list(response.parse())
    calls = upstream_calls(upstream)

    def replayed():
        with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=HELLO, temperature=0, stream=True, stream_options={"include_usage": True}
        ) as response:
            return response.headers["x-tollgate-cache"], list(response.parse())

    def hit():
        state, chunks = replayed()
        return chunks if state == "hit" else None

    chunks = wait_for(hit)  # the write lands after the response
    assert upstream_calls(upstream) == calls
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert text == "Hello from the mock upstream at your service today friend"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == first[-1].usage.completion_tokens == 10
    # The same entry answers the request without `stream`, whole.
    whole = client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0)
    assert whole.headers["x-tollgate-cache"] == "hit" and whole.parse().choices[0].message.content == text
    assert upstream_calls(upstream) == calls


def test_a_whole_answer_is_replayed_as_a_stream_without_a_usage_chunk_unless_asked(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    calls = upstream_calls(upstream)

    def replayed():
        with client.chat.completions.with_streaming_response.create(model="gpt-test", messages=HELLO, temperature=0, stream=True) as response:
            return (list(response.parse()), response.headers["x-request-id"]) if response.headers["x-tollgate-cache"] == "hit" else None

    chunks, request_id = wait_for(replayed)
    assert upstream_calls(upstream) == calls
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello from the mock")
    row = ledger_row(request_id)
    assert row.cache_hit and row.stream


def test_no_cache_from_the_client_bypasses_the_cache(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    wait_for(lambda: client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0).headers["x-tollgate-cache"] == "hit")
    calls = upstream_calls(upstream)
    fresh = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=HELLO, temperature=0, extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-tollgate-cache"] == "bypass"
    assert upstream_calls(upstream) == calls + 1
    assert not ledger_row(fresh.headers["x-request-id"]).cache_hit


def test_never_shared_across_organizations(gateway, upstream):
    cache_on(gateway)
    gateway.client().chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    wait_for(lambda: gateway.client().chat.completions.with_raw_response.create(
        model="gpt-test", messages=HELLO, temperature=0).headers["x-tollgate-cache"] == "hit")
    # Another organization, the same model name, the same request, its key opted in too.
    org = OrganizationFactory()
    ctx = OrgContext(organization=org, role=Role.OWNER, user=MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory()).user)
    credential = key_services.credential_create(actor=ctx, name="mock", provider="custom", base_url=upstream.url + "/v1", api_key="test-key")
    model = key_services.model_create(actor=ctx, name="gpt-test")
    key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="echo")
    _key, secret = key_services.virtual_key_create(actor=ctx, name="other", response_cache=True)
    calls = upstream_calls(upstream)
    other = gateway.client(secret).chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0)
    assert other.headers["x-tollgate-cache"] == "miss"
    assert upstream_calls(upstream) == calls + 1


def test_errors_are_not_cached(gateway, upstream):
    cache_on(gateway)
    gateway.add_model("failing", "fail-500")
    client = gateway.client()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="failing", messages=HELLO, temperature=0)
    assert upstream_calls(upstream) == 2  # each one reached the upstream


def test_temperature_above_zero_is_cached_only_when_allowed(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    for temperature in (0.7, None):  # not given: the provider's default, 1 at OpenAI
        extra = {} if temperature is None else {"temperature": temperature}
        answers = [client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, **extra) for _ in range(2)]
        assert all("x-tollgate-cache" not in a.headers for a in answers)
    assert upstream_calls(upstream) == 4
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, cache_any_temperature=True)
    wait_for(lambda: client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=HELLO, temperature=0.7).headers.get("x-tollgate-cache") == "hit")


def test_a_model_can_opt_in_for_every_key(gateway, upstream):
    key_services.model_update(actor=gateway.ctx, model=gateway.model, response_cache=True)
    client = gateway.client()
    client.embeddings.create(model="gpt-test", input=["a b", "c"])  # embeddings: always repeatable
    calls = upstream_calls(upstream)
    hit = wait_for(lambda: a_hit(client.embeddings.with_raw_response.create(model="gpt-test", input=["a b", "c"])))
    assert len(hit.parse().data) == 2 and upstream_calls(upstream) == calls


def test_tool_calls_are_cached_only_when_allowed(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
    ask = [{"role": "user", "content": "please use tool"}]
    for _ in range(2):
        answer = client.chat.completions.with_raw_response.create(model="gpt-test", messages=ask, tools=tools, temperature=0)
        assert answer.headers["x-tollgate-cache"] == "miss" and answer.parse().choices[0].message.tool_calls
    assert upstream_calls(upstream) == 2
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, cache_tool_calls=True)
    client.chat.completions.create(model="gpt-test", messages=ask, tools=tools, temperature=0)
    hit = wait_for(lambda: a_hit(client.chat.completions.with_raw_response.create(model="gpt-test", messages=ask, tools=tools, temperature=0)))
    assert hit.parse().choices[0].message.tool_calls[0].function.name == "weather"


def test_a_cut_stream_is_not_cached(gateway, upstream):
    cache_on(gateway)
    model = gateway.add_model("stalling", "stall")  # the mock upstream stops after two words
    key_services.model_update(actor=gateway.ctx, model=model, stream_deadline_seconds=1)
    client = gateway.client()
    for _ in range(2):
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model="stalling", messages=HELLO, temperature=0, stream=True))
    assert upstream_calls(upstream) == 2


def test_answers_over_the_size_cap_are_not_cached(gateway, upstream, relay_server):
    cache_on(gateway)
    cache = relay_server.relay.runtime.response_cache
    cap, cache.max_entry = cache.max_entry, 100
    try:
        client = gateway.client()
        answers = [client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0) for _ in range(3)]
    finally:
        cache.max_entry = cap
    assert [a.headers["x-tollgate-cache"] for a in answers] == ["miss"] * 3
    assert upstream_calls(upstream) == 3


def test_keys_and_models_that_did_not_opt_in_make_no_lookup(gateway, upstream):
    client = gateway.client()
    answers = [client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0) for _ in range(2)]
    assert all("x-tollgate-cache" not in a.headers for a in answers)
    assert upstream_calls(upstream) == 2


def test_no_cache_stores_the_fresh_answer_and_no_store_neither_reads_nor_writes(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    wait_for(lambda: client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0).headers["x-tollgate-cache"] == "hit")
    fresh = client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0, extra_headers={"Cache-Control": "no-cache"})
    # The mock upstream numbers its answers: the entry now holds the fresh one.
    wait_for(lambda: client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0).id == fresh.id)
    other = [{"role": "user", "content": "never stored"}]
    unstored = client.chat.completions.with_raw_response.create(model="gpt-test", messages=other, temperature=0, extra_headers={"Cache-Control": "no-store"})
    assert "x-tollgate-cache" not in unstored.headers
    calls = upstream_calls(upstream)
    assert client.chat.completions.with_raw_response.create(model="gpt-test", messages=other, temperature=0).headers["x-tollgate-cache"] == "miss"
    assert upstream_calls(upstream) == calls + 1


def test_completions_are_cached_too_and_replayed_as_a_stream(gateway, upstream):
    cache_on(gateway)
    client = gateway.client()
    whole = client.completions.create(model="gpt-test", prompt="Say hi", temperature=0)
    calls = upstream_calls(upstream)

    def replayed():
        with client.completions.with_streaming_response.create(model="gpt-test", prompt="Say hi", temperature=0, stream=True) as response:
            return list(response.parse()) if response.headers["x-tollgate-cache"] == "hit" else None

    chunks = wait_for(replayed)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert upstream_calls(upstream) == calls


def test_entries_expire_after_the_configured_time(gateway, upstream, settings):
    cache_on(gateway)
    gateway.client().chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    if not settings.REDIS_URL:
        pytest.skip("the in-process store's expiry is tested in tests/relay/test_response_cache_stores.py")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        names = wait_for(lambda: client.keys(f"tollgate:rc:{gateway.org.pk}:*"))
        assert len(names) == 1 and 0 < client.ttl(names[0]) <= settings.TOLLGATE_RESPONSE_CACHE_SECONDS == 3600
    finally:
        client.close()


def test_a_hit_costs_one_redis_round_trip_and_no_query(gateway, counted_io, settings):  # noqa: F811 (the fixture)
    if not settings.REDIS_URL:
        pytest.skip("without Redis the cache is in process: no round trip at all")
    assert settings.TOLLGATE_RESPONSE_CACHE_MAX_ENTRY_BYTES == 1024 * 1024 and settings.TOLLGATE_RESPONSE_CACHE_LOCAL_BYTES == 64 * 1024 * 1024
    cache_on(gateway)
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    wait_for(lambda: client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0).headers["x-tollgate-cache"] == "hit")
    time.sleep(1.2)  # every configuration change has reached the relay
    for _ in range(5):  # warm, as test_hot_path does: snapshots reloaded after the last change, if any
        client.chat.completions.create(model="gpt-test", messages=HELLO, temperature=0)
    sql, redis_trips = counted_io
    sql.count = redis_trips.count = 0
    requests = 100
    started = time.monotonic()
    for _ in range(requests):
        assert client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO, temperature=0).headers["x-tollgate-cache"] == "hit"
    elapsed = time.monotonic() - started
    background = int(elapsed / 0.5 + 1) * 2 + int(elapsed / 0.2 + 1) + 10  # polls and usage flushes (test_hot_path)
    assert requests <= redis_trips.count <= requests + background, (redis_trips.count, background)
    assert sql.count == 0
