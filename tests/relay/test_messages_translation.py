"""Messages <-> chat, the pure mapping (wire/inbound/messages.py), pair by pair: request pieces, whole
answers, and the stream of events from chat chunks (README "Anthropic Messages")."""

import json

import orjson
import pytest

from wire.adapters.base import Target, Usage
from wire.errors import InvalidRequest
from wire.inbound.messages import MessagesStream, from_chat, to_chat

OPENAI = Target(1, "openai", "openai", "https://api.openai.com/v1", "k", "gpt-4.1")
COMPATIBLE = Target(2, "custom", "openai", "http://x/v1", "k", "qwen")
DEEPSEEK = Target(3, "deepseek", "openai", "https://api.deepseek.com/v1", "k", "deepseek-v4-pro")
GEMINI = Target(4, "gemini", "gemini", "https://g/v1beta", "k", "gemini-2.5-pro")
TOOLS = [{"name": "get_weather", "description": "Weather in a city", "cache_control": {"type": "ephemeral"},
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def test_text_system_blocks_and_parameters():
    body = {"model": "up", "max_tokens": 50, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                                                       {"type": "text", "text": "Be kind."}],
            "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.3, "top_p": 0.9, "top_k": 5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}}
    assert to_chat(body, COMPATIBLE, stream=False) == {
        "model": "up", "messages": [{"role": "system", "content": "Be brief.\n\nBe kind."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 50, "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "user": "u-1"}  # top_k and cache_control dropped
    chat = to_chat(body, OPENAI, stream=True)
    assert chat["max_completion_tokens"] == 50 and "max_tokens" not in chat and chat["stream"] is True
    assert to_chat(body, GEMINI, stream=False)["top_k"] == 5  # the Gemini adapter maps it to topK


def test_images_base64_and_url_and_documents():
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
               {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
               {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}, "title": "a.pdf"}]
    chat = to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}, OPENAI, False)
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}}]}]


def test_tool_use_and_results_become_tool_calls_and_tool_messages():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "two calls", "signature": "sig"},
                                          {"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                                          {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                                     {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                                      "content": [{"type": "text", "text": "timeout"}]},
                                     {"type": "text", "text": "Thanks"}]},
    ]
    chat = to_chat({"model": "m", "max_tokens": 5, "messages": messages, "tools": TOOLS,
                    "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}, COMPATIBLE, False)
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"},
        {"role": "user", "content": "Thanks"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                               "parameters": TOOLS[0]["input_schema"]}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice(choice, expected):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    assert to_chat(body, COMPATIBLE, False)["tool_choice"] == expected


@pytest.mark.parametrize("target, budget, effort", [
    (DEEPSEEK, 1024, "low"), (DEEPSEEK, 8000, "medium"), (DEEPSEEK, 31999, "high"),
    (Target(5, "openai", "openai", "u", "k", "o4-mini"), 31999, "high"), (OPENAI, 31999, None), (COMPATIBLE, 31999, None),
    (GEMINI, 31999, None),
])
def test_thinking_becomes_reasoning_effort_where_the_provider_has_it(target, budget, effort):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert to_chat(body, target, False).get("reasoning_effort") == effort


@pytest.mark.parametrize("content, param", [
    ([{"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}}], "messages.0.content.0"),
    ([{"type": "image", "source": {"type": "file", "file_id": "f"}}], "messages.0.content.0.source"),
    ([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}], "messages.0.content.0.content.0"),
])
def test_what_cannot_be_translated_is_a_clear_400(content, param):
    with pytest.raises(InvalidRequest) as caught:
        to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}, COMPATIBLE, False)
    assert caught.value.param == param
    with pytest.raises(InvalidRequest):
        to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                 "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, COMPATIBLE, False)


def test_a_whole_answer_with_reasoning_text_and_tool_calls():
    answer = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me check.", "reasoning_content": "The user wants weather.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}]}
    message = from_chat(answer, Usage(prompt_tokens=100, completion_tokens=20, cached_tokens=60), "claude")
    assert message["id"].startswith("msg_") and message["model"] == "claude" and message["type"] == "message"
    assert message["content"] == [{"type": "thinking", "thinking": "The user wants weather.", "signature": ""},
                                  {"type": "text", "text": "Let me check."},
                                  {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("tool_use", None)
    assert message["usage"] == {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 20}


@pytest.mark.parametrize("finish, matched, reason, sequence", [
    ("stop", None, "end_turn", None), ("length", None, "max_tokens", None), ("tool_calls", None, "tool_use", None),
    ("content_filter", None, "refusal", None), ("stop", "END", "stop_sequence", "END"), ("stop", 2, "end_turn", None),
])
def test_stop_reasons(finish, matched, reason, sequence):
    answer = {"choices": [{"finish_reason": finish, "stop_reason": matched, "message": {"content": "x"}}]}
    message = from_chat(answer, None, "m", ["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == (reason, sequence)


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for item in raw:
        head, data = item.decode().split("\n", 1)
        payload = json.loads(data.removeprefix("data: "))
        assert head == "event: " + payload["type"]
        out.append((payload["type"], payload))
    return out


def test_the_stream_opens_one_block_at_a_time_and_ends_with_usage():
    stream = MessagesStream("claude", ["END"])
    chunks = [{"choices": [{"delta": {"role": "assistant", "reasoning_content": "Hmm"}}]},
              {"choices": [{"delta": {"reasoning_content": " ok"}}]},
              {"choices": [{"delta": {"content": "Hi"}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}}]},
              {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
              {"choices": [], "usage": {"prompt_tokens": 9}}]
    raw = [event for chunk in chunks for event in stream.feed(chunk)] + stream.finish(Usage(9, 7, 4))
    events = _events(raw)
    assert [kind for kind, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    starts = [payload for kind, payload in events if kind == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    assert starts[2]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    deltas = [payload["delta"] for kind, payload in events if kind == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "Hmm"} and deltas[2] == {"type": "text_delta", "text": "Hi"}
    assert deltas[3] == {"type": "input_json_delta", "partial_json": '{"a":'}
    assert events[0][1]["message"]["usage"]["output_tokens"] == 0  # a placeholder: chat reports usage at the end
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 7}}


def test_an_empty_stream_still_has_a_whole_envelope():
    events = _events(MessagesStream("m").finish(None))
    assert [kind for kind, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[2][1]["delta"]["stop_reason"] == "end_turn"
    assert orjson.loads(orjson.dumps(events[2][1]["usage"]))["output_tokens"] == 0


def test_an_azure_deployment_gets_the_translated_body_at_its_own_url():
    from relay.messages import Translated
    from wire.adapters import get_adapter

    target = Target(6, "azure", "azure", "https://contoso.openai.azure.com", "azure-secret", "gpt-4o-prod")
    body = {"model": "gpt-4o-prod", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}
    request = Translated(get_adapter("azure")).build_request(endpoint="messages", body=body, target=target, stream=True)
    assert request.url == "https://contoso.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-secret"
    assert orjson.loads(request.body) == {"model": "gpt-4o-prod", "messages": [{"role": "user", "content": "Hi"}],
                                          "max_completion_tokens": 20, "stream": True, "stream_options": {"include_usage": True}}


@pytest.mark.parametrize("target, replayed", [(DEEPSEEK, True), (Target(7, "moonshot-ai", "openai", "u", "k", "kimi-k3"), True),
                                              (OPENAI, False), (COMPATIBLE, False)])
def test_earlier_thinking_is_replayed_as_reasoning_content_where_the_provider_wants_it(target, replayed):
    messages = [{"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "Plan.", "signature": ""},
                                                  {"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "ok"}]}]
    assistant = to_chat({"model": "m", "max_tokens": 5, "messages": messages}, target, False)["messages"][1]
    assert assistant.get("reasoning_content") == ("Plan." if replayed else None) and assistant["tool_calls"][0]["id"] == "c1"
