"""The demo model answers at a plausible pace (so latency charts of `make run` are not empty), or at once."""

import time

from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for


def _demo(gateway):
    credential = key_services.credential_create(actor=gateway.ctx, name="demo", provider="mock")
    gateway.add_model("demo", "tollgate-demo", credential=credential)
    return gateway.client()


def _row(request_id):
    def found():
        drain_usage()
        return UsageEvent.objects.filter(request_id=request_id).first()

    wait_for(found)
    return found()


def test_demo_model_waits_for_the_first_byte_and_spaces_its_chunks(gateway, settings):
    settings.TOLLGATE_DEMO_FIRST_BYTE_MS, settings.TOLLGATE_DEMO_CHUNK_MS = 200, 20
    client = _demo(gateway)

    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(model="demo", messages=[{"role": "user", "content": "ping"}])
    whole = time.perf_counter() - started
    words = len(raw.parse().choices[0].message.content.split())
    assert whole >= 0.7 * (0.2 + 0.02 * words)

    started = time.perf_counter()
    stream = client.chat.completions.with_raw_response.create(model="demo", messages=[{"role": "user", "content": "ping"}], stream=True)
    arrivals = [time.perf_counter() - started for chunk in stream.parse() if chunk.choices and chunk.choices[0].delta.content]
    assert arrivals[0] >= 0.14
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert len(gaps) >= 5 and sorted(gaps)[len(gaps) // 2] >= 0.01  # spaced, not one burst

    streamed = _row(stream.headers["x-request-id"])
    assert streamed.ttft_ms >= 140 and streamed.latency_ms >= streamed.ttft_ms + 50
    assert _row(raw.headers["x-request-id"]).latency_ms >= 140


def test_demo_model_answers_at_once_when_its_pace_is_zero(gateway):
    client = _demo(gateway)  # tests/conftest.py: both 0
    started = time.perf_counter()
    for _ in range(5):
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "ping"}])
    assert time.perf_counter() - started < 1.0
