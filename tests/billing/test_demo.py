"""tollgate_demo: the demo organization and a month of labelled, realistic usage, idempotently."""

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditLog, Organization, Team
from billing.demo import DEMO_ORG, demo_usage_seed
from billing.exact_sums import ExactSum
from billing.models import Budget, Price, UsageEvent, UsageRollup
from keys.models import Deployment, Model, VirtualKey

pytestmark = pytest.mark.django_db(transaction=True)


def demo(*args) -> str:
    out = StringIO()
    call_command("tollgate_demo", *args, stdout=out)
    return out.getvalue()


def _ledger_and_rollups(org):
    events = UsageEvent.objects.filter(organization=org)
    rollups = UsageRollup.objects.filter(organization=org, grain=UsageRollup.Grain.DAY)
    return (
        events.count(), events.aggregate(total=ExactSum("cost_display"))["total"],
        rollups.aggregate(total=ExactSum("requests"))["total"], rollups.aggregate(total=ExactSum("cost"))["total"],
    )


def test_demo_seeds_a_month_of_labelled_usage_that_every_report_can_show():
    Price.objects.filter(organization=None).delete()  # the demo prices its own models, whatever the global book holds
    printed = demo()
    assert "Virtual key (shown once): tg-" in printed and "Demo usage:" in printed
    org = Organization.objects.get(name=DEMO_ORG)
    events = UsageEvent.objects.filter(organization=org)
    now = timezone.now()

    assert events.count() > 3000
    assert all(request_id.startswith("demo-") for request_id in events.values_list("request_id", flat=True))
    days = {moment.date() for moment in events.values_list("created_at", flat=True)}
    assert len(days) >= 29 and not events.filter(created_at__gt=now).exists()
    assert events.filter(created_at__gte=now - timedelta(days=1)).exists()  # today's charts too

    # Several models, keys and teams, each with traffic.
    assert {"demo", "demo-large", "demo-fast", "demo-embed", "demo-rerank"} <= set(events.values_list("model_name", flat=True))
    assert events.values("key_id").distinct().count() == 4 == VirtualKey.objects.filter(organization=org).count()
    teams = set(Team.objects.filter(organization=org).values_list("pk", flat=True))
    assert len(teams) == 3 and teams <= set(events.values_list("team_id", flat=True))
    assert events.filter(endpoint="embeddings").exists() and events.filter(endpoint="rerank").exists() and events.filter(stream=True, ttft_ms__gt=0).exists()

    # The A/B split: both variants of demo-large served, about 80/20.
    variants = Counter(events.filter(model_name="demo-large", status_code=200).values_list("upstream_model", flat=True))
    assert set(variants) == {"demo-large-a", "demo-large-b"} and 0.1 < variants["demo-large-b"] / sum(variants.values()) < 0.3
    assert Deployment.objects.filter(model__organization=org, model__name="demo-large").count() == 2

    # A fallback: demo-fast failed, demo answered; both attempts on record.
    fallback = events.filter(model_name="demo-fast", attempts=2).first()
    assert fallback is not None and fallback.upstream_model == "tollgate-demo"
    assert [step["status"] for step in fallback.attempt_trail] == [503, 200]
    assert Model.objects.get(organization=org, name="demo-fast").fallback_models == ["demo"]

    # A few errors, refused ones without a deployment or cost.
    statuses = Counter(events.values_list("status_code", flat=True))
    assert {429, 502, 504} <= set(statuses) and sum(n for s, n in statuses.items() if s >= 400) < 0.05 * events.count()
    assert not events.filter(status_code=429).exclude(deployment_id=None).exists()

    # Priced exactly, like relayed requests; the rollups hold what the ledger holds.
    assert not events.filter(status_code=200, cost_display=None).exists()
    count, spent, rolled_requests, rolled_cost = _ledger_and_rollups(org)
    assert rolled_requests == count and rolled_cost == spent and Decimal("5") < spent < Decimal("100")
    assert Budget.objects.filter(organization=org, scope=Budget.Scope.ORGANIZATION).count() == 1
    assert AuditLog.objects.filter(organization=org, action="model.create").count() == 5


def test_demo_is_idempotent_and_later_runs_only_add_what_time_added():
    demo()
    org = Organization.objects.get(name=DEMO_ORG)
    before = _ledger_and_rollups(org)
    objects = (Model.objects.count(), Deployment.objects.count(), VirtualKey.objects.count(), Team.objects.count(), Budget.objects.count())

    printed = demo()
    assert "shown once" not in printed and "Demo usage" not in printed
    assert _ledger_and_rollups(org) == before
    assert (Model.objects.count(), Deployment.objects.count(), VirtualKey.objects.count(), Team.objects.count(), Budget.objects.count()) == objects

    # Two days later, the same generator adds those days and nothing twice.
    added = demo_usage_seed(org, now=timezone.now() + timedelta(days=2))
    assert added > 50
    assert UsageEvent.objects.filter(organization=org).count() == before[0] + added
    assert demo_usage_seed(org, now=timezone.now() + timedelta(days=2)) == 0


def test_demo_without_usage():
    assert "Demo usage" not in demo("--no-usage")
    assert not UsageEvent.objects.exists() and Model.objects.filter(name="demo-large").exists()
