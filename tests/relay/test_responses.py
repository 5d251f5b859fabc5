"""/v1/responses: the official openai SDK's `responses` client through the real relay to the mock upstream
(OpenAI-, Anthropic- and Gemini-format deployments) and to the demo model, governed like chat (README
"OpenAI Responses")."""

import json
import time

import httpx
import openai
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from response_store.models import StoredResponse
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.gateway import drain_usage, wait_for
from tests.relay.test_hot_path import counted_io  # noqa: F401 (a fixture)
from tests.upstream.server import REPLY_WORDS, Canned

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
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1], timeout=30)  # a loaded machine


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
    if model == "gpt-test":
        assert "metadata" not in upstream.requests[-1]["json"]  # echoed in the Response, not sent upstream


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
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(stored.id)
    assert models.responses.retrieve(stored.id).output_text == REPLY  # still there for its own organization
    assert [item.content[0].text for item in models.responses.input_items.list(stored.id)] == ["secret plans"]


def test_input_items_of_a_stored_response_are_listed_and_paged_as_openai_does(models, gateway):
    first = models.responses.create(model="gpt-test", input="My name is Ada.", store=True)
    second = models.responses.create(model="gpt-test", previous_response_id=first.id, store=True, input=[
        {"role": "developer", "content": "Answer in one word."}, {"role": "user", "content": [{"type": "input_text", "text": "My name?"}]}])
    wait_for(lambda: StoredResponse.objects.filter(id=second.id).exists())
    # Newest first by default: this turn's two items, the answer before it, the first turn's question.
    page = models.responses.input_items.list(second.id, limit=2)
    assert [item.type for item in page.data] == ["message", "message"] and page.has_more
    assert [item.content[0].text for item in page.data] == ["My name?", "Answer in one word."]
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id and all(i.id for i in page.data)
    everything = list(models.responses.input_items.list(second.id, limit=2))  # the SDK follows `after` page by page
    assert [item.type for item in everything] == ["message", "message", "message", "reasoning", "message"]  # the mock reasons first
    messages = [item for item in everything if item.type == "message"]
    assert [item.content[0].text for item in messages] == ["My name?", "Answer in one word.", REPLY, "My name is Ada."]
    assert [item.role for item in messages] == ["user", "developer", "assistant", "user"]
    ascending = models.responses.input_items.list(second.id, order="asc", after=everything[-1].id)
    assert [item.id for item in ascending.data] == [item.id for item in everything[::-1][1:]] and not ascending.has_more
    again = models.responses.input_items.list(first.id)
    assert [item.id for item in again.data] == [everything[-1].id]  # an item keeps its id from turn to turn
    with pytest.raises(openai.BadRequestError):
        models.responses.input_items.list(second.id, limit=1000)
    with pytest.raises(openai.BadRequestError):
        models.responses.input_items.list(second.id, after="msg_unknown")
    with pytest.raises(openai.NotFoundError):
        models.responses.input_items.list("resp_missing")


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
    ({"model": "gpt-test", "input": "Hi", "tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0]"),
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


def _chunk(delta, finish=None, usage=None):
    chunk = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1, "model": "canned",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        chunk = {**chunk, "choices": [], "usage": usage}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def _post(models, body, **kwargs):
    return httpx.post(str(models.base_url.join("responses")), json=body, headers={"authorization": f"Bearer {models.api_key}"}, timeout=20, **kwargs)


def test_streamed_reasoning_then_text_then_parallel_calls_from_an_openai_format_upstream(models, gateway, upstream):
    gateway.add_model("gpt-canned", "canned")
    upstream.can("canned", Canned(chunks=(
        _chunk({"role": "assistant", "reasoning_content": "Let me "}), _chunk({"reasoning_content": "think."}),
        _chunk({"content": "Checking both."}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": '}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"Rome"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk({}, usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42, "prompt_tokens_details": {"cached_tokens": 8},
                          "completion_tokens_details": {"reasoning_tokens": 4}}),
        b"data: [DONE]\n\n",
    )))
    with models.responses.stream(model="gpt-canned", input="Weather in Paris and Rome?", tools=TOOLS) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert final.output[0].content[0].text == "Let me think." and final.output_text == "Checking both."
    assert [(item.call_id, json.loads(item.arguments)) for item in final.output[2:]] == [("call_a", {"city": "Paris"}), ("call_b", {"city": "Rome"})]
    assert kinds.count("response.reasoning_text.delta") == 2 and kinds.count("response.function_call_arguments.done") == 2
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.content_part.added")
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (30, 12, 42)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (8, 4)
    event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(model_name="gpt-canned").first())[1], timeout=30)
    assert (event.prompt_tokens, event.cached_tokens, event.completion_tokens, event.usage_source) == (30, 8, 12, "provider")


def test_an_upstream_error_mid_stream_ends_with_error_and_response_failed(models, gateway, upstream):
    gateway.add_model("gpt-canned", "canned")
    upstream.can("canned", Canned(chunks=(_chunk({"role": "assistant", "content": "Partial answer"}),
                                          b'data: {"error": {"message": "The model is overloaded.", "type": "server_error"}}\n\n')))
    response = _post(models, {"model": "gpt-canned", "input": "Hi", "stream": True})
    events = _events(response)
    assert [event["type"] for event in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "The model is overloaded."
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"] == "The model is overloaded."
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    event = ledger_row(response.headers["x-request-id"])
    assert event.endpoint == "responses" and event.status_code == 502 and event.usage_source == "estimated" and event.completion_tokens > 0


def test_a_stream_past_its_output_ceiling_is_cut(models, gateway, upstream):
    gateway.add_model("gpt-flood", "flood")
    upstream.can("flood", Canned(chunks=(_chunk({"role": "assistant", "content": "Go"}),), endless=_chunk({"content": " more words" * 20}),
                                 interval=0.001))
    response = _post(models, {"model": "gpt-flood", "input": "Hi", "stream": True, "max_output_tokens": 10})
    events = _events(response)
    assert [event["type"] for event in events[-2:]] == ["error", "response.failed"] and events[-2]["code"] == "output_limit_exceeded"
    event = ledger_row(response.headers["x-request-id"])
    assert event.error_type == "output_limit_exceeded" and event.completion_tokens <= 10 + 10 // 4 + 16


def test_an_upstream_without_usage_is_billed_from_an_estimate(models, gateway):
    gateway.add_model("gpt-nousage", "nousage")
    raw = models.responses.with_raw_response.create(model="gpt-nousage", input="Hi")
    assert raw.parse().output_text == REPLY
    event = ledger_row(raw.headers["x-request-id"])
    assert event.usage_source == "estimated" and event.completion_tokens >= len(REPLY_WORDS) and event.prompt_tokens > 0
    # The client is sent the figures it is billed on, and told they are an estimate (as count_tokens does).
    usage = raw.parse().usage
    assert raw.headers["x-tollgate-usage"] == "estimate" and usage.model_extra["estimated"] is True
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        event.prompt_tokens, event.completion_tokens, event.prompt_tokens + event.completion_tokens)
    with models.responses.with_streaming_response.create(model="gpt-nousage", input="Hi", stream=True) as streamed:
        request_id = streamed.headers["x-request-id"]
        events = [event for event in streamed.parse()]
    usage = events[-1].response.usage
    assert events[-1].type == "response.completed" and usage.model_extra["estimated"] is True
    event = ledger_row(request_id)
    assert event.usage_source == "estimated" and event.completion_tokens >= len(REPLY_WORDS)
    assert (usage.input_tokens, usage.output_tokens) == (event.prompt_tokens, event.completion_tokens)
    # An upstream that reports usage: no flag, no header.
    exact = models.responses.with_raw_response.create(model="gpt-test", input="Hi")
    assert "x-tollgate-usage" not in exact.headers and "estimated" not in (exact.parse().usage.model_extra or {})


def test_an_incomplete_answer_says_why(models):
    response = models.responses.create(model="claude", input="Hi", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == " ".join(REPLY_WORDS[:3])
    events = list(models.responses.create(model="claude", input="Hi", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_failing_deployment_falls_back_to_another_wire_format(models, gateway, upstream):
    anthropic_credential = key_services.credential_create(actor=gateway.ctx, name="fallback-anthropic", provider="anthropic",
                                                          base_url=upstream.url, api_key="test-key")
    model = key_services.model_create(actor=gateway.ctx, name="mixed")
    primary = key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model="fail-500", weight=1, order=0)
    fallback = key_services.deployment_create(actor=gateway.ctx, model=model, credential=anthropic_credential, upstream_model="echo", weight=0, order=1)
    raw = models.responses.with_raw_response.create(model="mixed", input="Hi")
    assert raw.parse().output_text == REPLY and int(raw.headers["x-tollgate-deployment"]) == fallback.pk
    event = ledger_row(raw.headers["x-request-id"])
    assert event.attempt_trail[0]["deployment"] == primary.pk and event.provider == "anthropic"
    assert (event.endpoint, event.status_code, event.completion_tokens) == ("responses", 200, len(REPLY_WORDS))


def test_a_codex_shaped_turn_streams(models, upstream):
    """The shape of a Codex CLI turn: developer and user messages of input_text parts, a function tool, reasoning
    with a summary, encrypted reasoning asked for, nothing stored, a prompt cache key, streaming."""
    shell = {"type": "function", "name": "shell", "description": "Runs a shell command and returns its output.", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
                                                             "workdir": {"type": "string"}}, "required": ["command"]}}
    body = {"model": "gpt-test", "instructions": "You are Codex, a coding agent.", "stream": True, "store": False,
            "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>sandboxed</permissions>"}]},
                      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>cwd</environment_context>"}]},
                      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]}],
            "tools": [shell], "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"effort": "medium", "summary": "auto"},
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "0199-session"}
    response = _post(models, body)
    assert response.status_code == 200 and _events(response)[-1]["type"] == "response.completed"
    sent = upstream.requests[-1]["json"]
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user", "user"]
    assert sent["messages"][3]["content"] == "list the files" and sent["tools"][0]["function"]["name"] == "shell"
    assert (sent["reasoning_effort"], sent["prompt_cache_key"], sent["parallel_tool_calls"]) == ("medium", "0199-session", False)


def test_idempotent_retry_returns_the_same_response(models, upstream):
    headers = {"Idempotency-Key": "resp-once"}
    first = models.responses.create(model="gpt-test", input="Hi", extra_headers=headers)
    again = models.responses.create(model="gpt-test", input="Hi", extra_headers=headers)
    assert first.id == again.id and len([r for r in upstream.requests if r["path"] == "/v1/chat/completions"]) == 1


def test_expired_responses_are_gone(models, settings):
    from datetime import timedelta

    from django.utils import timezone

    from response_store.services import responses_expire

    stored = models.responses.create(model="gpt-test", input="Hi", store=True)
    row = wait_for(lambda: StoredResponse.objects.filter(id=stored.id).first())
    assert timezone.now() + timedelta(days=29) < row.expires_at <= timezone.now() + timedelta(days=30)  # TOLLGATE_RESPONSES_RETENTION_DAYS
    StoredResponse.objects.filter(id=stored.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(openai.NotFoundError):
        models.responses.retrieve(stored.id)  # past its retention, invisible at once
    assert responses_expire() == 1 and not StoredResponse.objects.filter(id=stored.id).exists()


def test_no_query_or_round_trip_per_stateless_request(models, gateway, counted_io):  # noqa: F811 (the fixture)
    """The hot path's promise (tests/relay/test_hot_path.py) holds on /v1/responses too, when nothing is stored."""
    from django.conf import settings

    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=100_000, tpm_limit=100_000_000)
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1", output_per_m="2")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="1000")
    wait_for(lambda: models.responses.with_raw_response.create(model="gpt-test", input="Hi").headers.get("x-ratelimit-limit-requests"))
    time.sleep(1.2)  # every configuration change reaches the relay
    for _ in range(5):
        models.responses.create(model="gpt-test", input="Hi")
    sql, redis_trips = counted_io
    sql.count = redis_trips.count = 0
    requests = 200
    started = time.monotonic()
    for index in range(requests):
        if index % 2:
            models.responses.create(model="gpt-test", input="Hi")
        else:
            for _ in models.responses.create(model="gpt-test", input="Hi", stream=True):
                pass
    elapsed = time.monotonic() - started
    background = int(elapsed / 0.5 + 1) * 2 + int(elapsed / 0.2 + 1) + 10
    assert redis_trips.count <= background, (redis_trips.count, background)  # one trip per request would pass it by 200
    if settings.REDIS_URL:
        assert sql.count == 0, sql.seen


def test_a_client_disconnect_mid_stream_is_billed_and_replayed_for_its_idempotency_key(models, gateway, upstream):
    upstream.chunk_delay = 0.3
    body = {"model": "gpt-test", "input": "Hi", "stream": True}
    headers = {"authorization": f"Bearer {gateway.secret}", "idempotency-key": "responses-drop"}
    url = str(models.base_url.join("responses"))
    try:
        seen = []
        with httpx.stream("POST", url, json=body, headers=headers, timeout=20) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["type"] == "response.output_text.delta":
                        break  # the client goes away after the first words
        dropped = ledger_row(request_id)
        assert (dropped.endpoint, dropped.status_code, dropped.error_type) == ("responses", 499, "client_disconnected")
        assert dropped.completion_tokens > 0 and dropped.usage_source == "estimated"
        calls = len(upstream.ledger)

        def replayed():
            with httpx.stream("POST", url, json=body, headers=headers, timeout=20) as retry:
                if retry.status_code == 409:  # the first request is still being wound up
                    return None
                assert retry.headers["idempotent-replayed"] == "true"
                return [json.loads(line[6:]) for line in retry.iter_lines() if line.startswith("data: ")]

        events = wait_for(replayed)
        assert events[:len(seen)] == seen
        assert events[-1]["type"] == "error" and events[-1]["code"] == "idempotency_replay_incomplete"
        assert [event["sequence_number"] for event in events] == list(range(len(events)))
        assert len(upstream.ledger) == calls  # no second upstream call
    finally:
        upstream.chunk_delay = 0.0


def test_a_large_body_is_checked_off_the_event_loop_the_same_way(models, upstream):
    """Bodies above relay.bodies.OFFLOAD_BYTES are parsed and checked in a worker process."""
    text = "word " * 20_000  # 100 KB
    response = _post(models, {"model": "gpt-test", "input": text, "max_output_tokens": 5})
    assert response.status_code == 200 and response.json()["status"] in ("completed", "incomplete")
    assert upstream.requests[-1]["json"]["messages"] == [{"role": "user", "content": text}]
    refused = _post(models, {"model": "gpt-test", "input": [{"role": "robot", "content": text}]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input[0].role"


@pytest.mark.parametrize("model, path", [("claude", "/v1/messages"), ("gemini", "/v1beta/models/echo:generateContent")])
def test_reasoning_effort_becomes_the_anthropic_thinking_budget_and_the_gemini_thinking_level(models, upstream, model, path):
    response = models.responses.create(model=model, input="Hi", reasoning={"effort": "high"}, max_output_tokens=30000, temperature=0.5)
    assert response.status == "completed" and response.reasoning.effort == "high"  # echoed
    sent = upstream.requests[-1]
    assert sent["path"] == path and "effort" not in json.dumps(sent["json"])
    if model == "claude":
        assert sent["json"]["thinking"] == {"type": "enabled", "budget_tokens": 24576}
        assert "temperature" not in sent["json"]  # Anthropic refuses a temperature with thinking on
        models.responses.create(model=model, input="Hi", reasoning={"effort": "medium"}, max_output_tokens=2000)
        assert upstream.requests[-1]["json"]["thinking"] == {"type": "enabled", "budget_tokens": 1999}  # below max_tokens
        models.responses.create(model=model, input="Hi", reasoning={"effort": "low"}, max_output_tokens=500, temperature=0.5)
        assert "thinking" not in upstream.requests[-1]["json"] and upstream.requests[-1]["json"]["temperature"] == 0.5  # no room
    else:
        assert sent["json"]["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "high"}
