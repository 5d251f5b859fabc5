"""Celery tasks for alert delivery: thin wrappers over billing.alerts (schedule: config/celery.py).

No Celery retries here: the service records each failure and schedules the next attempt itself,
and a worker that dies mid-attempt leaves a claim lease that alert_deliveries_due picks up later.
"""

from celery import shared_task

from billing import alerts


@shared_task(name="billing.alert_deliver", ignore_result=True)
def alert_deliver(delivery_id: int) -> None:
    alerts.alert_deliver(delivery_id=delivery_id)


@shared_task(name="billing.alert_deliveries_due", ignore_result=True)
def alert_deliveries_due() -> int:
    return alerts.alert_deliveries_due()


@shared_task(name="billing.credential_rejected", ignore_result=True)
def credential_rejected(deployment_id: int, status: int | None = None) -> None:
    alerts.credential_rejected_alert(deployment_id=deployment_id, status=status)


@shared_task(name="billing.credential_balances_poll", ignore_result=True)
def credential_balances_poll() -> int:
    """Hourly: read the balance of every credential whose provider exposes one, alert the low ones."""
    from keys.balances import balance_is_low, balances_check_all

    checked = balances_check_all()
    for credential in checked:
        if balance_is_low(credential):
            alerts.credential_low_balance_alert(credential_id=credential.pk)
    return len(checked)
