"""A real Celery worker killed in the middle of a ledger batch (after the commit, before the
acknowledgement: the moment that would count twice), down for a while, then restarted: nothing
lost, nothing counted twice. Extends tests/billing/test_ledger_worker.py, which kills an idle worker."""

import time

import redis

from billing.ledger import GROUP, STREAM
from billing.models import UsageEvent
from tests.faults.helpers import Worker, burst, chat, needs_servers
from tests.gateway import wait_for
from tests.reconcile import reconcile

pytestmark = needs_servers

DOWN_SECONDS = 120  # "down for minutes": traffic goes on while no worker runs; usage waits in the stream
TRICKLE_EVERY = 15  # seconds between the bursts sent while the worker is down


def rows(org) -> int:
    return UsageEvent.objects.filter(organization=org).count()


def test_worker_killed_mid_batch_then_down_then_restarted(gateway, upstream, relay_server, tmp_path, settings):
    org = gateway.org
    calls = [(gateway.base_url, gateway.secret, chat(stream=i % 3 == 0)) for i in range(40)]
    marker = tmp_path / "committed"
    client = redis.Redis.from_url(settings.REDIS_URL)
    worker = Worker(tmp_path, hold_after_commit=marker, name="first")
    try:
        assert {o.status for o in burst(calls, concurrency=8)} == {200}
        wait_for(marker.exists, timeout=30)  # a batch is committed and its entries are not acknowledged yet
        committed = rows(org)
        assert committed > 0
        held = {c["name"]: c["pending"] for c in client.xinfo_consumers(STREAM, GROUP)}
        assert any(held.values())
        worker.kill()  # SIGKILL, with its embedded beat

        sent = len(calls)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < DOWN_SECONDS:  # requests are unaffected all along
            trickle = calls[:10]
            assert {o.status for o in burst(trickle, concurrency=4)} == {200}
            sent += len(trickle)
            time.sleep(min(TRICKLE_EVERY, max(0.0, DOWN_SECONDS - (time.monotonic() - killed_at))))
        assert rows(org) == committed  # nothing drains while the worker is down; nothing is lost either
        assert client.xlen(STREAM) > 0

        worker = Worker(tmp_path, name="second")  # reclaims the killed worker's entries, drains the rest
        wait_for(lambda: rows(org) >= sent, timeout=60)  # the killed worker's drain lock expired long ago
        time.sleep(3)  # a double count would show up now
        assert rows(org) == sent
        assert client.xpending(STREAM, GROUP)["pending"] == 0
        # The worker did the draining; the reconciliation's own drain finds nothing left of ours.
        reconcile(org, upstream, expected_requests=sent, runtime=relay_server.relay.runtime)
    finally:
        worker.kill()
        client.close()
