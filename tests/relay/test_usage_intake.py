"""Upstream usage figures enter the usage record in one place (relay.record.Record.usage), checked and bounded.

A negative count becomes 0, an absurd one is capped, cached tokens never exceed the prompt, and each
correction is flagged on the record (and so in the ledger's usage_flags); figures that needed a correction
are not billed: the request is billed from the offline estimate instead (usage_source "estimated"). A
figure that is not a number raises MalformedUsage, a non-retryable upstream error. Every adapter reads its
figures through the same check.
"""

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from relay.record import MAX_USAGE_TOKENS, Record
from wire.adapters import anthropic, gemini
from wire.adapters.base import Usage
from wire.adapters.openai import PassthroughStream, usage_from_openai
from wire.errors import MalformedUsage, UpstreamError
from wire.sse import SSEEvent

NOT_NUMBERS = ["12", "abc", float("nan"), float("inf"), True, False, {"n": 1}, [1], ""]


ANSWER = "Four score and seven years ago our fathers brought forth on this continent a new nation"
BODY = {"model": "m", "messages": [{"role": "user", "content": "Recite the opening of the Gettysburg address"}]}


def record() -> Record:
    key = SimpleNamespace(id=1, organization_id=1, team_id=None, user_id=None, credit=None)  # a KeySnapshot's fields the record reads
    return Record("req-1", key, None, "chat", False, BODY)


def take(rec: Record, usage: Usage) -> Record:
    asyncio.run(rec.usage(usage, "provider", lambda: ANSWER))
    return rec


def estimated() -> Record:
    rec = record()
    asyncio.run(rec.estimate(ANSWER))
    return rec


def test_negative_counts_are_flagged_and_billed_as_the_estimate():
    rec = take(record(), Usage(prompt_tokens=-5, completion_tokens=-1_000_000, cached_tokens=-1))
    assert rec.usage_flags == "negative:prompt,negative:completion,negative:cached"
    assert rec.as_usage().usage_flags == rec.usage_flags
    expected = estimated()
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, rec.usage_source) == (
        expected.prompt_tokens, expected.completion_tokens, 0, "estimated")
    assert rec.prompt_tokens > 0 and rec.completion_tokens > 0  # never a free request


def test_one_negative_figure_discredits_the_others():
    rec = take(record(), Usage(prompt_tokens=-1, completion_tokens=3_000))
    assert rec.usage_flags == "negative:prompt" and rec.usage_source == "estimated"
    assert rec.completion_tokens == estimated().completion_tokens


def test_absurd_counts_are_capped_flagged_and_billed_as_the_estimate():
    rec = take(record(), Usage(prompt_tokens=2**40, completion_tokens=2**31, cached_tokens=3))
    assert rec.usage_flags == "capped:prompt,capped:completion" and rec.usage_source == "estimated"
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens) == (estimated().prompt_tokens, estimated().completion_tokens, 0)
    assert MAX_USAGE_TOKENS * 2 < 2**31  # even a capped figure would fit the ledger's integer columns


def test_cached_tokens_above_the_prompt_are_flagged_and_estimated():
    rec = take(record(), Usage(prompt_tokens=10, completion_tokens=1, cached_tokens=50))
    assert (rec.cached_tokens, rec.usage_flags, rec.usage_source) == (0, "cached>prompt", "estimated")


def test_plausible_counts_pass_unflagged():
    rec = take(record(), Usage(prompt_tokens=12, completion_tokens=7.0, cached_tokens=2))
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, rec.usage_flags) == (12, 7, 2, "")
    assert rec.usage_source == "provider"


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_a_figure_that_is_not_a_number_raises_malformed_usage(value):
    with pytest.raises(MalformedUsage) as info:
        take(record(), Usage(prompt_tokens=value, completion_tokens=1))
    error = info.value
    assert isinstance(error, UpstreamError) and error.code == "upstream_malformed" and not error.retryable
    assert orjson.loads(error.body())["error"]["code"] == "upstream_malformed"


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_every_adapter_checks_its_figures_as_it_parses_them(value):
    with pytest.raises(MalformedUsage):
        usage_from_openai({"prompt_tokens": 3, "completion_tokens": value})
    with pytest.raises(MalformedUsage):
        usage_from_openai({"prompt_tokens": 3, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": value}})
    with pytest.raises(MalformedUsage):
        anthropic.usage_from({"input_tokens": value, "output_tokens": 1})
    with pytest.raises(MalformedUsage):
        gemini.usage_from({"promptTokenCount": 3, "candidatesTokenCount": value})


def test_a_stream_usage_event_that_is_not_a_number_raises_while_parsed():
    translator = PassthroughStream(include_usage=False)
    event = SSEEvent(None, orjson.dumps({"choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1}}))
    with pytest.raises(MalformedUsage):
        translator.feed(event)


def test_adapters_hand_negative_and_absurd_figures_to_the_record_unchanged():
    rec = take(record(), usage_from_openai({"prompt_tokens": -3, "completion_tokens": 2**40}))
    assert (rec.usage_flags, rec.usage_source) == ("negative:prompt,capped:completion", "estimated")


# --- Through the real relay ----------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_a_non_numeric_usage_answer_is_an_openai_error_not_a_500(gateway, upstream):
    import openai

    upstream.usage_override = {"prompt_tokens": "lots", "completion_tokens": 10}
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert info.value.status_code != 500 and info.value.body["code"] == "upstream_malformed"


def test_a_non_numeric_usage_event_ends_a_stream_with_an_error_event(gateway, upstream):
    import httpx

    upstream.usage_override = {"prompt_tokens": 3, "completion_tokens": {"n": 10}}
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=20,
                      headers={"Authorization": f"Bearer {gateway.secret}"}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    events = [orjson.loads(line[6:]) for line in lines if line != "data: [DONE]"]
    errors = [event["error"] for event in events if "error" in event]
    assert [e["code"] for e in errors] == ["upstream_malformed"]
