"""wire.inbound.responses on its own: Responses <-> chat, whole and streamed, and the checks (no server)."""

import json

import pytest
from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from wire.errors import InvalidRequest
from wire.inbound.responses import (
    HISTORY,
    Envelope,
    EventStream,
    check_body,
    from_chat,
    to_chat,
    usage_of,
)


def test_items_become_chat_messages_with_tool_calls_in_one_assistant_turn():
    previous_output = [
        {"id": "rs_1", "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "hmm"}]},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city":"Paris"}', "status": "completed"},
        {"id": "fc_2", "type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city":"Rome"}', "status": "completed"},
    ]
    body = {"model": "m", "instructions": "Be brief.", HISTORY: [{"type": "message", "role": "user", "content": "Weather?"}, *previous_output],
            "input": [{"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
                      {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "rain"}]},
                      {"role": "developer", "content": "Answer in one line."}],
            "max_output_tokens": 20, "tool_choice": "required", "text": {"format": {"type": "json_object"}, "verbosity": "low"}}
    chat = to_chat(body, tokens_field="max_tokens")
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "rain"},
        {"role": "system", "content": "Answer in one line."},
    ]
    assert chat["max_tokens"] == 20 and chat["tool_choice"] == "required"
    assert chat["response_format"] == {"type": "json_object"} and chat["verbosity"] == "low"
    assert "max_completion_tokens" in to_chat(body) and HISTORY not in chat and "input" not in chat


def test_a_whole_answer_becomes_a_response():
    chat = {"choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "Partial", "refusal": "I can't", "reasoning_content": "thinking",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 3},
                  "completion_tokens_details": {"reasoning_tokens": 2}}}
    envelope = Envelope({"model": "m", "input": "Hi", "metadata": {"a": "b"}, "store": True, "previous_response_id": "resp_0"}, "public")
    response = from_chat(chat, envelope)
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "function_call"]
    assert response["output"][1]["content"] == [{"type": "output_text", "text": "Partial", "annotations": [], "logprobs": []},
                                               {"type": "refusal", "refusal": "I can't"}]
    assert response["output"][2]["call_id"] == "call_1"
    assert (response["status"], response["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert response["usage"] == {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                                 "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 12}
    assert (response["model"], response["metadata"], response["store"], response["previous_response_id"]) == ("public", {"a": "b"}, True, "resp_0")
    assert usage_of(None) is None and usage_of({"prompt_tokens": -1, "completion_tokens": "x"})["total_tokens"] == 0


def _parse(encoded: list[bytes]) -> list:
    events = []
    for chunk in encoded:
        for block in chunk.decode().strip().split("\n\n"):
            data = block.split("data: ", 1)[1]
            events.append(construct_type(type_=ResponseStreamEvent, value=json.loads(data)))
    return events


def test_stream_parts_switch_and_the_sdk_accumulates_them():
    stream = EventStream(Envelope({"model": "m", "input": "Hi"}, "m"))
    encoded = []
    for delta in ({"role": "assistant", "content": "Hel"}, {"content": "lo"}, {"refusal": "No."}, {"content": "Bye"}):
        encoded += stream.feed({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    encoded += stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    encoded += stream.finish({"input_tokens": 1, "output_tokens": 2, "total_tokens": 3,
                              "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}})
    events = _parse(encoded)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    state = ResponseStreamState(input_tools=[], text_format=omit)
    for event in events:
        state.handle_event(event)
    message = stream.final["output"][0]
    assert [part["type"] for part in message["content"]] == ["output_text", "refusal", "output_text"]
    assert [part.get("text") or part.get("refusal") for part in message["content"]] == ["Hello", "No.", "Bye"]
    added = [e.content_index for e in events if e.type == "response.content_part.added"]
    assert added == [0, 1, 2] and events[-1].type == "response.completed" and events[-1].response.usage.total_tokens == 3


def test_a_failure_before_any_output_still_starts_the_response():
    stream = EventStream(Envelope({"model": "m", "input": "Hi"}, "m"))
    events = _parse([stream.fail("upstream_error", "Upstream error (HTTP 500).")])
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.message == "Upstream error (HTTP 500)."


ODD_VALUES = [None, True, 0, -1, 1.5, "", "x", [], [{}], {}, {"type": {}}, [[]], {"a": []}]
FIELDS = ["model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p", "reasoning",
          "text", "metadata", "parallel_tool_calls", "user", "stream", "store", "previous_response_id", "include"]


@pytest.mark.parametrize("field", FIELDS)
def test_any_odd_value_is_a_clear_400_or_accepted_never_a_crash(field):
    for value in ODD_VALUES:
        for body in ({"model": "m", "input": "Hi", field: value},
                     {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}], field: value},
                     {"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", field: value}]}):
            try:
                check_body(body)
            except InvalidRequest as error:
                assert error.status == 400 and error.message
                continue
            to_chat(body)  # what passed the checks translates
