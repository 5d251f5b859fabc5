"""/v1 bodies: no field anywhere may choose a destination, credentials or headers (whatever its case or
separators), and the work spent on one body is bounded (relay/validation.py, wire/tokens.py)."""

import time

import httpx
import orjson
import pytest

from relay import validation
from wire import tokens
from wire.errors import InvalidRequest

MESSAGES = [{"role": "user", "content": "hi"}]


def _tool(parameters=None, **extra):
    return {"type": "function", "function": {"name": "lookup", "parameters": parameters or {"type": "object", "properties": {}}}, **extra}


def _post(gateway, body: dict):
    return httpx.post(gateway.base_url + "/chat/completions", content=orjson.dumps(body), timeout=10,
                      headers={"Authorization": f"Bearer {gateway.secret}", "Content-Type": "application/json"})


@pytest.mark.parametrize("extra, param", [
    ({"API_BASE": "http://169.254.169.254"}, "API_BASE"),
    ({"apiBase": "http://10.0.0.1"}, "apiBase"),
    ({"base-url": "http://10.0.0.1"}, "base-url"),
    ({"extra_body": {"Api_Key": "sk-x"}}, "extra_body.Api_Key"),
    ({"tools": [_tool(api_base="http://10.0.0.1")]}, "tools[0].api_base"),
    ({"tools": [{"type": "function", "function": {"name": "f", "baseURL": "http://x", "parameters": {}}}]}, "tools[0].function.baseURL"),
    ({"tools": [_tool({"type": "object", "extra_headers": {"a": "b"}})]}, "tools[0].function.parameters.extra_headers"),
    ({"functions": [{"name": "f", "parameters": {"type": "object"}, "Custom-LLM-Provider": "x"}]}, "functions[0].Custom-LLM-Provider"),
    ({"metadata": {"properties": {"api_key": "x"}}}, "metadata.properties.api_key"),  # "properties" outside a schema
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "headers": {"x": "y"}}]}]}, "messages[0].content[0].headers"),
])
def test_forbidden_fields_are_refused_anywhere_with_their_path(gateway, upstream, extra, param):
    upstream.reset()
    response = _post(gateway, {"model": "gpt-test", "messages": MESSAGES, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("forbidden_parameter", param) and param in error["message"]
    assert upstream.requests == []


def test_a_tool_may_take_arguments_named_like_forbidden_fields(gateway, upstream):
    """Property names inside a tool's JSON schema are the tool's vocabulary, not request fields."""
    schema = {"type": "object", "properties": {"api_key": {"type": "string"}, "headers": {"type": "object", "properties": {"Authorization": {"type": "string"}}}},
              "required": ["api_key"], "$defs": {"base_url": {"type": "string"}}}
    upstream.reset()
    response = _post(gateway, {"model": "gpt-test", "messages": MESSAGES, "tools": [_tool(schema)],
                               "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}})
    assert response.status_code == 200, response.text
    assert upstream.requests[-1]["json"]["tools"][0]["function"]["parameters"] == schema


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": [{"role": "user", "content": ""}] * (validation.MAX_CONTAINERS + 1)},
    {"model": "m", "messages": MESSAGES, "metadata": {f"k{n}": 0 for n in range(validation.MAX_MEMBERS + 1)}},
    {"model": "m", "input": [[1] * 1000] * (validation.MAX_ELEMENTS // 1000 + 1)},
])
def test_bodies_past_the_work_bounds_are_refused(body):
    endpoint = "embeddings" if "input" in body else "chat"
    with pytest.raises(InvalidRequest) as caught:
        validation.check_body(endpoint, body)
    assert caught.value.code == "request_too_complex"


def test_millions_of_brackets_are_refused_before_parsing():
    with pytest.raises(InvalidRequest) as caught:
        validation.check_raw(b'{"model":"m","messages":[' + b",".join([b"[]"] * validation.RAW_BRACKETS) + b"]}")
    assert caught.value.code == "request_too_complex"


def _cpu_ms(function) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        try:
            function()
        except InvalidRequest:
            pass
        best = min(best, (time.thread_time() - started) * 1000)
    return best


@pytest.mark.parametrize("endpoint, body", [
    ("chat", {"model": "m", "messages": [{"role": "user", "content": ""}] * 250_000}),  # ~8 MB of JSON
    ("chat", {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": ""}] * 300_000}]}),
    ("chat", {"model": "m", "messages": MESSAGES, "metadata": {f"k{n}": 0 for n in range(500_000)}}),
    ("completions", {"model": "m", "prompt": [""] * 2_000_000}),
    ("embeddings", {"model": "m", "input": [[1] * 100] * 40_000}),
    ("chat", {"model": "m", "messages": MESSAGES, "tools": [_tool({"type": "object", "properties": {"a": {"type": "string"}}})] * 60_000}),
])
def test_no_body_within_the_size_limit_costs_much_to_check(endpoint, body):
    """benchmarks/request_work.py measures these shapes in full; each took 100-1600 ms of CPU before."""
    def check_and_bound():
        validation.check_body(endpoint, body)
        tokens.bound_prompt(endpoint, body)

    assert _cpu_ms(check_and_bound) < 60  # the target is 20 ms; slack for a busy CI machine


def test_long_texts_are_counted_from_a_sample():
    text = "The quick brown fox jumps over the lazy dog. " * 100_000  # 4.5 MB
    started = time.thread_time()
    counted = tokens.count_text(text)
    assert time.thread_time() - started < 0.5
    exact = tokens._count("The quick brown fox jumps over the lazy dog. " * 1000) * 100
    assert abs(counted - exact) / exact < 0.02
