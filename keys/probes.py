"""Scheduled probes: a per-deployment health check, off by default, recording latency and status.

Kinds: "models" reads the provider's model list (free; the deployment's model must be listed) and
"chat" sends the one-token test call of keys.testing (a paid call). The history is kept for
HISTORY_DAYS and shown on the deployment's page as a chart and a table. A failed probe cools the
deployment in the relay until a later probe succeeds (keys/health.py; with Redis).
"""

import logging
import time
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from keys.discovery import credential_models
from keys.health import probe_cooldown_apply
from keys.models import Deployment, DeploymentProbe
from keys.testing import run_test

log = logging.getLogger(__name__)

HISTORY_DAYS = 7
HISTORY_SHOWN = 20


def _probe_models(deployment: Deployment) -> tuple[bool, str, int]:
    started = time.perf_counter()
    try:
        names = credential_models(credential=deployment.credential)
    except ApplicationError as exc:
        return False, str(exc.message), round((time.perf_counter() - started) * 1000)
    latency = round((time.perf_counter() - started) * 1000)
    if deployment.upstream_model.removeprefix("models/") not in names and deployment.credential.provider != "mock":
        return False, _("The provider's model list does not include %(model)s.") % {"model": deployment.upstream_model}, latency
    return True, _("Listed by the provider."), latency


def deployment_probe(*, deployment: Deployment) -> DeploymentProbe:
    """Probe one deployment now (whatever its setting says) and record the result."""
    kind = deployment.probe if deployment.probe != Deployment.Probe.OFF else Deployment.Probe.MODELS
    if kind == Deployment.Probe.CHAT:
        ok, message, latency = run_test(deployment.credential, deployment.upstream_model)
    else:
        ok, message, latency = _probe_models(deployment)
    probe = DeploymentProbe.objects.create(
        organization_id=deployment.organization_id, deployment=deployment, kind=kind, ok=ok, latency_ms=max(0, latency),
        message=str(message)[:300],
    )
    probe_cooldown_apply(deployment_id=deployment.pk, ok=ok, cooldown_seconds=deployment.model.cooldown_seconds)
    return probe


def deployment_probes_run() -> int:
    """Probe every active deployment whose probe is on, then drop history older than HISTORY_DAYS."""
    count = 0
    deployments = Deployment.objects.filter(is_active=True).exclude(probe=Deployment.Probe.OFF).select_related("credential", "model")
    for deployment in deployments.iterator():
        try:
            deployment_probe(deployment=deployment)
            count += 1
        except Exception as exc:  # one broken deployment must not stop the others
            log.warning("probe of deployment %s failed: %s", deployment.pk, exc.__class__.__name__)
    DeploymentProbe.objects.filter(checked_at__lt=timezone.now() - timedelta(days=HISTORY_DAYS)).delete()
    return count


def deployment_probe_history(*, deployment: Deployment) -> list[DeploymentProbe]:
    return list(deployment.probes.all()[:HISTORY_SHOWN])


def deployment_health_chart(*, deployment: Deployment) -> dict:
    """The kept history for the page's chart (static/js/charts.js): latency per probe, oldest first,
    times in the current (the organization's) time zone, and whether each probe passed."""
    rows = deployment.probes.filter(checked_at__gte=timezone.now() - timedelta(days=HISTORY_DAYS)).order_by("checked_at")
    labels, latency, ok = [], [], []
    for checked_at, latency_ms, passed in rows.values_list("checked_at", "latency_ms", "ok"):
        labels.append(timezone.localtime(checked_at).strftime("%m-%d %H:%M"))
        latency.append(latency_ms)
        ok.append(passed)
    return {"labels": labels, "latency": latency, "ok": ok, "empty": not labels,
            "latency_label": _("Latency (ms)"), "failed_label": _("failed"), "passed_label": _("OK")}
