"""The Celery app; the periodic schedule lives here, in code."""

import os

from celery import Celery, bootsteps
from celery.schedules import crontab
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tollgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_tollgate_logging(**kwargs):
    """Worker and beat log through settings.LOGGING (config/logs.py), like the web process: timestamps,
    levels, TOLLGATE_LOG_FORMAT and TOLLGATE_LOG_LEVEL, instead of Celery's own set-up."""
    import logging.config

    from django.conf import settings

    logging.captureWarnings(True)
    logging.config.dictConfig(settings.LOGGING)


class UsageConsumerStep(bootsteps.StartStopStep):
    """Each worker runs the usage consumer (billing.drain) beside its pool: started once the pool's
    processes (and an embedded beat's) are forked, stopped at the worker's shutdown."""

    requires = {"celery.worker.components:Pool", "celery.worker.components:Beat"}

    def __init__(self, worker, **kwargs):
        self.consumer = None
        super().__init__(worker, **kwargs)

    def start(self, worker):
        if os.environ.get("TOLLGATE_USAGE_CONSUMER", "1") == "0":  # benchmarks/ledger_lag.py: the old beat-only drain
            return
        from billing.drain import UsageConsumer

        self.consumer = UsageConsumer()
        self.consumer.start()

    def stop(self, worker):
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None

    shutdown = stop


app.steps["worker"].add(UsageConsumerStep)

# Tasks are registered by name so this module needs no imports from the apps.
app.conf.beat_schedule = {
    # Batches whose worker died are resumed where they stopped (batches.runner).
    "batches-sweep": {"task": "batches.sweep", "schedule": float(os.environ.get("TOLLGATE_BATCH_SWEEP_SECONDS", "10")),
                      "options": {"expires": 30}},
    "accounts-invitations-expire": {"task": "accounts.invitations_expire", "schedule": crontab(minute=0)},
    # A safety net: each worker's consumer thread drains the stream as it fills (UsageConsumerStep above).
    "billing-usage-drain": {"task": "billing.usage_drain", "schedule": 30.0, "options": {"expires": 25}},
    "billing-budgets-evaluate-all": {"task": "billing.budgets_evaluate_all", "schedule": 60.0},
    "billing-budget-counters-reconcile": {"task": "billing.budget_counters_reconcile", "schedule": 300.0},
    # Granted credit past its expiry (README "Credits"); usage is drawn first.
    "billing-credits-expire": {"task": "billing.credits_expire", "schedule": crontab(minute="*/10"), "options": {"expires": 590}},
    "billing-usage-retention": {"task": "billing.usage_retention", "schedule": crontab(hour=3, minute=17)},
    "response-store-responses-expire": {"task": "response_store.responses_expire", "schedule": crontab(minute=41)},
    # Retries of alert deliveries; a run older than its interval is dropped rather than piled up.
    "billing-alert-deliveries-due": {"task": "billing.alert_deliveries_due", "schedule": 30.0, "options": {"expires": 25}},
    # Provider account balances (DeepSeek, Moonshot) and the low-balance alert.
    # Scheduled deployment probes (off unless a deployment turns its probe on).
    "keys-deployment-probes-run": {"task": "keys.deployment_probes_run", "schedule": 300.0, "options": {"expires": 290}},
    "billing-credential-balances-poll": {"task": "billing.credential_balances_poll", "schedule": crontab(minute=23), "options": {"expires": 3000}},
}
