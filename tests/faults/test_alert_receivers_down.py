"""Alert receivers down (README: fail-open table, SMTP and webhook rows): the budget alert that real
traffic triggers is recorded, its deliveries fail and are retried; the receivers come back on the
same address and each gets the alert exactly once, the webhook with the same id and a valid
signature. tests/billing/test_alerts.py covers receivers answering errors; this covers receivers
that do not answer at all (connection refused)."""

from datetime import timedelta

from django.utils import timezone

from billing import alerts
from billing import services as billing_services
from billing.models import Alert, AlertDelivery
from tests.billing.receivers import free_port, use_smtp
from tests.billing.test_webhooks import documented_snippet
from tests.faults.helpers import (
    burst,
    chat,
    price_echo,
    smtp_server_on,
    webhook_receiver_on,
)
from tests.reconcile import reconcile

Status = AlertDelivery.Status


def make_due(deliveries) -> None:
    AlertDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_receivers_down_then_back_get_the_alert_exactly_once(gateway, upstream, relay_server, settings, monkeypatch):
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    hook_port, smtp_port = free_port(), free_port()
    with smtp_server_on(smtp_port) as smtp:  # only to point Django's settings at the port
        use_smtp(settings, smtp)
    _, secret = alerts.alert_channel_create(actor=gateway.ctx, name="Ops hook", kind="webhook", target=f"http://127.0.0.1:{hook_port}/hook")
    alerts.alert_channel_create(actor=gateway.ctx, name="Ops mail", kind="email", target="ops@example.com")
    queued = []
    monkeypatch.setattr(alerts, "_enqueue", queued.append)  # this test plays the Celery worker

    price_echo(gateway)
    budget = billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.10", period="total", hard=False, thresholds=[80])
    assert {o.status for o in burst([(gateway.base_url, gateway.secret, chat())] * 9)} == {200}  # 0.09 of 0.10
    reconcile(gateway.org, upstream, expected_requests=9, runtime=relay_server.relay.runtime)

    (alert,) = billing_services.budget_evaluate(budget_id=budget.pk)
    deliveries = list(AlertDelivery.objects.filter(alert=alert))
    assert sorted(queued) == sorted(d.pk for d in deliveries) and len(deliveries) == 2
    for delivery in deliveries:  # the task's first attempt: nobody listens
        alerts.alert_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.RETRYING, 1), delivery.last_error
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=20)  # backoff, 30 s with jitter
        assert "Connect" in delivery.last_error or "refused" in delivery.last_error.lower(), delivery.last_error
    assert alerts.alert_deliveries_due() == 0  # not due yet
    make_due(deliveries)
    assert alerts.alert_deliveries_due() == 2  # still down: retried, still retrying
    assert set(AlertDelivery.objects.filter(alert=alert).values_list("status", "attempts")) == {(Status.RETRYING, 2)}

    with webhook_receiver_on(hook_port) as receiver, smtp_server_on(smtp_port) as smtp:
        make_due(deliveries)
        assert alerts.alert_deliveries_due() == 2
        assert set(AlertDelivery.objects.filter(alert=alert).values_list("status", "attempts")) == {(Status.SENT, 3)}
        make_due(deliveries)
        assert alerts.alert_deliveries_due() == 0  # a sent delivery is never sent again
        for delivery in deliveries:
            assert alerts.alert_deliver(delivery_id=delivery.pk) is None
        assert billing_services.budget_evaluate(budget_id=budget.pk) == []  # the threshold fired once
        (request,) = receiver.requests
        assert len(smtp.messages) == 1 and "ops@example.com" in smtp.messages[0]["to"]
    webhook_delivery = AlertDelivery.objects.get(alert=alert, channel__kind="webhook")
    assert request.headers["webhook-id"] == webhook_delivery.message_id  # the same id on every attempt
    documented_snippet()(secret, request.headers, request.body)
    assert request.json()["type"] == "budget.threshold" and request.json()["data"]["threshold"] == 80
    assert Alert.objects.filter(organization=gateway.org).count() == 1
