"""Celery tasks of accounts: thin wrappers that call one service (the beat schedule is in config/celery.py)."""

from celery import shared_task

from accounts import services


@shared_task(name="accounts.invitations_expire", bind=True, max_retries=3, default_retry_delay=60)
def invitations_expire(self) -> int:
    """Hourly housekeeping of stale invitations; safe to run twice."""
    try:
        return services.invitations_expire()
    except Exception as exc:  # a database blip: try again later rather than lose the run
        raise self.retry(exc=exc) from exc
