"""The adapter's optional transport hook (wire.adapters.base.LocalTransport): an in-process answer is read
by relay.upstream exactly as an HTTP one, size cap included (the end-to-end demo answers are in
test_messages.py, test_responses.py and test_sandbox_keys.py)."""

import asyncio

import orjson
import pytest

from relay import messages
from relay.exchange import Exchange
from relay.upstream import iter_body, read_body, send
from wire.adapters import REGISTRY
from wire.adapters.base import LocalResponse, Target
from wire.errors import UpstreamError

TARGET = Target(deployment_id=1, provider="mock", wire="mock", base_url="", api_key="", upstream_model="demo")


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def test_a_local_answer_is_read_whole_like_an_http_one():
    assert asyncio.run(read_body(LocalResponse(200, _chunks(b'{"a"', b":1}")))) == b'{"a":1}'


def test_a_local_answer_past_the_size_cap_is_refused_like_an_http_one():
    with pytest.raises(UpstreamError, match="too large"):
        asyncio.run(read_body(LocalResponse(200, _chunks(b"x" * 600, b"y" * 600)), limit=1000))


def test_a_local_stream_is_yielded_chunk_by_chunk():
    async def collect():
        return [chunk async for chunk in iter_body(LocalResponse(200, _chunks(b"data: 1\n\n", b"data: 2\n\n")))]

    assert asyncio.run(collect()) == [b"data: 1\n\n", b"data: 2\n\n"]


def test_every_local_adapter_declares_the_hook_and_answers_through_send():
    local = [adapter for adapter in REGISTRY.values() if adapter.local] + [messages.DEMO, messages.COUNT_ESTIMATE]
    assert {adapter.name for adapter in local} >= {"mock", "estimate"}
    for adapter in local:
        assert callable(adapter.local_call), adapter.name
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    demo = REGISTRY["mock"]
    request = demo.build_request(endpoint="chat", body=body, target=TARGET, stream=False)

    async def call():
        response = await send(None, demo, request, TARGET, "chat")  # no session needed: nothing goes over HTTP
        return response.status, await read_body(response)

    status, raw = asyncio.run(call())
    assert status == 200 and "You said: hi" in orjson.loads(raw)["choices"][0]["message"]["content"]


def test_the_exchange_is_one_slotted_object():
    exchange = Exchange(conn=None, endpoint="chat", key=None)
    assert not hasattr(exchange, "__dict__")
    with pytest.raises(AttributeError):
        exchange.unknown = 1
