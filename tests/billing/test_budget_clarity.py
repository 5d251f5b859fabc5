"""Budgets say what they do: `thresholds: []` means no threshold alerts, a refusal names the request's worst
case and what is left, and the budget bar shows what is reserved beside what is spent."""

from decimal import Decimal

import openai
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing import ledger, services as billing_services
from billing.forms import BudgetCreateForm
from billing.models import Alert, Budget
from relay.snapshots import budgets_in_force
from tests.billing.factories import usage_record
from tests.keys.factories import VirtualKeyFactory
from wire.periods import budget_counter

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.django_db
def test_empty_thresholds_turn_threshold_alerts_off_everywhere(org, owner_ctx):
    key = VirtualKeyFactory(organization=org)
    quiet = billing_services.budget_create(actor=owner_ctx, scope="org", amount="1", thresholds=[])
    default = billing_services.budget_create(actor=owner_ctx, scope="key", key=key, amount="1")
    assert (quiet.thresholds, default.thresholds) == ([], [50, 80, 100])  # omitted: the defaults
    assert Budget(organization=org, scope="org", amount=1).thresholds == [50, 80, 100]
    ledger.usage_ingest([usage_record(organization=org, key=key, at=timezone.now(), cost_display="2")])  # 200 %

    assert billing_services.budget_evaluate(budget_id=quiet.pk) == []  # before: 50, 80 and 100 % fired
    assert not Alert.objects.filter(budget=quiet, kind="budget.threshold").exists()
    assert len(billing_services.budget_evaluate(budget_id=default.pk)) == 3
    snapshots = {b.id: b.thresholds for b in budgets_in_force(key)}  # what the relay checks at settlement
    assert snapshots == {quiet.pk: (), default.pk: (50, 80, 100)}

    form = BudgetCreateForm(data={"scope": "org", "amount": "5", "period": "month", "thresholds": ""}, organization=org)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["thresholds"] == []  # an emptied field means none, not the defaults


@pytest.mark.django_db
def test_empty_thresholds_through_the_api(org, owner):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    created = client.post("/api/budgets/", {"scope": "org", "amount": "5", "thresholds": []}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["thresholds"] == []
    budget = Budget.objects.get(pk=created.json()["id"])
    assert budget.thresholds == []
    patched = client.patch(f"/api/budgets/{budget.pk}/", {"thresholds": [90]}, format="json")
    assert patched.json()["thresholds"] == [90]
    assert client.patch(f"/api/budgets/{budget.pk}/", {"thresholds": []}, format="json").json()["thresholds"] == []


def test_a_refusal_for_a_worst_case_that_does_not_fit_says_both_figures(gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD",
                                  input_per_m="0", output_per_m="1000")  # max_tokens=10: worst case 0.01
    billing_services.budget_create(actor=gateway.ctx, scope="key", key=gateway.key, amount="0.015", period="day", name="Key cap")
    client = gateway.client()
    client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)  # 0.01 spent
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert info.value.code == "budget_exceeded"
    assert info.value.body["message"] == (
        "This request could cost up to 0.01 USD; 0.005 USD is left of the key budget 'Key cap' for this day. "
        "A lower max_tokens may fit."
    )
    with pytest.raises(openai.RateLimitError) as info:  # still no room for 0.01 (nothing more was spent)
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert "0.005 USD is left" in info.value.message


@pytest.mark.django_db
@pytest.mark.skipif(not settings.REDIS_URL, reason="the counters are shared through Redis; embedded, each process keeps its own")
def test_the_budget_bar_shows_reserved_beside_spent(client, org, owner):
    import redis

    key = VirtualKeyFactory(organization=org)
    budget = Budget.objects.create(organization=org, name="Cap", scope="key", key=key, amount=Decimal("1"), period="month")
    ledger.usage_ingest([usage_record(organization=org, key=key, at=timezone.now(), cost_display="0.25")])
    counter = budget_counter(budget.pk, budget.period, org.time_zone, timezone.now().timestamp())
    store = redis.Redis.from_url(settings.REDIS_URL)
    store.set(counter, 250_000 + 125_000, ex=60)  # the ledger's 0.25 and 0.125 held by requests in flight
    try:
        client.force_login(owner)
        for page in (reverse("budgets"), reverse("budget_edit", args=[budget.pk])):
            html = client.get(page).content.decode()
            assert "$0.25 / $1.00" in html
            assert "$0.125 reserved" in html
            assert 'class="budget-reserved-bar" min="0" max="100" value="37"' in html  # spent + reserved
            assert 'class="budget-bar level-ok" max="100" value="25"' in html
        from rest_framework.test import APIClient

        api = APIClient()
        api.force_authenticate(owner)
        assert {k: api.get(f"/api/budgets/{budget.pk}/").json()[k] for k in ("spent", "reserved")} == {"spent": "0.25", "reserved": "0.125"}
        assert [b["reserved"] for b in api.get("/api/budgets/").json()["results"]] == ["0.125"]
    finally:
        store.delete(counter)
