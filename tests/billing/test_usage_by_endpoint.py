"""Usage by endpoint: the rollups carry the endpoint (billing.rollups), the overview and the usage explorer
break spend down by it, and the REST usage API groups and filters by it; the rollups stay exact."""

from datetime import timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import selectors
from billing.ledger import usage_ingest
from billing.models import UsageRollup
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory
from tests.reconcile import _rollups_agree

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc


@pytest.fixture
def traffic(org, other_org, owner):
    key = VirtualKeyFactory(organization=org, user=owner, name="k")
    now = timezone.now()
    usage_ingest([
        usage_record(organization=org, at=now, key=key, model_name="m", cost_display="1.5"),
        usage_record(organization=org, at=now, key=key, model_name="m", cost_display="0.5"),
        usage_record(organization=org, at=now, key=key, model_name="rr", endpoint="rerank", cost_display="0.25", completion_tokens=0),
        usage_record(organization=org, at=now, key=key, model_name="m", endpoint="embeddings", cost_display="0.125"),
        usage_record(organization=other_org, at=now, model_name="rr", endpoint="rerank", cost_display="99"),
    ])
    return key


def test_every_grain_but_by_key_keeps_the_endpoint_and_agrees_with_the_ledger(org, traffic):
    rows = UsageRollup.objects.filter(organization=org)
    for grain in ("hour", "day", "dm"):
        by_endpoint = {r.endpoint: (r.requests, r.cost) for r in rows.filter(grain=grain, model_name="m")}
        assert by_endpoint == {"chat": (2, Decimal("2")), "embeddings": (1, Decimal("0.125"))}
    assert set(rows.filter(grain="dk").values_list("endpoint", flat=True)) == {""}
    _rollups_agree(org)


def test_the_overview_ranks_spend_by_endpoint(client, org, owner, traffic, settings):
    client.force_login(owner)
    data = selectors.overview(organization=org, now=timezone.now())
    assert [(r.ident, str(r.cost), r.requests, r.share) for r in data.by_endpoint] == [
        ("chat", "$2.00", 2, 84), ("rerank", "$0.25", 1, 11), ("embeddings", "$0.125", 1, 5)]
    html = client.get(reverse("overview")).content.decode()
    assert 'id="by-endpoint"' in html and 'data-ranked="Rerank"' in html and 'data-ranked="Chat completions"' in html
    html = client.get(reverse("overview"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "按接口" in html and "重排序" in html and "对话补全" in html


def test_the_usage_explorer_breaks_the_range_down_by_endpoint(client, org, owner, traffic):
    client.force_login(owner)
    html = client.get(reverse("usage")).content.decode()
    assert 'id="usage-by-endpoint"' in html and 'data-ranked="Embeddings"' in html
    summary = selectors.usage_explorer_summary(organization=org, since=timezone.now() - timedelta(days=7), until=timezone.now(), filters={},
                                      key_ids=None, time_zone=UTC)
    assert [(r.ident, r.requests) for r in summary["by_endpoint"]] == [("chat", 2), ("rerank", 1), ("embeddings", 1)]
    member_view = selectors.usage_explorer_summary(organization=org, since=timezone.now() - timedelta(days=7), until=timezone.now(), filters={},
                                          key_ids=[], time_zone=UTC)
    assert member_view["by_endpoint"] == []


def test_the_usage_api_groups_and_filters_by_endpoint(org, owner, traffic, client):
    client.force_login(owner)
    since = (timezone.now() - timedelta(days=3)).isoformat()
    body = client.get("/api/usage/", {"since": since, "group_by": "endpoint"}).json()
    assert [(r["group"], r["label"], r["requests"], r["cost"]) for r in body["results"]] == [
        ("chat", "Chat completions", 2, "2"), ("embeddings", "Embeddings", 1, "0.125"), ("rerank", "Rerank", 1, "0.25")]
    only = client.get("/api/usage/", {"since": since, "group_by": "model", "endpoint": "rerank"}).json()
    assert [(r["group"], r["requests"]) for r in only["results"]] == [("rr", 1)]  # never another organization's
    bad = client.get("/api/usage/", {"since": since, "endpoint": "teleport"})
    assert bad.status_code == 400 and "endpoint" in bad.content.decode()
    events = client.get("/api/usage/events/", {"endpoint": "rerank"})
    assert [e["model_name"] for e in events.json()["results"]] == ["rr"]
