"""Graceful shutdown: on SIGTERM streams in flight finish, new connections are refused, usage is flushed."""

import signal
import threading
import time

import httpx
import pytest

from billing.models import UsageEvent
from tests.gateway import RelayProcess, drain_usage, wait_for


def test_sigterm_lets_streams_finish_and_flushes_usage(gateway, upstream):
    upstream.chunk_delay = 0.15  # each stream takes about 1.5 s
    relay = RelayProcess("--timeout-graceful-shutdown", "10")
    results = []

    def stream():
        text = []
        body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
        with httpx.stream("POST", relay.url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {gateway.secret}"}, timeout=30) as response:
            for line in response.iter_lines():
                text.append(line)
        results.append(text)

    try:
        threads = [threading.Thread(target=stream) for _ in range(5)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len([e for e in upstream.ledger if e.completion_tokens]) == 5)
        relay.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.HTTPError):  # no longer accepting
            httpx.get(relay.url + "/models", timeout=2)
        for thread in threads:
            thread.join(20)
        assert relay.process.wait(20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    finally:
        upstream.chunk_delay = 0.0
        if relay.process.poll() is None:
            relay.stop()
    assert len(results) == 5
    assert all(lines[-2] == "data: [DONE]" or lines[-1] == "data: [DONE]" for lines in results)
    assert all(e.completed for e in upstream.ledger)
    rows = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).count() == 5)[1])
    assert rows


def test_background_loops_are_cancelled_again_when_they_swallow_a_cancellation():
    import asyncio

    from relay.runtime import cancel_until_done

    cancellations = []

    async def stubborn_loop():
        # What Python 3.11's wait_for can do: a cancellation arriving as the awaited call completes is lost.
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append(time.monotonic())
                if len(cancellations) == 1:
                    continue
                raise

    async def main():
        task = asyncio.create_task(stubborn_loop())
        await asyncio.sleep(0)
        started = time.monotonic()
        await cancel_until_done([task], wait=0.05)
        return task, time.monotonic() - started

    task, elapsed = asyncio.run(main())
    assert task.cancelled()
    assert len(cancellations) == 2
    assert elapsed < 1
