"""Load: a per-key rate limit shared by three web processes, and one alert for a threshold crossed by
200 concurrent calls (a real Celery worker drains, evaluates and delivers).

The hard budget under 200 concurrent calls (admits 95-100, overspends by at most one request) is
tests/billing/test_budget_admission.py::test_concurrent_calls_respect_the_hard_budget_and_the_ledger_is_exact.
"""

import time

from billing import alerts
from billing import services as billing_services
from billing.models import Alert, AlertDelivery, UsageEvent
from keys import services as key_services
from tests.billing.receivers import smtp_server, webhook_receiver
from tests.billing.test_webhooks import documented_snippet
from tests.faults.helpers import (
    Worker,
    burst,
    chat,
    needs_servers,
    price_echo,
    start_web_processes,
)
from tests.gateway import wait_for
from tests.reconcile import reconcile

pytestmark = needs_servers


def _within_one_window(seconds_needed: float) -> None:
    """Start a burst early in a one-minute window, so that it cannot straddle two windows."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.2)


def test_60_rpm_key_across_three_web_processes_accepts_57_to_63_of_300(gateway, upstream):
    _, secret = key_services.virtual_key_create(actor=gateway.ctx, name="60 a minute", rpm_limit=60)
    webs = start_web_processes(3)
    try:
        warm = burst([(web.url, gateway.secret, chat()) for web in webs])  # snapshots and pools, another key
        assert {o.status for o in warm} == {200}
        _within_one_window(25)
        window = int(time.time() // 60)
        outcomes = burst([(webs[i % 3].url, secret, chat()) for i in range(300)], concurrency=30)  # round robin
        assert int(time.time() // 60) == window, "the burst straddled two rate windows"
    finally:
        for web in webs:
            web.stop()  # flushes their usage
    accepted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    assert 57 <= len(accepted) <= 63, len(accepted)
    assert len(accepted) + len(refused) == 300
    for outcome in refused:
        assert outcome.code == "rate_limit_exceeded" and int(outcome.headers["retry-after"]) >= 1, outcome
        assert outcome.headers["x-ratelimit-limit-requests"] == "60"
    by_process = [sum(1 for i, o in enumerate(outcomes) if i % 3 == p and o.status == 200) for p in range(3)]
    assert all(by_process), by_process  # one shared counter, spent by all three
    reconcile(gateway.org, upstream, expected_requests=303)


def test_200_concurrent_calls_crossing_80_percent_send_one_email_and_one_webhook(gateway, upstream, relay_server, tmp_path, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    price_echo(gateway)
    # 200 x 0.01 = 2.00 of 2.20: crosses 80% (1.76) and no other threshold; a "total" budget has no forecast.
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="2.20", period="total", thresholds=[80])
    with smtp_server() as smtp, webhook_receiver() as receiver:
        _, secret = alerts.alert_channel_create(actor=gateway.ctx, name="Ops hook", kind="webhook", target=receiver.url())
        alerts.alert_channel_create(actor=gateway.ctx, name="Ops mail", kind="email", target="ops@example.com")
        worker = Worker(tmp_path, env={"EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}"}, name="alerts")
        try:
            # The worker is up and draining (as in production) before the burst.
            assert burst([(gateway.base_url, gateway.secret, chat())])[0].status == 200
            wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).exists(), timeout=60)
            outcomes = burst([(gateway.base_url, gateway.secret, chat())] * 199, concurrency=199)
            assert {o.status for o in outcomes} == {200}
            wait_for(lambda: smtp.messages and receiver.requests, timeout=45)
            time.sleep(5)  # a second alert or a repeated delivery would arrive by now
        finally:
            worker.kill()
        assert len(smtp.messages) == 1 and len(receiver.requests) == 1
        assert "80" in smtp.messages[0]["message"]["Subject"] or "80" in smtp.body(0)
        documented_snippet()(secret, receiver.requests[0].headers, receiver.requests[0].body)
    (alert,) = Alert.objects.filter(organization=gateway.org)
    assert alert.payload["threshold"] == 80
    assert list(AlertDelivery.objects.filter(alert=alert).values_list("status", flat=True)) == [AlertDelivery.Status.SENT] * 2
    reconcile(gateway.org, upstream, expected_requests=200, runtime=relay_server.relay.runtime)
