"""Celery tasks of keys (schedule: config/celery.py)."""

from celery import shared_task

from keys import probes


@shared_task(name="keys.deployment_probes_run", ignore_result=True)
def deployment_probes_run() -> int:
    return probes.deployment_probes_run()
