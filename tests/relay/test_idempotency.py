"""Idempotency-Key through the real relay: a fingerprint per key, no truncation, and a stream the client
dropped is not charged again on a retry."""

import json
import time

import httpx
import openai
import pytest

from billing.models import UsageEvent
from tests.gateway import drain_usage, wait_for

MESSAGES = [{"role": "user", "content": "Hi"}]


def post(gateway, body: bytes, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {gateway.secret}", "content-type": "application/json", "idempotency-key": key}
    return httpx.post(gateway.base_url + "/chat/completions", content=body, headers=headers, timeout=20)


def test_the_same_key_with_another_body_is_refused_with_422(gateway, upstream):
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_headers={"Idempotency-Key": "order-1"})
    calls = len(upstream.ledger)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Something else"}], extra_headers={"Idempotency-Key": "order-1"})
    assert info.value.code == "idempotency_key_reused" and info.value.body["type"] == "invalid_request_error"
    assert len(upstream.ledger) == calls


def test_the_fingerprint_ignores_the_order_of_keys(gateway, upstream):
    first = post(gateway, b'{"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}', "order-2")
    again = post(gateway, b'{"max_tokens": 5, "messages": [{"content": "Hi", "role": "user"}], "model": "gpt-test"}', "order-2")
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()


def test_keys_longer_than_255_characters_are_refused_not_truncated(gateway, upstream):
    body = json.dumps({"model": "gpt-test", "messages": MESSAGES}).encode()
    refused = post(gateway, body, "k" * 256)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_idempotency_key"
    assert post(gateway, body, "k" * 255).status_code == 200
    # two keys that differ only after the 200th character are two requests
    calls = len(upstream.ledger)
    post(gateway, body, "x" * 200 + "a")
    second = post(gateway, body, "x" * 200 + "b")
    assert "idempotent-replayed" not in second.headers and len(upstream.ledger) == calls + 2


def test_a_stream_the_client_dropped_is_not_charged_again_on_a_retry(gateway, upstream):
    upstream.chunk_delay = 0.3
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {gateway.secret}", "idempotency-key": "order-3"}
    try:
        with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=20) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                if line.startswith("data: "):
                    first = json.loads(line[6:])
                    break  # the client goes away after the first chunk
        dropped = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])
        assert dropped.status_code == 499 and dropped.completion_tokens > 0
        calls = len(upstream.ledger)
        with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=20) as retry:
            events = [json.loads(line[6:]) for line in retry.iter_lines() if line.startswith("data: ")]
        assert retry.headers["idempotent-replayed"] == "true" and retry.headers["x-request-id"] == request_id
        assert events[0] == first and events[-1]["error"]["code"] == "idempotency_replay_incomplete"
        assert events[-1]["id"] == first["id"]  # the stream's id, like every chunk the gateway adds
        assert len(upstream.ledger) == calls  # no second upstream call
        time.sleep(0.5)  # a second row, if any, would have been flushed by now
        drain_usage()
        assert UsageEvent.objects.filter(organization=gateway.org).count() == 1  # no second charge
    finally:
        upstream.chunk_delay = 0.0
