"""Retention: raw usage older than the configured age is deleted in batches; rollups stay."""

from datetime import timedelta

from django.db.models import Sum
from django.utils import timezone

from billing.ledger import usage_ingest
from billing.models import UsageEvent, UsageRollup
from billing.services import usage_retention


def record(org, request_id, days_ago):
    return {
        "request_id": request_id, "organization_id": org.pk, "team_id": None, "key_id": 1, "user_id": None,
        "model_name": "m", "deployment_id": 1, "provider": "custom", "upstream_model": "m", "endpoint": "chat",
        "stream": False, "status_code": 200, "error_type": "", "prompt_tokens": 10, "cached_tokens": 0,
        "completion_tokens": 5, "usage_source": "provider", "attempts": 1, "latency_ms": 3, "ttft_ms": None,
        "created_at": (timezone.now() - timedelta(days=days_ago)).timestamp(), "cost": "0.01", "currency": "USD",
        "exchange_rate": "1", "cost_display": "0.01", "price_id": None,
    }


def test_old_events_go_in_batches_and_rollups_stay(org):
    usage_ingest([record(org, f"old-{i}", 40) for i in range(25)] + [record(org, f"new-{i}", 1) for i in range(5)])
    before = UsageRollup.objects.filter(organization=org, grain="day").aggregate(r=Sum("requests"), c=Sum("cost"))
    assert usage_retention(days=30, batch=10) == 25
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {f"new-{i}" for i in range(5)}
    after = UsageRollup.objects.filter(organization=org, grain="day").aggregate(r=Sum("requests"), c=Sum("cost"))
    assert before == after == {"r": 30, "c": before["c"]} and before["c"] > 0
    assert usage_retention(days=30) == 0
