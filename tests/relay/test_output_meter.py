"""The pieces under the stream bounds and the public model name: the output meter and the byte-level
rewrite of `model` (the end-to-end behaviour is in test_upstream_answers.py)."""

import asyncio

import orjson

from relay.streaming import OutputMeter, output_ceiling
from wire import tokens
from wire.adapters.openai import PassthroughStream, rewrite_model
from wire.sse import SSEEvent, encode_chunk


def event(text: str) -> bytes:
    return encode_chunk({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})


def test_the_ceiling_is_the_allowance_plus_a_quarter_plus_16():
    assert [output_ceiling(n) for n in (0, 10, 100, 4096)] == [16, 28, 141, 5136]


def test_the_meter_lets_through_exactly_what_fits_and_counts_real_tokens():
    meter = OutputMeter(output_ceiling(10))
    words = [event(" hello")] * 40  # one token each
    taken = 0
    for batch in (words[i : i + 4] for i in range(0, 40, 4)):
        allowed = len(batch) if meter.fits(batch) else asyncio.run(meter.take(batch))
        taken += allowed
        if allowed < len(batch):
            break
    assert taken == output_ceiling(10)  # 28 one-token words, not one more
    assert tokens.count_text(" hello" * taken) == taken


def test_the_cheap_check_needs_no_parsing_far_from_the_ceiling():
    meter = OutputMeter(output_ceiling(4096))
    assert all(meter.fits([event(" word")]) for _ in range(20))
    assert meter.counted == 0  # no tokenizer call


def test_a_single_huge_chunk_is_refused_whole():
    meter = OutputMeter(output_ceiling(10))
    huge = event("lorem ipsum " * 1000)
    assert not meter.fits([huge]) and asyncio.run(meter.take([huge])) == 0


def test_rewrite_model_handles_spacing_escapes_and_lookalikes():
    quoted = orjson.dumps("public")
    assert rewrite_model(b'{"id":"x","model":"up-1","choices":[]}', quoted) == b'{"id":"x","model":"public","choices":[]}'
    assert rewrite_model(b'{"model" : "up \\" \\\\","x":1}', quoted) == b'{"model" : "public","x":1}'
    # content that mentions "model" is escaped inside its string, so it is never taken for the key
    body = b'{"choices":[{"delta":{"content":"the \\"model\\": \\"x\\""}}],"model":"up"}'
    assert rewrite_model(body, quoted) == b'{"choices":[{"delta":{"content":"the \\"model\\": \\"x\\""}}],"model":"public"}'
    assert rewrite_model(b'{"id":"x"}', quoted) == b'{"id":"x"}'


def test_the_passthrough_learns_the_upstream_name_once_and_keeps_the_rest_intact():
    stream = PassthroughStream(include_usage=False, model="public")
    first = stream.feed(SSEEvent(None, b'{"id":"s1","model":"gpt-4o-2024","choices":[{"delta":{"content":"a"}}]}'))
    second = stream.feed(SSEEvent(None, b'{"id":"s1","model":"gpt-4o-2024","choices":[{"delta":{"content":"gpt-4o-2024"}}]}'))
    assert first == [b'data: {"id":"s1","model":"public","choices":[{"delta":{"content":"a"}}]}\n\n']
    assert second == [b'data: {"id":"s1","model":"public","choices":[{"delta":{"content":"gpt-4o-2024"}}]}\n\n']
    assert stream.stream_id == "s1"
