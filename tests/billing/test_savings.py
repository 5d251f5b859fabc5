"""The overview's savings (billing.selectors.savings): cache hits, sandbox runs and downgrades this month, per
organization and, for a member, per own key."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import ledger
from wire.periods import period_bounds
from billing.selectors import period_savings
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory

pytestmark = pytest.mark.django_db


def month(org):
    return period_bounds("month", org.time_zone, timezone.now())


def ingest(org, key=None, **fields):
    ledger.usage_ingest([usage_record(organization=org, key=key, at=timezone.now() - timedelta(seconds=5), **fields)])


def test_each_kind_of_saving_is_added_up_and_plain_requests_are_not(org, other_org):
    ingest(org, cost_display="0.5")  # a plain request: no saving
    ingest(org, cost_display="0", cache_hit=True, would_have_cost="0.30")
    ingest(org, cost_display="0", cache_hit=True, would_have_cost="0.20")
    ingest(org, cost_display="0", sandbox=True, would_have_cost="1.25")
    ingest(org, cost_display="0.10", downgraded_from="gpt-big", would_have_cost="0.40")
    ingest(org, cost_display="0.10", downgraded_from="gpt-big")  # an unknown original price counts 0
    ingest(other_org, cost_display="0", cache_hit=True, would_have_cost="9")  # another organization's
    start, end = month(org)
    savings = period_savings(organization=org, start=start, end=end)
    assert (savings.cache.requests, savings.cache.amount) == (2, Decimal("0.50"))
    assert (savings.sandbox.requests, savings.sandbox.amount) == (1, Decimal("1.25"))
    assert (savings.downgrades.requests, savings.downgrades.amount) == (2, Decimal("0.30"))
    assert savings.total == Decimal("2.05")


def test_a_member_sees_only_their_own_keys_savings(org, member_user):
    own = VirtualKeyFactory(organization=org, user=member_user)
    other = VirtualKeyFactory(organization=org)
    ingest(org, key=own, cost_display="0", sandbox=True, would_have_cost="0.75")
    ingest(org, key=other, cost_display="0", sandbox=True, would_have_cost="5")
    start, end = month(org)
    assert period_savings(organization=org, start=start, end=end, key_ids=[own.pk]).sandbox.amount == Decimal("0.75")


def test_the_overview_shows_the_savings(client, owner, org, member_user):
    ingest(org, cost_display="0", cache_hit=True, would_have_cost="0.30")
    client.force_login(owner)
    page = client.get(reverse("overview")).content.decode()
    assert 'id="savings"' in page and "$0.30" in page.split('id="saved-cache"')[1][:200]
    client.force_login(member_user)  # a member without keys: nothing saved
    assert "Nothing yet" in client.get(reverse("overview")).content.decode()
