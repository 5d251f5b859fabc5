"""Celery tasks: ids in, one runner or service call (schedule: config/celery.py)."""

import asyncio
import logging

from celery import shared_task
from celery.signals import worker_shutting_down
from django.conf import settings

from batches import native, services
from batches.runner import ACTIVE, BatchRunner, runner_id

log = logging.getLogger(__name__)


@shared_task(name="batches.run", acks_late=True)
def batch_run(batch_pk: int) -> str:
    """Run a batch until it is done, paused or cancelled; a second run of the same batch while one holds
    the lease returns at once, so a duplicate message is harmless. A native batch (the provider's batch API)
    takes one step instead, and schedules the next poll."""
    if native.is_native(batch_pk):
        outcome = native.batch_native_step(batch_pk, me=runner_id())
        if outcome in ("waiting", "retry"):
            batch_run.apply_async((batch_pk,), countdown=settings.TOLLGATE_BATCH_NATIVE_POLL_SECONDS)
        log.info("native batch %s: %s", batch_pk, outcome)
        return outcome
    outcome = asyncio.run(BatchRunner(batch_pk).run())
    log.info("batch %s: %s", batch_pk, outcome)
    return outcome


@shared_task(name="batches.sweep")
def batches_sweep() -> int:
    """Resume the batches whose worker died (a lease not renewed for TOLLGATE_BATCH_STALE_SECONDS)."""
    stalled = services.batches_stalled(stale_seconds=settings.TOLLGATE_BATCH_STALE_SECONDS)
    for batch_pk in stalled:
        batch_run.delay(batch_pk)
    return len(stalled)


@worker_shutting_down.connect
def _hand_over_running_batches(**kwargs):
    """A warm shutdown (SIGTERM) would wait for a whole batch: each run stops dispatching instead, finishes
    its lines in flight and releases its lease, so another worker takes the batch up where it stopped."""
    for runner in list(ACTIVE):
        runner.hand_over()
