"""Upstream faults through the real relay: 429 with Retry-After, 5xx, connect refused and connect
timeout (a blackhole), silence before the first byte, a stall mid-stream, and 100 clients aborting
their streams at once. Each ends with a reconciliation against the mock upstream's own ledger."""

import asyncio
import time

import httpx
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.faults.helpers import (
    MESSAGES,
    blackhole,
    burst,
    chat,
    closed_port,
    price_echo,
)
from tests.gateway import drain_usage, wait_for
from tests.reconcile import reconcile


def routed(gateway, name, deployments, **policy):
    """A model whose deployments are (upstream_model, weight, order[, credential])."""
    model = key_services.model_create(actor=gateway.ctx, name=name, **policy)
    for upstream_model, weight, order, *credential in deployments:
        key_services.deployment_create(actor=gateway.ctx, model=model, credential=(credential or [gateway.credential])[0],
                                       upstream_model=upstream_model, weight=weight, order=order)
    return model


def one(gateway, model, **kwargs):
    return burst([(gateway.base_url, gateway.secret, {**chat(), "model": model, **kwargs})], concurrency=1)[0]


def test_upstream_429_retry_after_is_honoured_passed_on_and_falls_back(gateway, upstream, relay_server):
    routed(gateway, "limited", [("fail-429", 1, 0)], retries_per_deployment=1, max_attempts=2, cooldown_failures=100)
    routed(gateway, "limited-fb", [("fail-429", 1, 0), ("echo", 0, 1)], cooldown_failures=100)

    refused = one(gateway, "limited")
    assert refused.status == 429 and refused.code == "upstream_rate_limited"
    assert refused.elapsed >= 1.0  # the retry waited for the upstream's Retry-After: 1
    assert refused.headers.get("retry-after") == "1"  # and the client is told how long to wait
    served = one(gateway, "limited-fb")
    assert served.status == 200 and served.headers["x-tollgate-attempts"] == "2"

    rows = {e.request_id: e for e in reconcile(gateway.org, upstream, expected_requests=2, runtime=relay_server.relay.runtime)}
    assert (rows[refused.headers["x-request-id"]].attempts, rows[refused.headers["x-request-id"]].status_code) == (2, 429)
    assert rows[served.headers["x-request-id"]].completion_tokens == 10


def test_upstream_5xx_is_a_502_or_falls_back(gateway, upstream, relay_server):
    routed(gateway, "broken", [("fail-500", 1, 0), ("fail-503", 0, 1)], cooldown_failures=100)
    routed(gateway, "broken-fb", [("fail-502", 1, 0), ("echo", 0, 1)], cooldown_failures=100)

    failed = one(gateway, "broken")
    assert failed.status == 502 and failed.code == "upstream_error"
    assert "10.1.2.3" not in str(failed.headers) and failed.elapsed < 5
    streamed = one(gateway, "broken-fb", stream=True)
    assert streamed.status == 200 and streamed.complete and streamed.chunks >= 10

    rows = {e.request_id: e for e in reconcile(gateway.org, upstream, expected_requests=2, runtime=relay_server.relay.runtime)}
    assert rows[failed.headers["x-request-id"]].attempts == 2 and rows[failed.headers["x-request-id"]].status_code == 502


def test_connect_refused_and_connect_timeout(gateway, upstream, relay_server):
    refused = key_services.credential_create(actor=gateway.ctx, name="closed", provider="custom", api_key="test-key",
                                             base_url=f"http://127.0.0.1:{closed_port()}/v1", connect_timeout=1)
    with blackhole() as port:
        hole = key_services.credential_create(actor=gateway.ctx, name="blackhole", provider="custom", api_key="test-key",
                                              base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=1)
        routed(gateway, "closed", [("echo", 1, 0, refused)], cooldown_failures=100)
        routed(gateway, "hole", [("echo", 1, 0, hole)], cooldown_failures=100)
        routed(gateway, "hole-fb", [("echo", 1, 0, hole), ("echo", 0, 1)], cooldown_failures=100)

        closed = one(gateway, "closed")
        assert closed.status == 502 and closed.code == "upstream_connect_error" and closed.elapsed < 1
        timed_out = one(gateway, "hole")
        assert timed_out.status == 504 and timed_out.code == "upstream_timeout"
        assert 0.9 <= timed_out.elapsed < 3  # the credential's 1 s connect timeout, not the 300 s read timeout
        fallen_back = one(gateway, "hole-fb", stream=True)
        assert fallen_back.status == 200 and fallen_back.complete and fallen_back.elapsed < 4

    reconcile(gateway.org, upstream, expected_requests=3, runtime=relay_server.relay.runtime)
    assert len(upstream.ledger) == 1  # only the fallback reached the mock


def test_silence_before_the_first_byte_is_a_504(gateway, upstream, relay_server):
    key_services.credential_update(actor=gateway.ctx, credential=gateway.credential, read_timeout=1)
    routed(gateway, "mute", [("silent", 1, 0)], cooldown_failures=100)
    outcomes = burst([(gateway.base_url, gateway.secret, {**chat(), "model": "mute", "stream": stream}) for stream in (False, True)])
    for outcome in outcomes:
        # a stream that never started is still a plain JSON error: nothing was sent yet
        assert outcome.status == 504 and outcome.code == "upstream_timeout", outcome
        assert 0.9 <= outcome.elapsed < 3
    assert len(upstream.requests) == 2 and not upstream.ledger  # asked, never answered
    rows = reconcile(gateway.org, upstream, expected_requests=2, runtime=relay_server.relay.runtime)
    assert {(r.status_code, r.error_type, r.completion_tokens) for r in rows} == {(504, "upstream_timeout", 0)}


def test_stall_mid_stream_ends_with_an_error_event_and_bills_what_was_delivered(gateway, upstream, relay_server):
    key_services.credential_update(actor=gateway.ctx, credential=gateway.credential, read_timeout=1)
    routed(gateway, "stalls", [("stall", 1, 0), ("echo", 0, 1)], cooldown_failures=100)
    outcome = one(gateway, "stalls", stream=True)
    assert outcome.status == 200 and not outcome.complete
    assert outcome.chunks == 2 and "upstream_timeout" in outcome.code  # two words, then the error event
    assert 0.9 <= outcome.elapsed < 3
    assert [r["json"]["model"] for r in upstream.requests] == ["stall"]  # no fallback after the first byte
    (row,) = reconcile(gateway.org, upstream, expected_requests=1, runtime=relay_server.relay.runtime)
    entry = upstream.ledger[0]
    assert not entry.completed and entry.completion_tokens == 2
    assert (row.status_code, row.error_type) == (504, "upstream_timeout")
    assert outcome.chunks <= row.completion_tokens <= entry.completion_tokens  # delivered <= billed <= generated


def test_100_clients_abort_their_streams(gateway, upstream, relay_server):
    """Each client reads a couple of chunks and hangs up: every stream is billed for what was
    generated (delivered <= billed <= generated), its reservation released, and its upstream call cut."""
    price_echo(gateway)
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="100", period="month")  # reservations are held
    upstream.chunk_delay = 0.1  # a whole stream would take about 1 s
    try:
        delivered = asyncio.run(_abort_streams(gateway, 100))
        assert len(delivered) == 100
        rows = {e.request_id: e for e in reconcile(gateway.org, upstream, expected_requests=100, runtime=relay_server.relay.runtime)}
        time.sleep(1.5)  # longer than a whole stream: an upstream call that went on would have completed by now
        entries = {e.gateway_request_id: e for e in upstream.ledger}
        assert len(entries) == 100
        assert not [e for e in entries.values() if e.completed]  # every upstream call was cancelled
        for request_id, chunks in delivered.items():
            row, entry = rows[request_id], entries[request_id]
            assert (row.status_code, row.error_type) == (499, "client_disconnected")
            assert chunks <= row.completion_tokens <= entry.completion_tokens, (chunks, row.completion_tokens, entry.completion_tokens)
            assert row.cost_display is not None and row.cost_display > 0
    finally:
        upstream.chunk_delay = 0.0


async def _abort_streams(gateway, n: int) -> dict[str, int]:
    """n concurrent streams, each closed by the client after two content chunks; request id -> chunks read."""
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True, "max_tokens": 10}
    headers = {"Authorization": f"Bearer {gateway.secret}"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=20) as client:
        async def abort_one():
            chunks = 0
            async with client.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers) as response:
                assert response.status_code == 200
                request_id = response.headers["x-request-id"]
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        chunks += 1
                    if chunks == 2:
                        break  # leaving the block closes the connection: the client is gone
            return request_id, chunks

        return dict(await asyncio.gather(*(abort_one() for _ in range(n))))


def test_reconcile_notices_a_lost_record(gateway, upstream):
    """The reconciliation itself: an upstream call that no usage row accounts for fails it."""
    gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).count() == 2)[1])
    reconcile(gateway.org, upstream, expected_requests=2)
    UsageEvent.objects.filter(pk=UsageEvent.objects.filter(organization=gateway.org).first().pk).delete()
    with pytest.raises(AssertionError):
        reconcile(gateway.org, upstream, timeout=1)
