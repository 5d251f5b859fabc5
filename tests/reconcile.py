"""Reconciliation after a fault: the gateway's ledger against the mock upstream's own ledger."""

from collections import Counter

from django.db.models import Sum

from billing.models import UsageEvent
from tests.gateway import drain_usage, wait_for


def reconcile(org, upstream, *, expected_requests: int | None = None, timeout: float = 30, runtime=None) -> list:
    """Assert exactly one usage row per request the upstream served, with its tokens, and equal totals.

    On a stream cut short, delivered <= billed <= generated: the row may not claim more than the
    upstream generated. Returns the organization's usage rows.
    """
    served = [entry for entry in upstream.ledger if entry.gateway_request_id]
    by_request = Counter(entry.gateway_request_id for entry in served)

    def landed():
        drain_usage()
        ids = set(UsageEvent.objects.filter(organization=org).values_list("request_id", flat=True))
        return ids if set(by_request) <= ids else None

    wait_for(landed, timeout=timeout)
    events = {e.request_id: e for e in UsageEvent.objects.filter(organization=org)}
    assert len(events) == UsageEvent.objects.filter(organization=org).count()  # one row per request id
    if expected_requests is not None:
        assert len(events) == expected_requests, (len(events), expected_requests)
    for request_id, attempts in by_request.items():
        event = events[request_id]
        assert event.attempts >= attempts  # every upstream call is an attempt on the row
        final = [e for e in served if e.gateway_request_id == request_id][-1]
        if event.status_code == 200 and final.completed:
            assert (event.prompt_tokens, event.completion_tokens) == (final.prompt_tokens, final.completion_tokens) or event.usage_source == "estimated"
        else:
            assert event.completion_tokens <= max(final.completion_tokens, 0) or event.usage_source == "estimated"
    rows = UsageEvent.objects.filter(organization=org)
    total = rows.aggregate(t=Sum("completion_tokens"))["t"] or 0
    by_key = sum(rows.filter(key_id=k).aggregate(t=Sum("completion_tokens"))["t"] or 0 for k in set(rows.values_list("key_id", flat=True)))
    assert by_key == total
    if runtime is not None:  # the in-process relay: every admitted request settled its reservation
        wait_for(lambda: runtime.budgets.open_reservations == 0, timeout=timeout)
    return list(events.values())
