"""Reconciliation after a fault: the gateway's ledger against the mock upstream's own ledger."""

from collections import Counter
from decimal import Decimal

from django.db.models import Sum

from billing.models import UsageEvent, UsageRollup
from tests.gateway import drain_usage, wait_for

SUMS = ("prompt_tokens", "completion_tokens", "cost_display")


def reconcile(org, upstream, *, expected_requests: int | None = None, timeout: float = 30, runtime=None) -> list:
    """Assert exactly one usage row per request the upstream served, with its tokens, and equal totals.

    On a stream cut short, delivered <= billed <= generated: the row may not claim more than the
    upstream generated. Every call the upstream received (served or failed) belongs to a row that
    counts it as an attempt. The rollups agree with the ledger per key, per team and for the org.
    Returns the organization's usage rows.
    """
    served = [entry for entry in upstream.ledger if entry.gateway_request_id]
    by_request = Counter(entry.gateway_request_id for entry in served)
    calls = Counter(_request_id(call) for call in list(upstream.requests))
    calls.pop("", None)
    # Calls of other organizations' requests (an earlier test's stragglers) are not ours to check.
    wanted = set(by_request) | set(calls)

    def landed():
        drain_usage()
        ids = set(UsageEvent.objects.filter(organization=org).values_list("request_id", flat=True))
        mine = ids | _foreign(wanted - ids, org)
        return ids if wanted <= mine else None

    try:
        wait_for(landed, timeout=timeout)
    except AssertionError:
        ids = set(UsageEvent.objects.filter(organization=org).values_list("request_id", flat=True))
        missing = wanted - ids - _foreign(wanted - ids, org)
        detail = [(e.gateway_request_id, e.model, e.completed) for e in served if e.gateway_request_id in missing]
        raise AssertionError(f"{len(missing)} upstream request(s) without a usage row: {sorted(missing)[:5]} {detail[:5]}") from None
    events = {e.request_id: e for e in UsageEvent.objects.filter(organization=org)}
    assert len(events) == UsageEvent.objects.filter(organization=org).count()  # one row per request id
    if expected_requests is not None:
        assert len(events) == expected_requests, (len(events), expected_requests)
    for request_id, attempts in by_request.items():
        if request_id not in events:
            continue  # another organization's request
        event = events[request_id]
        assert event.attempts >= attempts  # every upstream call is an attempt on the row
        final = [e for e in served if e.gateway_request_id == request_id][-1]
        if event.status_code == 200 and final.completed:
            assert (event.prompt_tokens, event.completion_tokens) == (final.prompt_tokens, final.completion_tokens) or event.usage_source == "estimated"
        else:
            assert event.completion_tokens <= max(final.completion_tokens, 0) or event.usage_source == "estimated"
    for request_id, count in calls.items():
        if request_id in events:
            assert events[request_id].attempts >= count, (request_id, events[request_id].attempts, count)
    rows = UsageEvent.objects.filter(organization=org)
    total = rows.aggregate(t=Sum("completion_tokens"))["t"] or 0
    by_key = sum(rows.filter(key_id=k).aggregate(t=Sum("completion_tokens"))["t"] or 0 for k in set(rows.values_list("key_id", flat=True)))
    assert by_key == total
    _rollups_agree(org)
    if runtime is not None:  # the in-process relay: every admitted request settled its reservation
        wait_for(lambda: runtime.budgets.open_reservations == 0, timeout=timeout)
    return list(events.values())


def _request_id(call: dict) -> str:
    headers = call.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == "x-tollgate-request-id"), "")


def _foreign(request_ids: set, org) -> set:
    return set(UsageEvent.objects.filter(request_id__in=request_ids).exclude(organization=org).values_list("request_id", flat=True))


def _rollups_agree(org) -> None:
    """Daily rollups (what the dashboard and budgets read), in each daily grain, sum to the ledger per key,
    team, model and org."""
    rows = UsageEvent.objects.filter(organization=org)
    grain = UsageRollup.Grain
    checks = [(grain.DAY, ("key_id", "team_id", "model_name", None)), (grain.DAY_BY_KEY, ("key_id", "team_id", None)),
              (grain.DAY_BY_MODEL, ("model_name", None))]
    for daily, dimensions in checks:
        _grain_agrees(rows, UsageRollup.objects.filter(organization=org, grain=daily), dimensions)


def _grain_agrees(rows, rolled, dimensions) -> None:
    for dimension in dimensions:
        values = {None} if dimension is None else set(rows.values_list(dimension, flat=True))
        for value in values:
            ledger = rows if dimension is None else rows.filter(**{dimension: value})
            rollup = rolled if dimension is None else rolled.filter(**{dimension: value if dimension == "model_name" else value or 0})
            expect = ledger.aggregate(n=Sum("prompt_tokens"), c=Sum("completion_tokens"), m=Sum("cost_display"))
            got = rollup.aggregate(n=Sum("prompt_tokens"), c=Sum("completion_tokens"), m=Sum("cost"))
            assert ledger.count() == (rollup.aggregate(r=Sum("requests"))["r"] or 0), (dimension, value)
            assert (expect["n"] or 0, expect["c"] or 0) == (got["n"] or 0, got["c"] or 0), (dimension, value, expect, got)
            assert (expect["m"] or Decimal(0)) == (got["m"] or Decimal(0)), (dimension, value, expect, got)
