"""Notices the relay sends to the control plane without touching the database on the hot path.

Like budget threshold notices (relay.budgets.threshold_notifier), a notice is a Celery message sent
from a thread of its own; billing records the alert once per dedupe key (a unique column), so several
processes, or a process restarted, cannot alert twice. This process also sends each notice at most
once per deployment and UTC day, so a refused credential under traffic costs one message, not one per
request.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from relay import control

log = logging.getLogger(__name__)


def credential_rejected_notifier():
    """callable(deployment_id, upstream_status): the provider refused a deployment's credential."""
    sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="credential-notice")
    sent: set[tuple[int, int]] = set()

    def send(deployment_id: int, status: int | None) -> None:
        try:
            control.enqueue_credential_rejected(deployment_id, status, retry=False)
        except Exception as exc:
            log.warning("could not enqueue the credential-rejected notice: %s", exc.__class__.__name__)

    def notify(deployment_id: int, status: int | None) -> None:
        day = int(time.time() // 86400)
        if (deployment_id, day) in sent:
            return
        if len(sent) > 10_000:
            sent.clear()
        sent.add((deployment_id, day))
        sender.submit(send, deployment_id, status)

    return notify
