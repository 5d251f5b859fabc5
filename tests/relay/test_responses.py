"""/v1/responses: the official openai SDK's `responses` client through the real relay to the mock upstream
(OpenAI-, Anthropic- and Gemini-format deployments) and to the demo model, governed like chat (README
"OpenAI Responses")."""

import json

import httpx
import openai
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from response_store.models import StoredResponse
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.gateway import drain_usage, wait_for
from tests.upstream.server import REPLY_WORDS

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
REPLY = " ".join(REPLY_WORDS)


@pytest.fixture
def models(gateway, upstream):
    """gpt-test (OpenAI format, from the gateway fixture), claude (Anthropic format), gemini (Gemini format)."""
    anthropic_credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                          base_url=upstream.url, api_key="test-key")
    gateway.add_model("claude", "echo", credential=anthropic_credential)
    gemini_credential = key_services.credential_create(actor=gateway.ctx, name="mock-gemini", provider="gemini",
                                                       base_url=upstream.url + "/v1beta", api_key="test-key")
    gateway.add_model("gemini", "echo", credential=gemini_credential)
    return gateway.client()


def ledger_row(request_id):
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])


@pytest.mark.parametrize("model", ["gpt-test", "claude", "gemini"])
def test_plain_response_through_every_wire_format_is_metered(models, upstream, model):
    raw = models.responses.with_raw_response.create(model=model, input="Hi there", instructions="Be brief.", max_output_tokens=50,
                                                    temperature=0.5, metadata={"team": "a"}, user="u-1")
    response = raw.parse()
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text == REPLY and response.model == model
    assert response.metadata == {"team": "a"} and response.instructions == "Be brief." and response.max_output_tokens == 50
    served = upstream.ledger[-1]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (served.prompt_tokens, len(REPLY_WORDS))
    assert response.usage.total_tokens == served.prompt_tokens + len(REPLY_WORDS)
    event = ledger_row(raw.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.usage_source, event.stream) == ("responses", 200, "provider", False)
    assert (event.prompt_tokens, event.completion_tokens) == (served.prompt_tokens, len(REPLY_WORDS))
    assert event.cached_tokens == response.usage.input_tokens_details.cached_tokens


def test_the_request_becomes_chat_for_an_openai_format_upstream(models, upstream):
    models.responses.create(
        model="gpt-test", instructions="Be brief.", max_output_tokens=40, top_p=0.9, parallel_tool_calls=False, user="u-1",
        reasoning={"effort": "low"}, tools=TOOLS, tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object", "properties": {"api_key": {"type": "string"}}}, "strict": True}},
        input=[{"role": "developer", "content": "Answer in JSON."},
               {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                             {"type": "input_image", "image_url": "https://example.test/cat.png", "detail": "low"}]}],
    )
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["json"] == {
        "model": "echo", "max_tokens": 40, "top_p": 0.9, "parallel_tool_calls": False, "user": "u-1", "reasoning_effort": "low",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "system", "content": "Answer in JSON."},
                     {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                  {"type": "image_url", "image_url": {"url": "https://example.test/cat.png", "detail": "low"}}]}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": TOOLS[0]["parameters"]}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": True,
                                                                   "schema": {"type": "object", "properties": {"api_key": {"type": "string"}}}}},
    }


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
def test_function_tool_round_trip(models, model):
    first = models.responses.create(model=model, input="please use tool for Paris", tools=TOOLS, max_output_tokens=50)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    second = models.responses.create(model=model, tools=TOOLS, max_output_tokens=50, input=[
        {"role": "user", "content": "please use tool for Paris"},
        *[item.model_dump(exclude_none=True) for item in first.output if item.type != "reasoning"],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ])
    assert second.status == "completed" and second.output_text == REPLY


def test_stream_events_in_order_and_sdk_helpers_parse_them(models, upstream):
    with httpx.stream("POST", str(models.base_url.join("responses")), timeout=20, headers={"authorization": f"Bearer {models.api_key}"},
                      json={"model": "gpt-test", "input": "Hi", "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        body = response.read().decode()
        request_id = response.headers["x-request-id"]
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    kinds = [event["type"] for event in events]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert kinds[:2] == ["response.created", "response.in_progress"]
    # The mock's reasoning_content is sent only whole: a message item, its text deltas, then done and completed.
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[4:4 + len(REPLY_WORDS)] == ["response.output_text.delta"] * len(REPLY_WORDS)
    assert kinds[4 + len(REPLY_WORDS):] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                                            "response.completed"]
    assert "[DONE]" not in body
    completed = events[-1]["response"]
    served = upstream.ledger[-1]
    assert completed["usage"]["input_tokens"] == served.prompt_tokens and completed["usage"]["output_tokens"] == len(REPLY_WORDS)
    assert completed["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert completed["usage"]["output_tokens_details"]["reasoning_tokens"] == 0
    event = ledger_row(request_id)
    assert (event.endpoint, event.stream, event.status_code, event.usage_source) == ("responses", True, 200, "provider")
    assert (event.prompt_tokens, event.completion_tokens) == (served.prompt_tokens, len(REPLY_WORDS))

    # The SDK's raw stream and its stream helper.
    texts = [e.delta for e in models.responses.create(model="gpt-test", input="Hi", stream=True) if e.type == "response.output_text.delta"]
    assert "".join(texts) == REPLY
    with models.responses.stream(model="gpt-test", input="Hi") as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert streamed == REPLY and final.output_text == REPLY and final.usage.output_tokens == len(REPLY_WORDS)


def test_a_streamed_function_call_from_an_anthropic_upstream(models):
    with models.responses.stream(model="claude", input="please use tool for Paris", tools=TOOLS, max_output_tokens=50) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert kinds.index("response.output_text.done") < kinds.index("response.function_call_arguments.delta")
    assert kinds[-1] == "response.completed" and final.usage.output_tokens == len(REPLY_WORDS)


def test_demo_model_answers_responses_locally(gateway):
    credential = key_services.credential_create(actor=gateway.ctx, name="demo", provider="mock")
    gateway.add_model("demo", "tollgate-demo", credential=credential)
    client = gateway.client()
    response = client.responses.create(model="demo", input="ping")
    assert response.output_text.endswith("You said: ping") and response.usage.output_tokens > 0
    with client.responses.stream(model="demo", input="ping") as stream:
        assert stream.get_final_response().output_text == response.output_text


def test_store_and_previous_response_id_continue_a_conversation(models, upstream):
    first = models.responses.create(model="gpt-test", input="My name is Ada.", store=True)
    second = models.responses.create(model="gpt-test", input="What is my name?", previous_response_id=first.id, store=True)
    sent = upstream.requests[-1]["json"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada." and sent[1]["content"] == REPLY and sent[2]["content"] == "What is my name?"
    assert second.previous_response_id == first.id
    # A third turn carries both before it, streamed this time.
    with models.responses.stream(model="gpt-test", input="And again?", previous_response_id=second.id) as stream:
        stream.get_final_response()
    assert [m["content"] for m in upstream.requests[-1]["json"]["messages"]][::2] == ["My name is Ada.", "What is my name?", "And again?"]
    fetched = models.responses.retrieve(second.id)
    assert fetched.id == second.id and fetched.output_text == REPLY
    models.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        models.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError) as caught:
        models.responses.create(model="gpt-test", input="Hi", previous_response_id=second.id)
    assert caught.value.body["param"] == "previous_response_id"


def test_stateless_by_default(models):
    response = models.responses.create(model="gpt-test", input="Hi")
    with pytest.raises(openai.NotFoundError):
        models.responses.retrieve(response.id)
    assert not StoredResponse.objects.filter(id=response.id).exists()


def test_stored_responses_are_never_visible_to_another_organization(models, gateway):
    stored = models.responses.create(model="gpt-test", input="secret plans", store=True)
    wait_for(lambda: StoredResponse.objects.filter(id=stored.id).exists())
    other_org = OrganizationFactory()
    from accounts.models import Role
    from accounts.tenancy import OrgContext

    owner = MembershipFactory(organization=other_org, role=Role.OWNER, user=UserFactory()).user
    ctx = OrgContext(organization=other_org, role=Role.OWNER, user=owner)
    credential = key_services.credential_create(actor=ctx, name="o", provider="custom", base_url=gateway.credential.base_url, api_key="test-key")
    model = key_services.model_create(actor=ctx, name="gpt-test")
    key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="echo")
    other = gateway.client(secret=key_services.virtual_key_create(actor=ctx, name="k", user=owner)[1])
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(stored.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-test", input="tell me", previous_response_id=stored.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(stored.id)
    assert models.responses.retrieve(stored.id).output_text == REPLY  # still there for its own organization


def test_a_hard_budget_refuses_before_forwarding(models, gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1000", output_per_m="1000")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.001", period="month")
    gateway.key.refresh_from_db()
    upstream.reset()
    with pytest.raises(openai.RateLimitError) as caught:
        models.responses.create(model="gpt-test", input="Hi", max_output_tokens=4000)
    assert caught.value.body["code"] == "budget_exceeded"
    assert not upstream.ledger  # nothing was forwarded
    event = ledger_row(caught.value.response.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.error_type) == ("responses", 429, "budget_exceeded")


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-test"}, "input"),
    ({"model": "gpt-test", "input": []}, "input"),
    ({"model": "gpt-test", "input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "gpt-test", "input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"model": "gpt-test", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": "gpt-test", "input": [{"role": "robot", "content": "Hi"}]}, "input[0].role"),
    ({"model": "gpt-test", "input": "Hi", "bogus": 1}, "bogus"),
    ({"model": "gpt-test", "input": "Hi", "text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"model": "gpt-test", "input": "Hi", "background": True}, "background"),
    ({"model": "gpt-test", "input": "Hi", "metadata": {"base_url": "http://evil.test"}}, None),
])
def test_bad_input_gets_a_400_in_openai_error_json(models, upstream, body, param):
    upstream.reset()
    response = httpx.post(str(models.base_url.join("responses")), json=body, headers={"authorization": f"Bearer {models.api_key}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param
    assert not upstream.requests


def test_errors_and_methods(models, gateway):
    with pytest.raises(openai.NotFoundError):
        models.responses.create(model="nope", input="Hi")
    with pytest.raises(openai.AuthenticationError):
        gateway.client(secret="tg-wrong").responses.create(model="gpt-test", input="Hi")
    response = httpx.post(str(models.base_url.join("responses")), content=b"{not json", headers={"authorization": f"Bearer {models.api_key}"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.get(str(models.base_url.join("responses")), headers={"authorization": f"Bearer {models.api_key}"})
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    response = httpx.put(str(models.base_url.join("responses/resp_x")), headers={"authorization": f"Bearer {models.api_key}"})
    assert response.status_code == 405
    assert httpx.get(str(models.base_url.join("responses/resp_x"))).status_code == 401
