"""A hard budget is enforceable or the request is refused: no price or no exchange rate means an unknown
cost, which would pass any hard budget. A price of zero marks a model free. Through the real relay."""

from decimal import Decimal

import openai
import pytest

from billing import services as billing_services
from billing.models import Alert, UsageEvent
from tests.gateway import drain_usage, wait_for

MESSAGES = [{"role": "user", "content": "Hi"}]


def drained(events):
    drain_usage()
    return events


def hard_budget(gateway, amount="0.002", **kwargs):
    return billing_services.budget_create(actor=gateway.ctx, scope="key", key=gateway.key, amount=amount, period="day",
                                          name="Key cap", **kwargs)


def price(gateway, currency="USD", output="1000"):
    return billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency=currency,
                                         input_per_m="0", output_per_m=output)


def test_unpriced_model_under_a_hard_budget_is_refused_naming_the_missing_price(gateway, upstream):
    hard_budget(gateway)
    client = gateway.client()
    for _ in range(3):  # before: every one admitted, the budget still showing 0 spent
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert info.value.status_code == 403
    assert info.value.code == "price_missing"
    assert info.value.body["type"] == "invalid_request_error" and info.value.body["param"] == "model"
    message = info.value.message
    assert "'gpt-test'" in message and "no price" in message and "Key cap" in message and "price of 0" in message
    assert not upstream.ledger  # refused before any upstream call
    assert wait_for(lambda: drained(UsageEvent.objects.filter(organization=gateway.org, error_type="price_missing")).count() == 3)


def test_unpriced_model_without_a_hard_budget_still_serves(gateway):
    hard_budget(gateway, hard=False)  # a soft budget only counts
    answer = gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert answer.choices[0].message.content


def test_a_zero_price_marks_the_model_free_under_a_hard_budget(gateway):
    hard_budget(gateway)
    price(gateway, currency="EUR", output="0")  # free: no exchange rate needed either
    client = gateway.client()
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)

    def rows():
        drain_usage()
        events = UsageEvent.objects.filter(organization=gateway.org, status_code=200)
        return list(events) if events.count() == 3 else None

    events = wait_for(rows)
    assert {(e.cost, e.cost_display) for e in events} == {(Decimal(0), Decimal(0))}  # free, not unpriced


def test_price_without_exchange_rate_under_a_hard_budget_is_refused_until_the_rate_exists(gateway):
    hard_budget(gateway, amount="1")
    price(gateway, currency="EUR")
    client = gateway.client()
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    assert info.value.code == "exchange_rate_missing"
    assert "no exchange rate from EUR to USD" in info.value.message and "'gpt-test'" in info.value.message
    billing_services.exchange_rate_set(actor=gateway.ctx, currency="EUR", rate="2")

    def served():
        try:
            return client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
        except openai.PermissionDeniedError:
            return None

    wait_for(served)  # the snapshot is refreshed within 0.5 s of the change
    event = wait_for(lambda: drained(UsageEvent.objects.filter(organization=gateway.org, status_code=200)).first())
    assert (event.cost, event.currency, event.exchange_rate, event.cost_display) == (
        Decimal("0.01"), "EUR", Decimal(2), Decimal("0.02"))


def test_missing_exchange_rates_alert_like_missing_prices(gateway):
    price(gateway, currency="EUR")  # no budget: served, priced in EUR, no rate to USD
    gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10)
    wait_for(lambda: drained(UsageEvent.objects.filter(organization=gateway.org)).exists())
    event = UsageEvent.objects.get(organization=gateway.org)
    assert (event.cost, event.cost_display) == (Decimal("0.01"), None)
    assert billing_services.unpriced_usage_alert() >= 1
    alert = Alert.objects.get(organization=gateway.org, kind="rate.missing")
    assert alert.payload["currency"] == "EUR" and "EUR" in alert.payload["message"]
    assert billing_services.unpriced_usage_alert() == 0  # once a day


# --- Fallback models can serve the request too: their deployments count in the worst case ----------


def with_fallback(gateway, fallback_upstream="pricey"):
    """A model 'primary' (on the priced 'echo') whose fallback model 'backup' runs on `fallback_upstream`."""
    from keys import services as key_services

    backup = key_services.model_create(actor=gateway.ctx, name="backup")
    key_services.deployment_create(actor=gateway.ctx, model=backup, credential=gateway.credential, upstream_model=fallback_upstream)
    primary = key_services.model_create(actor=gateway.ctx, name="primary", fallback_models=["backup"])
    key_services.deployment_create(actor=gateway.ctx, model=primary, credential=gateway.credential, upstream_model="echo")


def test_a_dearer_fallback_model_counts_in_the_worst_case(gateway, upstream):
    """The primary costs at most 0.01 for this request, its fallback up to 1.00: a 0.50 hard budget cannot
    hold the request. Before, only the primary's 0.01 was reserved and a fallback could spend 1.00."""
    price(gateway)  # echo: 0.01 for 10 output tokens
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="pricey", currency="USD",
                                  input_per_m="0", output_per_m="100000")
    hard_budget(gateway, amount="0.5")
    with_fallback(gateway)
    with pytest.raises(openai.RateLimitError) as info:
        gateway.client().chat.completions.create(model="primary", messages=MESSAGES, max_tokens=10)
    assert info.value.code == "budget_exceeded"
    assert not upstream.ledger
    # the same request on a model without that fallback fits
    assert gateway.client().chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10).choices


@pytest.mark.parametrize("currency, code", [(None, "price_missing"), ("EUR", "exchange_rate_missing")])
def test_an_unenforceable_fallback_model_is_refused_under_a_hard_budget(gateway, upstream, currency, code):
    price(gateway)  # the primary is priced in the org's currency
    if currency:
        billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="pricey", currency=currency,
                                      input_per_m="0", output_per_m="1000")
    hard_budget(gateway, amount="1")
    with_fallback(gateway)
    with pytest.raises(openai.PermissionDeniedError) as info:
        gateway.client().chat.completions.create(model="primary", messages=MESSAGES, max_tokens=10)
    assert info.value.code == code and "'backup'" in info.value.message
    assert not upstream.ledger
