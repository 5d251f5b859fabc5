"""Celery tasks: thin wrappers over billing services, named explicitly (schedule: config/celery.py)."""

import logging
from contextlib import contextmanager

from celery import shared_task
from django.conf import settings

from billing import counters, credits, ledger, services, tasks_alerts  # noqa: F401  (tasks_alerts registers the alert delivery tasks)
from wire import redis_keys

log = logging.getLogger(__name__)

DRAIN_LOCK = redis_keys.DRAIN_LOCK
# The lock only saves work (ingest is idempotent and serialised in the database, so overlapping
# drains are harmless); a worker killed while holding it stalls the ledger until it expires.
DRAIN_LOCK_SECONDS = 20


@contextmanager
def _redis():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    try:
        yield client
    finally:
        client.close()


def _locked_drain(work) -> int:
    """Run `work(client)` unless another drain holds the lock (embedded mode has no stream)."""
    if not settings.REDIS_URL:
        return 0
    from redis.exceptions import LockError

    with _redis() as client:
        lock = client.lock(DRAIN_LOCK, timeout=DRAIN_LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            return 0
        try:
            return work(client)
        finally:
            try:
                lock.release()
            except LockError:  # a long drain outlived its lock: another drain may already hold it
                pass


@shared_task(name="billing.usage_drain", ignore_result=True)
def usage_drain() -> int:
    """The safety net (beat): ingest entries a dead consumer left pending. Each worker's own consumer
    thread (billing.drain) moves the stream into the ledger as entries arrive."""
    return _locked_drain(ledger.usage_reclaim)


@shared_task(name="billing.budget_evaluate", ignore_result=True)
def budget_evaluate(budget_id: int) -> None:
    _locked_drain(ledger.usage_drain)  # the relay asks promptly: bring the ledger up to date first
    services.budget_evaluate(budget_id=budget_id)


@shared_task(name="billing.usage_dead_letters_alert", ignore_result=True)
def usage_dead_letters_alert() -> int:
    return ledger.usage_dead_letters_alert()


@shared_task(name="billing.budgets_evaluate_all", ignore_result=True)
def budgets_evaluate_all() -> None:
    services.budgets_evaluate_all()
    services.unpriced_usage_alert()


@shared_task(name="billing.usage_retention", ignore_result=True)
def usage_retention() -> None:
    services.usage_retention(days=settings.TOLLGATE_USAGE_RETENTION_DAYS)


@shared_task(name="billing.budget_counters_reconcile", ignore_result=True)
def budget_counters_reconcile() -> int:
    """Draw recorded usage into the credit ledger, then raise every budget and credit counter that fell
    behind the ledger. The counters are Redis only: in the embedded default each web process keeps its own."""
    credits.credit_usage_draw()
    if not settings.REDIS_URL:
        return 0
    with _redis() as client:
        return counters.counters_reconcile(client)


@shared_task(name="billing.credits_expire", ignore_result=True)
def credits_expire() -> int:
    return credits.credit_expire()
