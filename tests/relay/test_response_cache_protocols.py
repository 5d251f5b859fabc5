"""README "Response cache" on /v1/messages and /v1/responses: the official anthropic and openai SDKs against
the relay, each hit answered in the protocol it was asked in (whole, or as that protocol's own event
stream), at no cost, with no upstream call, never across organizations; stateful Responses never cached."""

import anthropic
import pytest

from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import services as billing_services
from keys import services as key_services
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.gateway import wait_for
from tests.relay.test_response_cache import cache_on, ledger_row, upstream_calls
from tests.upstream.server import REPLY_WORDS

REPLY = " ".join(REPLY_WORDS)
ASK = [{"role": "user", "content": "Hello cache"}]
T0 = {"extra_body": {"temperature": 0}}  # anthropic 2.10 has no `temperature` argument (newer Claude models refuse it)


@pytest.fixture
def claude(gateway, upstream):
    """`claude` (an Anthropic-format deployment: Messages pass through), `gpt-test` (OpenAI format: Messages
    translated), both priced, the key opted in; an anthropic SDK client for the relay."""
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    gateway.add_model("claude", "echo", credential=credential)
    for provider in ("anthropic", "custom"):
        billing_services.price_create(actor=gateway.ctx, provider=provider, upstream_model="echo", currency="USD",
                                      input_per_m="1000", output_per_m="2000")
    cache_on(gateway)
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.secret, max_retries=0, timeout=20)


def hit_once(call, upstream):
    """Calls until the entry is in (the write lands after the response), then once more, counting the
    upstream's calls around it: that hit provably reached no upstream."""
    wait_for(lambda: call()[0] == "hit")
    calls = upstream_calls(upstream)
    state, answer = call()
    assert state == "hit" and upstream_calls(upstream) == calls
    return answer


def assert_free_hit(first_id, hit_id):
    original, hit = ledger_row(first_id), ledger_row(hit_id)
    assert not original.cache_hit and original.cost_display > 0
    assert hit.cache_hit and hit.cost == 0 and hit.cost_display == 0 and hit.status_code == 200
    assert hit.would_have_cost == original.cost_display
    assert (hit.prompt_tokens, hit.completion_tokens) == (original.prompt_tokens, original.completion_tokens) != (0, 0)


@pytest.mark.parametrize("model", ["claude", "gpt-test"])  # passed through, translated
def test_messages_create_second_identical_call_is_a_free_hit(claude, upstream, model):
    first = claude.messages.with_raw_response.create(model=model, max_tokens=50, messages=ASK, **T0, metadata={"user_id": "u-1"})
    assert first.headers["x-tollgate-cache"] == "miss"

    def again():  # another metadata.user_id: who asks does not change the answer
        raw = claude.messages.with_raw_response.create(model=model, max_tokens=50, messages=ASK, **T0, metadata={"user_id": "u-2"})
        return raw.headers["x-tollgate-cache"], raw

    hit = hit_once(again, upstream)
    assert hit.parse().model_dump() == first.parse().model_dump()  # the same Message, id included
    assert [block.text for block in hit.parse().content if block.type == "text"] == [REPLY]
    assert_free_hit(first.headers["x-request-id"], hit.headers["x-request-id"])


@pytest.mark.parametrize("model", ["claude", "gpt-test"])
def test_messages_stream_is_replayed_as_anthropic_events(claude, upstream, model):
    def streamed():
        with claude.messages.stream(model=model, max_tokens=50, messages=ASK, **T0) as stream:
            events = [event.type for event in stream]
            return stream.response.headers["x-tollgate-cache"], stream.get_final_message(), events, stream.response.headers["x-request-id"]

    state, first, _events, first_id = streamed()
    assert state == "miss" and [b.text for b in first.content if b.type == "text"] == [REPLY]
    wait_for(lambda: streamed()[0] == "hit")
    calls = upstream_calls(upstream)
    state, replayed, events, hit_id = streamed()
    assert state == "hit" and upstream_calls(upstream) == calls
    assert replayed.model_dump() == first.model_dump()
    assert events[0] == "message_start" and events[-1] == "message_stop" and "content_block_delta" in events
    assert_free_hit(first_id, hit_id)
    # The same entry answers the whole request, as a Message.
    whole = claude.messages.with_raw_response.create(model=model, max_tokens=50, messages=ASK, **T0)
    assert whole.headers["x-tollgate-cache"] == "hit" and whole.parse().model_dump() == first.model_dump()
    assert upstream_calls(upstream) == calls


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
def test_responses_create_second_identical_call_is_a_free_hit(claude, gateway, upstream, model):
    client = gateway.client()
    first = client.responses.with_raw_response.create(model=model, input="Hello cache", temperature=0, metadata={"run": "1"}, user="a")
    assert first.headers["x-tollgate-cache"] == "miss"

    def again():  # other metadata and user: echoed, not part of the fingerprint
        raw = client.responses.with_raw_response.create(model=model, input="Hello cache", temperature=0, metadata={"run": "2"}, user="b")
        return raw.headers["x-tollgate-cache"], raw

    hit = hit_once(again, upstream)
    replayed, original = hit.parse(), first.parse()
    assert replayed.metadata == {"run": "2"} and replayed.user == "b"  # this request's own
    assert replayed.model_dump(exclude={"metadata", "user"}) == original.model_dump(exclude={"metadata", "user"})
    assert replayed.output_text == REPLY
    assert_free_hit(first.headers["x-request-id"], hit.headers["x-request-id"])


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
def test_responses_stream_is_replayed_as_typed_events(claude, gateway, upstream, model):
    client = gateway.client()

    def streamed():
        with client.responses.stream(model=model, input="Hello cache", temperature=0) as stream:
            events = list(stream)
            headers = stream._raw_stream.response.headers  # the SDK's ResponseStream exposes no headers of its own
            return headers["x-tollgate-cache"], stream.get_final_response(), events, headers["x-request-id"]

    state, first, _events, first_id = streamed()
    assert state == "miss" and first.output_text == REPLY
    wait_for(lambda: streamed()[0] == "hit")
    calls = upstream_calls(upstream)
    state, replayed, events, hit_id = streamed()
    assert state == "hit" and upstream_calls(upstream) == calls
    assert replayed.model_dump() == first.model_dump()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    assert_free_hit(first_id, hit_id)
    whole = client.responses.with_raw_response.create(model=model, input="Hello cache", temperature=0)
    assert whole.headers["x-tollgate-cache"] == "hit"
    assert (whole.parse().id, whole.parse().output_text, whole.parse().usage) == (first.id, REPLY, first.usage)  # (the stream's adds `parsed`)
    assert upstream_calls(upstream) == calls


@pytest.mark.parametrize("stateful", [{"store": True}, {"previous_response_id": "stored"}])
def test_stateful_responses_are_never_cached(claude, gateway, upstream, stateful):
    client = gateway.client()
    if "previous_response_id" in stateful:
        stateful = {"previous_response_id": client.responses.create(model="gpt-test", input="First", store=True).id}
    answers = [client.responses.with_raw_response.create(model="gpt-test", input="Hello cache", temperature=0, **stateful) for _ in range(3)]
    assert all("x-tollgate-cache" not in a.headers for a in answers)
    assert len({a.parse().id for a in answers}) == 3


def test_messages_tool_use_is_cached_only_when_allowed(claude, gateway, upstream):
    tools = [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}]
    ask = [{"role": "user", "content": "please use tool"}]
    for _ in range(2):
        raw = claude.messages.with_raw_response.create(model="gpt-test", max_tokens=50, messages=ask, tools=tools, **T0)
        assert raw.headers["x-tollgate-cache"] == "miss" and raw.parse().stop_reason == "tool_use"
    assert upstream_calls(upstream) == 2
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, cache_tool_calls=True)

    def again():
        raw = claude.messages.with_raw_response.create(model="gpt-test", max_tokens=50, messages=ask, tools=tools, **T0)
        return raw.headers["x-tollgate-cache"], raw

    assert hit_once(again, upstream).parse().content[-1].name == "weather"


@pytest.mark.parametrize("endpoint", ["messages", "responses"])
def test_never_shared_across_organizations(claude, gateway, upstream, endpoint):
    def ask(secret):
        if endpoint == "messages":
            client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=secret, max_retries=0, timeout=20)
            return client.messages.with_raw_response.create(model="gpt-test", max_tokens=50, messages=ASK, **T0).headers["x-tollgate-cache"]
        return gateway.client(secret).responses.with_raw_response.create(model="gpt-test", input="Hello cache", temperature=0).headers["x-tollgate-cache"]

    ask(gateway.secret)
    wait_for(lambda: ask(gateway.secret) == "hit")
    org = OrganizationFactory()
    ctx = OrgContext(organization=org, role=Role.OWNER, user=MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory()).user)
    credential = key_services.credential_create(actor=ctx, name="mock", provider="custom", base_url=upstream.url + "/v1", api_key="test-key")
    model = key_services.model_create(actor=ctx, name="gpt-test")
    key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="echo")
    _key, secret = key_services.virtual_key_create(actor=ctx, name="other", response_cache=True)
    calls = upstream_calls(upstream)
    assert ask(secret) == "miss"
    assert upstream_calls(upstream) == calls + 1
